"""``tokens create|list|revoke|principals`` and ``audit tail|verify|export``.

Everything here talks HTTP, but ``tokens create --bootstrap``: the way in (or back) when
no admin token exists, straight in a database that must already exist.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from modelgate_client.api_types import AuditEvent
from modelgate_client.cli.common import (
    EXIT_FAILED,
    api_options,
    client,
    emit,
    fetch_page,
    json_output,
    kv,
    make_api_options,
    more_hint,
    note,
    page_options,
    table,
    ts,
)
from modelgate_client.client import all_items

# tokens ---------------------------------------------------------------------------------


def render_tokens(page: dict[str, Any]) -> str:
    if not page["items"]:
        return "no tokens"
    return table(
        ["ID", "NAME", "PRINCIPAL", "ROLE", "SCOPE", "CREATED", "BY", "EXPIRES", "REVOKED"],
        [
            [
                t["id"], t["name"], t.get("principal"), t["role"], t.get("model_scope"),
                ts(t.get("created_at")), t.get("created_by"), ts(t.get("expires_at")),
                ts(t.get("revoked_at")),
            ]
            for t in page["items"]
        ],
    )  # fmt: skip


def render_token(t: dict[str, Any]) -> str:
    return kv(
        [
            ("id", t["id"]),
            ("name", t["name"]),
            ("principal", f"{t.get('principal')} ({t.get('principal_kind')})"),
            ("role", t["role"]),
            ("model scope", t.get("model_scope")),
            ("created", f"{ts(t.get('created_at'))} by {t.get('created_by')}"),
            ("expires", ts(t.get("expires_at"))),
            ("revoked", ts(t.get("revoked_at"))),
        ]
    )


ROLES = ["reader", "submitter", "reviewer", "operator", "admin", "auditor"]


def render_created(t: dict[str, Any]) -> str:
    # The secret alone on stdout, for `TOKEN=$(modelgate tokens create ...)`.
    note(
        f"created token {t['id']} ({t['role']}) of {t.get('principal_kind', 'person')} "
        f"{t.get('principal', t['name'])!r}; the secret is shown once"
    )
    return str(t["token"])


@click.command("create")
@click.option("--name", required=True, help="A label for the token (where or what it is for).")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option(
    "--principal",
    default=None,
    help="Who holds it: a person or service account (created if new). Default: --name.",
)
@click.option("--principal-kind", type=click.Choice(["person", "service"]), default=None)
@click.option("--model-scope", default=None, help="Restrict the token to one model.")
@click.option("--expires-in-days", default=None, type=click.IntRange(1, 3650))
@click.option(
    "--bootstrap",
    is_flag=True,
    help="Write straight to the database (--database-url), not over HTTP: the way in, "
    "or back, when no admin token works. The database must exist.",
)
@click.option(
    "--database-url",
    envvar="MODELGATE_DATABASE_URL",
    show_envvar=True,
    default=None,
    help="With --bootstrap: the server's database (required; nothing is assumed).",
)
@api_options
def tokens_create(
    name: str,
    role: str,
    principal: str | None,
    principal_kind: str | None,
    model_scope: str | None,
    expires_in_days: int | None,
    bootstrap: bool,
    database_url: str | None,
) -> None:
    """Create a token and print its secret once. Over HTTP with an admin token, or with
    --bootstrap straight in an existing database."""
    if bootstrap:
        from app.cli.bootstrap import create_token_in_database

        created = create_token_in_database(
            database_url,
            name=name,
            role=role,
            principal=principal,
            principal_kind=principal_kind,
            model_scope=model_scope,
            expires_in_days=expires_in_days,
        )
    else:
        created = dict(
            client().create_token(
                name,
                role,
                model_scope=model_scope,
                expires_in_days=expires_in_days,
                principal=principal,
                principal_kind=principal_kind,
            )
        )
    emit(created, render_created)


def render_principals(page: dict[str, Any]) -> str:
    if not page["items"]:
        return "no principals"
    return table(
        ["NAME", "KIND", "ACTIVE ROLES", "CREATED", "BY"],
        [
            [p["name"], p["kind"], p["active_roles"], ts(p.get("created_at")), p.get("created_by")]
            for p in page["items"]
        ],
    )


@click.command("principals")
@page_options
@api_options
def tokens_principals(limit: int, cursor: str | None, all_pages: bool) -> None:
    """List principals (people and service accounts) and the roles their active tokens
    hold. Needs an admin token."""
    mg = client()
    page = fetch_page(
        lambda c, n: mg.list_principals(cursor=c, limit=n),
        limit=limit,
        cursor=cursor,
        all_pages=all_pages,
    )
    emit(page, render_principals)
    more_hint(page)


@click.command("list")
@page_options
@api_options
def tokens_list(limit: int, cursor: str | None, all_pages: bool) -> None:
    """List API tokens (never their secrets). Needs an admin token."""
    mg = client()
    page = fetch_page(
        lambda c, n: mg.list_tokens(cursor=c, limit=n),
        limit=limit,
        cursor=cursor,
        all_pages=all_pages,
    )
    emit(page, render_tokens)
    more_hint(page)


@click.command("revoke")
@click.argument("token_id")
@api_options
def tokens_revoke(token_id: str) -> None:
    """Revoke token TOKEN_ID; it stops working at once. Needs an admin token."""
    emit(client().revoke_token(token_id), render_token)


# audit ----------------------------------------------------------------------------------


def _stages(e: dict[str, Any]) -> str:
    if e.get("from_stage") or e.get("to_stage"):
        return f"{e.get('from_stage') or '-'}->{e.get('to_stage') or '-'}"
    return "-"


def _event_row(e: dict[str, Any]) -> list[Any]:
    return [
        e["id"], ts(e["occurred_at"]), f"{e['actor']} ({e['actor_role']})", e["action"],
        e.get("model"), e.get("version"), _stages(e), e.get("reason"),
    ]  # fmt: skip


EVENT_HEADERS = ["ID", "TIME", "ACTOR", "ACTION", "MODEL", "VERSION", "STAGES", "REASON"]


def render_events(page: dict[str, Any]) -> str:
    if not page["items"]:
        return "no audit events"
    return table(EVENT_HEADERS, [_event_row(e) for e in page["items"]])


@click.group()
def audit() -> None:
    """The hash-chained audit log (auditor or admin token)."""


@audit.command("tail")
@click.option("--model", default=None)
@click.option("--action", default=None, help="e.g. promotion.applied, model.rolled_back.")
@click.option("--actor", default=None)
@click.option(
    "--limit", type=click.IntRange(1, 10_000), default=20, show_default=True, help="Last N."
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events (Ctrl-C stops).")
@click.option(
    "--interval", type=click.FloatRange(min=0.2), default=2.0, show_default=True, hidden=True
)
@api_options
def audit_tail(
    model: str | None,
    action: str | None,
    actor: str | None,
    limit: int,
    follow: bool,
    interval: float,
) -> None:
    """The latest audit events, oldest of them first.

    With --output json: one JSON page ({"items": [...]}), or with --follow one event
    per line (JSON lines)."""
    mg = client()

    def events_since(after: str | None) -> Iterator[AuditEvent]:
        return all_items(
            lambda c: mg.query_audit(
                model=model, actor=actor, action=action, since=after, cursor=c, limit=1000
            )
        )

    # The API lists oldest first with no way to start from the end, so keep the last N.
    events = list(deque(events_since(None), maxlen=limit))
    if not follow:
        emit({"items": events, "next_cursor": None}, render_events)
        return
    _print_events(events, header=True)
    seen = {e["id"] for e in events}
    since: str | None = events[-1]["occurred_at"] if events else None
    with _stop_on_interrupt() as stop:
        while stop.sleep(interval):
            fresh = [e for e in events_since(since) if e["id"] not in seen]
            for e in fresh:
                seen.add(e["id"])
                since = max(since or e["occurred_at"], e["occurred_at"])
            _print_events(fresh, header=False)


class _Stop:
    """Set by Ctrl-C (SIGINT) or SIGTERM while installed; see :func:`_stop_on_interrupt`."""

    def __init__(self) -> None:
        self.requested = False

    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking early on a stop; whether to go on."""
        deadline = time.monotonic() + seconds
        while not self.requested and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))
        return not self.requested


@contextlib.contextmanager
def _stop_on_interrupt() -> Iterator[_Stop]:
    """Turn Ctrl-C and SIGTERM into a flag checked between polls, not KeyboardInterrupt.

    A KeyboardInterrupt can land anywhere, including inside the HTTP client's connection
    pool while it holds its lock, and closing the client at exit then waits forever; with
    a flag the request in flight finishes and the command exits 0. (The handler only
    sets an attribute: anything that takes a lock could deadlock against the code it
    interrupted.)
    """
    stop = _Stop()

    def handler(_signum: int, _frame: object) -> None:
        stop.requested = True

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _print_events(events: list[AuditEvent], *, header: bool) -> None:
    if json_output():
        for e in events:
            click.echo(json.dumps(e, ensure_ascii=False))
        return
    if not events:
        if header:
            note("no audit events yet; waiting for new ones")
        return
    text = table(EVENT_HEADERS, [_event_row(dict(e)) for e in events])
    click.echo(text if header else text.split("\n", 1)[1])
    sys.stdout.flush()


def render_verification(v: dict[str, Any]) -> str:
    if v.get("ok"):
        return f"audit log intact: {v['events_checked']} events in {v['streams_checked']} chain(s)"
    problems = v.get("problems") or []
    lines = [
        f"audit log NOT intact: {len(problems)} problem(s) in {v['events_checked']} events "
        f"({v['streams_checked']} chain(s))",
        "",
        table(
            ["STREAM", "SEQ", "EVENT", "KIND", "DETAIL"],
            [[p["stream"], p["seq"], p.get("event_id"), p["kind"], p["detail"]] for p in problems],
            max_width=90,
        ),
    ]
    return "\n".join(lines)


@audit.command("verify")
@api_options
def audit_verify() -> None:
    """Recompute every hash chain. Exit 1 when an event was altered, inserted or deleted."""
    result = client().verify_audit()
    emit(result, render_verification)
    if not result["ok"]:
        sys.exit(EXIT_FAILED)


@audit.command("export")
@click.option("--model", default=None)
@click.option("--since", type=click.DateTime(), default=None, help="Events at or after.")
@click.option("--until", type=click.DateTime(), default=None, help="Events before.")
@click.option(
    "--dest",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write to this file instead of stdout.",
)
@make_api_options(default_output="json")
def audit_export(
    model: str | None, since: datetime | None, until: datetime | None, dest: str | None
) -> None:
    """Every matching event as JSON lines, with its hashes, for offline checking:

    modelgate audit export --model fraud > fraud-audit.jsonl

    (--output table prints a table instead.)"""
    # click parses a date-time without an offset; the API takes RFC 3339 only: it is UTC.
    since, until = (t.replace(tzinfo=UTC) if t and t.tzinfo is None else t for t in (since, until))
    lines = client().export_audit(model=model, since=since, until=until)
    if not json_output():
        events = [json.loads(line) for line in lines]
        click.echo(render_events({"items": events}))
        return
    count = 0
    if dest is None:
        for line in lines:
            click.echo(line)
            count += 1
        return
    partial = Path(dest + ".part")
    with partial.open("w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line + "\n")
            count += 1
    partial.replace(dest)
    note(f"wrote {count} event(s) to {dest}")
