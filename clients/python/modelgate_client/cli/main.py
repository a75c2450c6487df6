"""The ``modelgate`` command line.

Every command here talks to a server over HTTP through :mod:`modelgate_client.client`:
``MODELGATE_URL`` (default http://127.0.0.1:8080) and ``MODELGATE_TOKEN``, or ``--url``
and ``--token``; each takes ``--output table|json`` (json prints the API's JSON, for
scripts). The server distribution (``modelgate``) adds its own commands (``serve``,
``db``, ``tokens create``) through the ``modelgate.commands`` entry point group, so
``modelgate`` stays one command whichever of the two is installed.

Errors print one line on stderr, ``modelgate: <status> <title>: <detail>`` (validation
errors add the failing fields, one per indented line), never a traceback.

Exit codes:

- 0 success;
- 1 a gate or check failed (``evaluate``, ``audit verify``), or a request was not
  applied (``promote`` rejected, cancelled, superseded, or ``--wait`` timed out);
- 2 usage, configuration or connection error (nothing reached the server, or no answer);
- 3 the server answered with an error (problem+json: 4xx or 5xx).
"""

from __future__ import annotations

from importlib.metadata import entry_points

import click

from modelgate_client import __version__
from modelgate_client.cli import (
    commands_admin,
    commands_artifacts,
    commands_monitoring,
    commands_promotion,
    commands_registry,
    commands_rollout,
    commands_serving,
)
from modelgate_client.cli.common import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_USAGE,
    ModelgateGroup,
    fail,
)

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "fail", "main"]

PLUGIN_GROUP = "modelgate.commands"
"""Entry points called with the root group to add commands (the server's serve, db...)."""


@click.group(
    cls=ModelgateGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(__version__, prog_name="modelgate")
def main() -> None:
    """Modelgate: a model registry with promotion gates, approvals, rollback and audit.

    \b
    A CI job:      modelgate submit fraud --artifact model.npz --metrics metrics.json
                   modelgate evaluate fraud 7 --target staging
                   modelgate promote fraud 7 --to production --wait --timeout 3600
    A reviewer:    modelgate promotions list --status pending_approval
                   modelgate promotions approve 42 --comment "checked the slices"
    On call:       modelgate rollback fraud --reason "INC-123: precision dropped"
                   modelgate history fraud

    API commands read MODELGATE_URL and MODELGATE_TOKEN (or --url, --token).
    """


@main.group()
def tokens() -> None:
    """API tokens and principals over HTTP; `create --bootstrap` writes straight to the
    server's database (needs the server installed)."""


tokens.add_command(commands_admin.tokens_create)
tokens.add_command(commands_admin.tokens_principals)
tokens.add_command(commands_admin.tokens_list)
tokens.add_command(commands_admin.tokens_revoke)
for command in (
    commands_registry.models,
    commands_registry.versions,
    commands_registry.submit,
    commands_registry.policy,
    commands_promotion.evaluate,
    commands_promotion.promote,
    commands_promotion.promotions,
    commands_promotion.archive,
    commands_promotion.rollback,
    commands_promotion.history,
    commands_promotion.freeze,
    commands_promotion.unfreeze,
    commands_admin.audit,
    commands_artifacts.artifacts,
    commands_monitoring.webhooks,
    commands_monitoring.drift,
    commands_serving.alias,
    commands_serving.serving,
    commands_rollout.rollout,
):
    main.add_command(command)


def _load_plugins() -> None:
    for entry in entry_points(group=PLUGIN_GROUP):
        entry.load()(main)


_load_plugins()


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="modelgate")
