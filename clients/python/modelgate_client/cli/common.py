"""What every API command shares: options, the client, output, errors and exit codes."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from modelgate_client import __version__
from modelgate_client.client import ModelgateClient, ModelgateConnectionError, ModelgateError

EXIT_OK = 0
EXIT_FAILED = 1
"""A gate or check failed, or a request was not applied (rejected, cancelled, timed out)."""
EXIT_USAGE = 2
"""Usage, configuration or connection error: nothing reached the server, or no answer."""
EXIT_SERVER = 3
"""The server answered with an error (problem+json)."""

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 a gate or check failed, or a request was not applied; "
    "2 usage, configuration or connection error; 3 the server answered with an error."
)
DEFAULT_URL = "http://127.0.0.1:8080"

NOT_APPLIED_PROBLEMS = frozenset({"model-frozen"})
"""Problem codes that mean "your request was refused by the model's state, nothing was
applied" (a promotion or approval during a freeze): exit 1, like a rejected request."""

F = TypeVar("F", bound=Callable[..., Any])
_META = "modelgate.cli"


def _json_errors() -> bool:
    """Errors as problem JSON on stderr: ``--output json`` (or MODELGATE_OUTPUT=json)."""
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if _state(ctx).get("output") == "json":
            return True
        ctx = ctx.parent
    return False


def _problem_line(problem: Mapping[str, Any]) -> None:
    click.echo(json.dumps(dict(problem), ensure_ascii=False), err=True)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """One line on stderr (a problem JSON object under ``--output json``), then exit."""
    if _json_errors():
        _problem_line(
            {"type": "about:blank", "title": "Usage or configuration error", "status": None,
             "detail": _one_line(message), "code": "usage-error", "exit_code": code}
        )  # fmt: skip
    else:
        click.echo(f"modelgate: {_one_line(message)}", err=True)
    sys.exit(code)


def note(message: str) -> None:
    """A progress or status line for people, on stderr (stdout stays parseable)."""
    click.echo(f"modelgate: {message}", err=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# Server details that name an API call, and the command that does the same.
_API_CALLS = (
    (re.compile(r"POST /api/v1/models/([^/\s]+)/rollback"), r"modelgate rollback \1"),
    (re.compile(r"POST /api/v1/models/([^/\s]+)/unfreeze"), r"modelgate unfreeze \1"),
    (re.compile(r"POST /api/v1/models/([^/\s]+)/freeze"), r"modelgate freeze \1"),
    (re.compile(r"POST /api/v1/models/([^/\s]+)/promotions"), r"modelgate promote \1"),
    (re.compile(r"PUT /api/v1/models/([^/\s]+)/policy"), r"modelgate policy set \1"),
    (re.compile(r"POST /api/v1/models/([^/\s]+)/versions/(\d+)/archive"),
     r"modelgate archive \1 \2"),
    (re.compile(r"POST /api/v1/promotions/(\d+)/(approve|reject|cancel)"),
     r"modelgate promotions \2 \1"),
    (re.compile(r"POST /api/v1/models(?=[\s),.;]|$)"), "modelgate models create"),
)  # fmt: skip


def cli_words(text: str) -> str:
    """A server message as a CLI user should read it: API calls named as commands."""
    for pattern, command in _API_CALLS:
        text = pattern.sub(command, text)
    return text


def report_error(exc: ModelgateError) -> int:
    """Print a client error (one line plus the failing fields, or the problem JSON under
    ``--output json``) and return the exit code."""
    if isinstance(exc, ModelgateConnectionError):
        code = EXIT_USAGE
    else:
        # A request refused by the model's state (a freeze) applied nothing: exit 1.
        code = EXIT_FAILED if exc.code in NOT_APPLIED_PROBLEMS else EXIT_SERVER
    if _json_errors():
        problem = dict(exc.problem) or {
            "type": "about:blank", "title": exc.title, "status": exc.status,
            "detail": exc.detail, "code": exc.code,
        }  # fmt: skip
        problem["exit_code"] = code
        _problem_line(problem)
        return code
    if isinstance(exc, ModelgateConnectionError):
        click.echo(f"modelgate: {_one_line(exc.detail)}", err=True)
        return code
    click.echo(f"modelgate: {cli_words(_one_line(str(exc)))}", err=True)
    for error in exc.errors[:20]:
        loc = ".".join(str(p) for p in error.get("loc") or [])
        click.echo(f"  {loc}: {_one_line(str(error.get('msg', '')))}", err=True)
    return code


def _with_exit_codes(command: click.Command) -> None:
    """Every command's --help ends with the exit codes."""
    if not command.epilog:
        command.epilog = EXIT_CODES_HELP
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _with_exit_codes(sub)


class ModelgateGroup(click.Group):
    """The root group: turns client errors into one line on stderr and an exit code."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        _with_exit_codes(cmd)
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModelgateError as exc:
            sys.exit(report_error(exc))
        except OSError as exc:  # a file that cannot be read or written
            if exc.filename is not None:
                fail(f"{exc.filename}: {exc.strerror or exc}")
            raise
        except click.ClickException as exc:
            if not _json_errors():
                raise
            fail(exc.format_message(), exc.exit_code)


# Options --------------------------------------------------------------------------------


def _state(ctx: click.Context) -> dict[str, Any]:
    found: dict[str, Any] = ctx.meta.setdefault(_META, {})
    return found


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    assert param.name is not None
    _state(ctx)[param.name] = value
    return value


def make_api_options(default_output: str = "table") -> Callable[[F], F]:
    """``--url``, ``--token`` and ``--output`` for a command that talks to the API."""

    def decorate(func: F) -> F:
        func = click.option(
            "--output",
            type=click.Choice(["table", "json"]),
            default=default_output,
            show_default=True,
            expose_value=False,
            callback=_remember,
            help="table for people; json prints the API's JSON, for scripts.",
        )(func)
        func = click.option(
            "--query",
            metavar="FIELD",
            default=None,
            expose_value=False,
            callback=_remember,
            help="Print only this field of the answer (dotted: artifact.sha256, items.0.version).",
        )(func)
        func = click.option(
            "--token",
            envvar="MODELGATE_TOKEN",
            show_envvar=True,
            expose_value=False,
            callback=_remember,
            help="API token (Bearer).",
        )(func)
        func = click.option(
            "--url",
            envvar="MODELGATE_URL",
            default=DEFAULT_URL,
            show_default=True,
            show_envvar=True,
            expose_value=False,
            callback=_remember,
            help="Server URL.",
        )(func)
        return func

    return decorate


api_options = make_api_options("table")


def output_option(func: F) -> F:
    """``--output`` and ``--query`` alone, for a command that does not talk to the API."""
    func = click.option(
        "--query", metavar="FIELD", default=None, expose_value=False, callback=_remember,
        help="Print only this field of the answer.",
    )(func)  # fmt: skip
    return click.option(
        "--output", type=click.Choice(["table", "json"]), default="table", show_default=True,
        expose_value=False, callback=_remember, help="table for people; json for scripts.",
    )(func)  # fmt: skip


def page_options(func: F) -> F:
    """``--limit``, ``--cursor`` and ``--all`` on a list command."""
    func = click.option(
        "--all", "all_pages", is_flag=True, help="Follow cursors and print every item."
    )(func)
    func = click.option("--cursor", default=None, help="next_cursor of the previous page.")(func)
    func = click.option(
        "--limit", type=click.IntRange(1, 500), default=50, show_default=True, help="Page size."
    )(func)
    return func


def output_format() -> str:
    value = _state(click.get_current_context()).get("output", "table")
    return str(value)


def json_output() -> bool:
    return output_format() == "json"


def client() -> ModelgateClient:
    """The command's client, built once from --url and --token, closed with the context."""
    ctx = click.get_current_context()
    state = _state(ctx)
    found = state.get("client")
    if isinstance(found, ModelgateClient):
        return found
    token = state.get("token")
    if not token:
        fail("no API token: set MODELGATE_TOKEN or pass --token")
    try:
        made = ModelgateClient(
            str(state.get("url") or DEFAULT_URL),
            str(token),
            user_agent=f"modelgate-cli/{__version__}",
        )
    except ValueError as exc:
        fail(f"{exc} (set MODELGATE_URL or pass --url)")
    state["client"] = made
    ctx.call_on_close(made.close)
    return made


def fetch_page(
    fetch: Callable[[str | None, int], Any],
    *,
    limit: int,
    cursor: str | None,
    all_pages: bool,
) -> dict[str, Any]:
    """One page as the API sent it, or with ``--all`` every item in one page."""
    if not all_pages:
        first: dict[str, Any] = fetch(cursor, limit)
        return first
    items: list[Any] = []
    while True:
        page = fetch(cursor, 500)
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return {"items": items, "next_cursor": None}


# Output ---------------------------------------------------------------------------------


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def select(data: Any, path: str) -> Any:
    """The value at a dotted path (``artifact.sha256``, ``items.0.version``)."""
    found = data
    for part in path.split("."):
        if isinstance(found, Mapping) and part in found:
            found = found[part]
        elif (
            isinstance(found, list)
            and part.lstrip("-").isdigit()
            and -len(found) <= int(part) < len(found)
        ):
            found = found[int(part)]
        else:
            fail(f"the answer has no field {path!r}")
    return found


def emit(data: Any, render: Callable[[Any], str]) -> None:
    """Only the ``--query`` field, or the API's JSON with --output json, else
    ``render(data)``."""
    query = _state(click.get_current_context()).get("query")
    if query:
        value = select(data, str(query))
        if isinstance(value, str) or value is None or isinstance(value, int | float):
            click.echo("" if value is None else str(value).lower() if isinstance(value, bool)
                       else str(value))  # fmt: skip
        else:
            click.echo(json.dumps(value, ensure_ascii=False))
        return
    if json_output():
        print_json(data)
    else:
        click.echo(render(data))


def more_hint(page: dict[str, Any]) -> None:
    if page.get("next_cursor") and not json_output():
        note(f"more: --cursor {page['next_cursor']} (or --all)")


def fmt(value: Any) -> str:
    """A cell: '-' for nothing, yes/no, 4 significant digits for floats."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return " ".join(f"{k}={fmt(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ",".join(fmt(v) for v in value) or "-"
    return _one_line(str(value))


def ts(value: Any) -> str:
    """``2026-11-26T10:12:03.123456Z`` -> ``2026-11-26 10:12:03``."""
    if not isinstance(value, str) or len(value) < 19:
        return fmt(value)
    return value[:10] + " " + value[11:19]


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    max_width: int = 60,
    widths_by_column: Mapping[int, int] | None = None,
) -> str:
    """Left-aligned columns separated by two spaces; long cells are cut (at ``max_width``,
    or the column's own width in ``widths_by_column``)."""
    caps = widths_by_column or {}
    cells = [[_cut(fmt(c), caps.get(i, max_width)) for i, c in enumerate(row)] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for row in cells:
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())
    return "\n".join(lines)


def kv(pairs: Iterable[tuple[str, Any]]) -> str:
    """``key: value`` lines, aligned."""
    items = [(k, fmt(v)) for k, v in pairs]
    width = max((len(k) for k, _ in items), default=0)
    return "\n".join(f"{(k + ':').ljust(width + 1)} {v}" for k, v in items)


# Input ----------------------------------------------------------------------------------


def read_json_file(path: str | Path, what: str) -> Any:
    """A JSON file, or one clear usage error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read the {what} file {path}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        fail(f"the {what} file {path} is not UTF-8 text")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"the {what} file {path} is not valid JSON: {exc}")


def parse_tags(values: Iterable[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--tag")
        tags[key] = value
    return tags
