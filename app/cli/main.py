"""The ``modelgate`` command line.

Server-side commands (``serve``, ``db upgrade``, ``db current``, ``tokens create``) use
the database directly, with the ``MODELGATE_*`` server settings. Every other command
talks to a server over HTTP through :mod:`app.cli.client`: ``MODELGATE_URL`` (default
http://127.0.0.1:8080) and ``MODELGATE_TOKEN``, or ``--url`` and ``--token``; each takes
``--output table|json`` (json prints the API's JSON, for scripts).

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

import os
from typing import TYPE_CHECKING

import click

from app import __version__
from app.cli import commands_admin, commands_promotion, commands_registry
from app.cli.common import EXIT_CODES_HELP, EXIT_FAILED, EXIT_USAGE, ModelgateGroup, fail
from app.mlflow.cli import import_group

if TYPE_CHECKING:
    from app.settings import Settings

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "fail", "main"]


def load_settings() -> Settings:
    # Imported here: the HTTP commands need neither pydantic-settings nor the server.
    from app.errors import ConfigurationError
    from app.settings import get_settings

    try:
        return get_settings()
    except ConfigurationError as exc:
        fail(str(exc))


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


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes. More than one runs gunicorn with uvicorn workers.",
)
@click.option("--log-level", default="info", show_default=True)
def serve(host: str, port: int, workers: int, log_level: str) -> None:
    """Run the registry server."""
    settings = load_settings()
    _preflight(settings)
    if workers == 1:
        import uvicorn

        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=30,
        )
        return
    # uvicorn --workers N on the asyncio loop leaves TCP_NODELAY off on accepted sockets
    # (a ~40 ms delayed-ACK stall per kept-alive response); gunicorn sets it on the
    # listening socket whatever the loop. See docs/decisions/0003-serving-processes.md.
    from app.cli.gunicorn_app import run_gunicorn

    run_gunicorn(host=host, port=port, workers=workers, log_level=log_level)


def _preflight(settings: Settings) -> None:
    """Fail with one clear line before the server starts, not with a traceback after."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.db.engine import build_engine
    from app.errors import ConfigurationError
    from app.main import prepare_database
    from app.storage.factory import open_store

    try:
        open_store(
            settings.artifact_store,
            s3_endpoint_url=settings.s3_endpoint_url,
            s3_region=settings.s3_region,
        )
    except ConfigurationError as exc:
        fail(str(exc))
    engine = build_engine(settings)
    try:
        prepare_database(engine, settings)
    except ConfigurationError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        fail(f"cannot use the database {engine.url.render_as_string()}: {reason}")
    finally:
        engine.dispose()


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.db import migrate
    from app.db.engine import build_engine

    settings = load_settings()
    engine = build_engine(settings)
    try:
        migrate.upgrade(engine, revision)
        click.echo(f"database at {migrate.current_revision(engine)}")
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        fail(f"migration failed: {reason}")
    finally:
        engine.dispose()


@db.command("current")
def db_current() -> None:
    """Print the schema revision of the database and the one this version needs."""
    from app.db import migrate
    from app.db.engine import build_engine

    engine = build_engine(load_settings())
    try:
        click.echo(
            f"database: {migrate.current_revision(engine)}  needed: {migrate.head_revision()}"
        )
    finally:
        engine.dispose()


@main.group()
def tokens() -> None:
    """API tokens: create (straight in the database, to bootstrap), list and revoke (HTTP)."""


@tokens.command("create")
@click.option("--name", required=True, help="Who or what uses the token.")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["reader", "submitter", "reviewer", "operator", "admin", "auditor"]),
)
@click.option("--model-scope", default=None, help="Restrict the token to one model.")
@click.option("--expires-in-days", default=None, type=click.IntRange(1, 3650))
def tokens_create(
    name: str, role: str, model_scope: str | None, expires_in_days: int | None
) -> None:
    """Create a token straight in the database (bootstrap); prints the secret once."""
    from app.auth import service as auth_service
    from app.auth.roles import Principal, Role
    from app.db.engine import build_engine, build_sessionmaker

    settings = load_settings()
    _preflight(settings)
    engine = build_engine(settings)
    try:
        actor = Principal(name=f"cli:{os.environ.get('USER', 'unknown')}", role=Role.ADMIN)
        with build_sessionmaker(engine)() as session, session.begin():
            token, secret = auth_service.create_token(
                session,
                actor=actor,
                name=name,
                role=Role(role),
                model_scope=model_scope,
                expires_in_days=expires_in_days,
            )
        click.echo(secret)
        click.echo(f"created token {token.id} ({role}); the secret above is shown once", err=True)
    finally:
        engine.dispose()


main.add_command(import_group)
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
):
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="modelgate")
