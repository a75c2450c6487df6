"""Gates, promotions, reviewer decisions and on-call operations (rollback, freeze)."""

from __future__ import annotations

import os
import re
import shutil
import sys
import textwrap
import time
import uuid
from typing import Any

import click

from modelgate_client import ci
from modelgate_client.api_types import PromotionRead
from modelgate_client.cli.common import (
    EXIT_FAILED,
    api_options,
    client,
    emit,
    fail,
    fetch_page,
    fmt,
    kv,
    more_hint,
    note,
    page_options,
    table,
    ts,
)
from modelgate_client.client import ModelgateError

PROMOTION_STATUSES = (
    "pending_approval", "approved", "rejected", "applied", "cancelled", "superseded",
)  # fmt: skip
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
NOT_APPLIED = frozenset({"rejected", "cancelled", "superseded"})


# Rendering ------------------------------------------------------------------------------


def _threshold(rule: dict[str, Any]) -> str:
    parts = []
    if rule.get("threshold") is not None:
        parts.append(f"{rule['threshold']:.4g}")
    if rule.get("delta") is not None:
        parts.append(f"delta {rule['delta']:.4g}")
    return " / ".join(parts) or "-"


def _p_value(rule: dict[str, Any]) -> str:
    p = rule.get("p_value")
    return "-" if p is None else f"{p:.3g}"


def _observed(observed: Any) -> str:
    if not isinstance(observed, dict):
        return fmt(observed)
    parts = []
    for key, value in observed.items():
        text = fmt(value)
        if isinstance(value, str) and _HEX64.match(value):
            text = value[:12] + "…"
        parts.append(f"{key}={text}")
    return " ".join(parts) or "-"


def render_rules(report: dict[str, Any], width: int | None = None) -> str:
    """The rules as a table when it fits the terminal (``COLUMNS`` is honoured), else one
    block per rule with wrapped lines. Observed values and reasons are never cut."""
    rules = report.get("rules") or []
    if not rules:
        return "no gate rules"
    columns = width or shutil.get_terminal_size((100, 24)).columns
    rows = [
        [
            r["rule"], "pass" if r["passed"] else "FAIL", _observed(r.get("observed")),
            _threshold(r), _p_value(r), fmt(r.get("reason")),
        ]
        for r in rules
    ]  # fmt: skip
    headers = ["RULE", "RESULT", "OBSERVED", "THRESHOLD/DELTA", "P-VALUE", "REASON"]
    text = table(headers, rows, max_width=10_000)
    if max(len(line) for line in text.splitlines()) > columns:
        text = "\n".join(_rule_block(row, columns) for row in rows)
    # One greppable line per failing rule, its reason in full: what the reader acts on.
    failing = [f"FAILED {r['rule']}: {r.get('reason')}" for r in rules if not r["passed"]]
    return "\n".join([text, "", *failing]) if failing else text


def _rule_block(row: list[str], columns: int) -> str:
    """``RESULT  rule`` then indented ``field: value`` lines, wrapped at ``columns``."""
    name, result, observed, threshold, p_value, reason = row
    lines = textwrap.wrap(f"{result:<4}  {name}", columns, subsequent_indent="      ") or [""]
    for label, value in (
        ("observed", observed), ("threshold", threshold), ("p-value", p_value),
        ("reason", reason),
    ):  # fmt: skip
        if value == "-" and label != "reason":
            continue
        head = f"      {label + ':':<11}"
        lines += textwrap.wrap(
            value,
            max(columns, len(head) + 20),
            initial_indent=head,
            subsequent_indent=" " * len(head),
            break_long_words=True,
            break_on_hyphens=False,
        ) or [head.rstrip()]
    return "\n".join(lines)


def report_summary(report: dict[str, Any]) -> str:
    rules = report.get("rules") or []
    failed = report.get("failed") or []
    against = report.get("evaluated_against")
    versus = f"compared with production version {against}" if against else "no production version"
    verdict = (
        "all gates pass"
        if report.get("passed")
        else f"{len(failed)} of {len(rules)} gate(s) FAILED: {', '.join(failed)}"
    )
    return (
        f"{report['model']} version {report['version']} -> {report['target']}: {verdict} "
        f"({versus}; policy revision {report.get('policy_revision')}; "
        f"approvals required {report.get('approvals_required')})"
    )


def render_report(report: dict[str, Any]) -> str:
    return report_summary(report) + "\n\n" + render_rules(report)


def promotion_line(p: dict[str, Any]) -> str:
    approvals = f"{len(p.get('approvals') or [])}/{p.get('approvals_required')}"
    line = (
        f"promotion {p['id']}: {p['model']} version {p['version']} "
        f"{p['from_stage']} -> {p['target']}: {p['status']} (approvals {approvals})"
    )
    if p.get("decision_comment"):
        line += f"; {p['decision_comment']}"
    return line


def render_promotion(p: dict[str, Any]) -> str:
    lines = [
        promotion_line(p),
        kv(
            [
                ("requested", f"{ts(p.get('requested_at'))} by {p.get('requested_by')}"),
                ("comment", p.get("comment")),
                (
                    "decided",
                    f"{ts(p.get('decided_at'))} by {p.get('decided_by')}"
                    if p.get("decided_at")
                    else None,
                ),
                ("applied", ts(p.get("applied_at")) if p.get("applied_at") else None),
            ]
        ),
    ]
    approvals = p.get("approvals") or []
    if approvals:
        lines += [
            "",
            table(
                ["REVIEWER", "ROLE", "AT", "COMMENT"],
                [
                    [a["reviewer"], a["reviewer_role"], ts(a["created_at"]), a.get("comment")]
                    for a in approvals
                ],
            ),
        ]
    report = p.get("report")
    if report:
        lines += ["", render_report(report)]
    return "\n".join(lines)


def render_promotions(page: dict[str, Any]) -> str:
    if not page["items"]:
        return "no promotion requests"
    return table(
        ["ID", "MODEL", "VERSION", "FROM", "TO", "STATUS", "GATES", "APPROVALS", "REQUESTED BY",
         "REQUESTED AT"],
        [
            [
                p["id"], p["model"], p["version"], p["from_stage"], p["target"], p["status"],
                "pass" if (p.get("report") or {}).get("passed") else "FAIL",
                f"{len(p.get('approvals') or [])}/{p.get('approvals_required')}",
                p.get("requested_by"), ts(p.get("requested_at")),
            ]
            for p in page["items"]
        ],
    )  # fmt: skip


def render_history(page: dict[str, Any]) -> str:
    if not page["items"]:
        return "no production history"
    return table(
        ["VERSION", "FROM", "UNTIL", "VIA", "BY", "REPLACED", "ENDED BY", "REASON"],
        [
            [
                h["version"], ts(h["started_at"]),
                ts(h["ended_at"]) if h.get("ended_at") else "serving", h["via"], h["actor"],
                h.get("replaced_version"), h.get("ended_by"), h.get("reason"),
            ]
            for h in page["items"]
        ],
    )  # fmt: skip


# evaluate -------------------------------------------------------------------------------


@click.command()
@click.argument("model")
@click.argument("version", type=click.IntRange(1))
@click.option(
    "--target", required=True, type=click.Choice(["staging", "production"]), help="Stage."
)
@api_options
def evaluate(model: str, version: int, target: str) -> None:
    """Dry-run the gates of TARGET for a version; nothing changes.

    Exit 0 when every gate passes, 1 when any fails."""
    report = client().evaluate(model, version, target=target)
    emit(report, render_report)
    if not report["passed"]:
        sys.exit(EXIT_FAILED)


# promote --------------------------------------------------------------------------------


def _promotion_key(model: str, version: int, target: str) -> str:
    run = ci.detect_ci(dict(os.environ))
    if run is None:
        return f"promote-{uuid.uuid4().hex}"
    return ci.promote_key(run, model=model, version=version, target=target)


def wait_for_decision(
    promotion: PromotionRead, *, timeout: float, interval: float
) -> PromotionRead:
    """Poll the request until it is no longer pending, or fail after ``timeout`` seconds."""
    mg = client()
    deadline = time.monotonic() + timeout
    note(
        f"waiting up to {timeout:g} s for a reviewer to decide promotion {promotion['id']} "
        f"(modelgate promotions approve {promotion['id']})"
    )
    current = promotion
    while current["status"] == "pending_approval":
        left = deadline - time.monotonic()
        if left <= 0:
            emit(current, render_promotion)
            fail(
                f"timed out after {timeout:g} s: promotion {current['id']} of {current['model']} "
                f"version {current['version']} to {current['target']} is still pending_approval",
                EXIT_FAILED,
            )
        time.sleep(min(interval, max(left, 0.05)))
        try:
            current = mg.get_promotion(current["id"])
        except ModelgateError as exc:
            # A long wait outlives a server restart or a deploy: keep polling until the
            # deadline. Answers such as 401 or 404 will not get better, so they end it.
            if exc.status is not None and exc.status < 500:
                raise
            note(f"polling failed ({exc}); trying again")
    return current


def finish_promotion(promotion: PromotionRead) -> None:
    emit(promotion, render_promotion)
    if promotion["status"] in NOT_APPLIED:
        sys.exit(EXIT_FAILED)


@click.command()
@click.argument("model")
@click.argument("version", type=click.IntRange(1))
@click.option(
    "--to", "target", required=True, type=click.Choice(["staging", "production"]), help="Stage."
)
@click.option("--comment", default=None, help="Why; shown to reviewers and kept in the audit log.")
@click.option("--wait", is_flag=True, help="Wait for a reviewer's decision when one is needed.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=3600,
    show_default=True,
    help="Seconds to --wait before giving up (exit 1).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between polls while waiting.",
)
@click.option("--idempotency-key", default=None, help="Override the derived key.")
@api_options
def promote(
    model: str,
    version: int,
    target: str,
    comment: str | None,
    wait: bool,
    timeout: float,
    interval: float,
    idempotency_key: str | None,
) -> None:
    """Ask to move a version to staging or production; the gates run now.

    Exit 0 when applied (or pending approval, without --wait), 1 when rejected,
    cancelled or superseded, or when --wait times out."""
    mg = client()
    key = idempotency_key or _promotion_key(model, version, target)
    try:
        created = mg.request_promotion(
            model, version, target=target, comment=comment, idempotency_key=key
        )
        promotion: PromotionRead = created.body
        if created.replayed:
            promotion = mg.get_promotion(promotion["id"])
            note(
                f"replayed: this CI job already requested promotion {promotion['id']} "
                f"(now {promotion['status']}); pass --idempotency-key to ask again"
            )
    except ModelgateError as exc:
        pending = exc.problem.get("promotion_id")
        if exc.status != 409 or not isinstance(pending, int):
            raise
        # A re-run job finds the request its first attempt made: follow that one.
        note(f"promotion {pending} for this version and stage is already pending; following it")
        promotion = mg.get_promotion(pending)
    if wait and promotion["status"] == "pending_approval":
        promotion = wait_for_decision(promotion, timeout=timeout, interval=interval)
    finish_promotion(promotion)


# promotions -----------------------------------------------------------------------------


@click.group()
def promotions() -> None:
    """Promotion requests: the review queue and decisions."""


@promotions.command("list")
@click.option(
    "--status", type=click.Choice(PROMOTION_STATUSES), default=None, help="e.g. pending_approval."
)
@click.option("--model", default=None)
@page_options
@api_options
def promotions_list(
    status: str | None, model: str | None, limit: int, cursor: str | None, all_pages: bool
) -> None:
    """List promotion requests, oldest first."""
    mg = client()
    page = fetch_page(
        lambda c, n: mg.list_promotions(status=status, model=model, cursor=c, limit=n),
        limit=limit,
        cursor=cursor,
        all_pages=all_pages,
    )
    emit(page, render_promotions)
    more_hint(page)


@promotions.command("show")
@click.argument("promotion_id", type=click.IntRange(1))
@api_options
def promotions_show(promotion_id: int) -> None:
    """Show a request with its gate report and approvals."""
    emit(client().get_promotion(promotion_id), render_promotion)


@promotions.command("approve")
@click.argument("promotion_id", type=click.IntRange(1))
@click.option("--comment", default=None)
@api_options
def promotions_approve(promotion_id: int, comment: str | None) -> None:
    """Approve a pending request (never one you requested). With enough approvals it is
    applied; exit 1 when the gates, run again because production changed, reject it."""
    finish_promotion(client().approve_promotion(promotion_id, comment=comment))


@promotions.command("reject")
@click.argument("promotion_id", type=click.IntRange(1))
@click.option("--comment", required=True, help="Why it is rejected.")
@api_options
def promotions_reject(promotion_id: int, comment: str) -> None:
    """Reject a pending request, saying why."""
    emit(client().reject_promotion(promotion_id, comment=comment), render_promotion)


@promotions.command("cancel")
@click.argument("promotion_id", type=click.IntRange(1))
@click.option("--comment", default=None)
@api_options
def promotions_cancel(promotion_id: int, comment: str | None) -> None:
    """Withdraw a pending request (its requester, or an operator)."""
    emit(client().cancel_promotion(promotion_id, comment=comment), render_promotion)


# archive, rollback, freeze, history ----------------------------------------------------------


@click.command()
@click.argument("model")
@click.argument("version", type=click.IntRange(1))
@click.option("--reason", default=None)
@api_options
def archive(model: str, version: int, reason: str | None) -> None:
    """Retire a candidate or staging version (its artifact is kept for rollback)."""
    from modelgate_client.cli.commands_registry import render_version

    emit(client().archive_version(model, version, reason=reason), render_version)


@click.command()
@click.argument("model")
@click.option(
    "--to", "to_version", type=click.IntRange(1), default=None, help="An archived version."
)
@click.option("--reason", required=True, help="Why (kept in the audit log).")
@click.option("--deep-check", is_flag=True, help="Re-hash the target artifact first.")
@api_options
def rollback(model: str, to_version: int | None, reason: str, deep_check: bool) -> None:
    """Put the previous stable version (or --to VERSION) back into production.

    Works while the model is frozen; nothing changes unless the target's artifact is
    intact. Sent with an Idempotency-Key, so a retry never rolls back twice."""
    done = client().rollback(
        model,
        reason=reason,
        to_version=to_version,
        deep_check=deep_check,
        idempotency_key=f"rollback-{uuid.uuid4().hex}",
    )
    emit(
        done.body,
        lambda r: (
            f"{r['model']}: production is now version {r['serving_version']} "
            f"(was {r['replaced_version']}); artifact check: {r['artifact_check']}"
        ),
    )


def _render_freeze(f: dict[str, Any]) -> str:
    if f.get("frozen"):
        return (
            f"{f['model']} is frozen: promotions to production are refused "
            f"(by {f.get('frozen_by')} at {ts(f.get('frozen_at'))}: {f.get('reason')})"
        )
    return f"{f['model']} is not frozen: promotions to production are allowed"


@click.command()
@click.argument("model")
@click.option("--reason", required=True, help="Why (kept in the audit log).")
@api_options
def freeze(model: str, reason: str) -> None:
    """Refuse promotions of MODEL to production during an incident (rollback still works)."""
    emit(client().freeze(model, reason=reason), _render_freeze)


@click.command()
@click.argument("model")
@click.option("--reason", required=True, help="Why (kept in the audit log).")
@api_options
def unfreeze(model: str, reason: str) -> None:
    """Allow promotions of MODEL to production again."""
    emit(client().unfreeze(model, reason=reason), _render_freeze)


@click.command()
@click.argument("model")
@page_options
@api_options
def history(model: str, limit: int, cursor: str | None, all_pages: bool) -> None:
    """The production timeline of MODEL, newest first: which version served when, and why."""
    mg = client()
    page = fetch_page(
        lambda c, n: mg.history(model, cursor=c, limit=n),
        limit=limit,
        cursor=cursor,
        all_pages=all_pages,
    )
    emit(page, render_history)
    more_hint(page)
