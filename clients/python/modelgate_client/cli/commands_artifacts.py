"""``artifacts scrub``: re-verify every referenced artifact over HTTP, with progress."""

from __future__ import annotations

import sys
from typing import Any

import click

from modelgate_client.cli.common import EXIT_FAILED, api_options, client, emit, kv, table


@click.group()
def artifacts() -> None:
    """Stored artifacts: integrity checks."""


def render_scrub(report: dict[str, Any]) -> str:
    problems = [item for item in report["items"] if not item["intact"]]
    lines = [
        kv(
            [
                ("artifacts", report["total_artifacts"]),
                ("checked", report["checked"]),
                ("intact", report["intact"]),
                ("corrupt or missing", report["corrupt"]),
                ("unreferenced objects", len(report["unreferenced"] or [])),
            ]
        )
    ]
    if problems:
        rows = [
            [
                item["key"],
                ", ".join(f"{v['model']} v{v['version']}" for v in item["versions"]),
                item["check"]["method"],
                item["check"]["detail"],
            ]
            for item in problems
        ]
        lines += ["", table(["artifact", "versions", "method", "finding"], rows, max_width=80)]
    if report["unreferenced"]:
        lines += ["", "unreferenced objects (no version names them):"]
        lines += [f"  {key}" for key in report["unreferenced"]]
    return "\n".join(lines)


@artifacts.command("scrub")
@click.option("--batch", default=50, show_default=True, type=click.IntRange(1, 1000),
              help="Artifacts verified per request.")  # fmt: skip
@click.option("--rehash", is_flag=True, help="Re-hash every object, even where the store keeps a "
              "SHA-256 checksum of it.")  # fmt: skip
@api_options
def artifacts_scrub(batch: int, rehash: bool) -> None:
    """Re-verify every artifact a version names (content, not just size) and list the
    stored objects no version names. Corrupt artifacts are marked and announced by the
    server. Exit 1 when any artifact is corrupt or missing."""
    api = client()
    merged: dict[str, Any] = {"items": [], "unreferenced": None}
    cursor: str | None = None
    checked = corrupt = 0
    tty = sys.stderr.isatty()
    while True:
        report = api.scrub_artifacts(cursor=cursor, limit=batch, rehash=rehash)
        checked += report["checked"]
        corrupt += report["corrupt"]
        merged["items"] += report["items"]
        merged["total_artifacts"] = report["total_artifacts"]
        cursor = report["next_cursor"]
        # One line per batch in a log; one line rewritten in place on a terminal.
        line = (
            f"scrubbing: {checked}/{report['total_artifacts']} artifacts checked, "
            f"{corrupt} corrupt or missing"
        )
        click.echo(f"\r{line}" if tty else line, err=True, nl=not tty or cursor is None)
        if cursor is None:
            merged["unreferenced"] = report["unreferenced"]
            break
    merged.update(checked=checked, corrupt=corrupt, intact=checked - corrupt, next_cursor=None)
    emit(merged, render_scrub)
    if corrupt:
        sys.exit(EXIT_FAILED)
