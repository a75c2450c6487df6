"""``modelgate rollout start|status|list|advance|pause|resume|abort|approve``."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from modelgate_client.cli.common import (
    EXIT_FAILED,
    api_options,
    client,
    emit,
    fail,
    fetch_page,
    fmt,
    json_output,
    kv,
    more_hint,
    note,
    page_options,
    read_json_file,
    table,
    ts,
)
from modelgate_client.client import rollout_mark
from modelgate_client.rollouts import STEPS_HELP, format_hold, format_steps, parse_steps

STRATEGIES = ("canary", "blue_green", "shadow", "ab")
STATES = ("running", "paused", "completed", "aborted")
ENDED = frozenset({"completed", "aborted"})
WATCH_DECISIONS = 10


# Rendering ------------------------------------------------------------------------------


def _pct(value: Any) -> str:
    return "-" if value is None else f"{float(value):g}%"


def render_weights(rollout: dict[str, Any]) -> str:
    weights = rollout.get("weights") or {}
    parts = [f"v{v} {_pct(w)}" for v, w in sorted(weights.items(), key=lambda kv: int(kv[0]))]
    text = ", ".join(parts) or ("- (ended)" if rollout.get("state") in ENDED else "-")
    share = rollout.get("shadow_share")
    if share:
        text += f" (v{rollout['version']} shadows {_pct(share)} of requests)"
    return text


def _step_line(rollout: dict[str, Any]) -> str:
    steps = rollout.get("steps") or []
    index = int(rollout.get("step") or 0)
    if not steps or index >= len(steps):
        return f"{index + 1} of {len(steps)}"
    step = steps[index]
    hold = format_hold(step.get("hold"))
    line = f"{index + 1} of {len(steps)}: {_pct(step.get('weight'))} until {hold}"
    extra = []
    if step.get("started_at"):
        extra.append(f"started {ts(step['started_at'])}")
    if step.get("approved_by"):
        extra.append(f"approved by {step['approved_by']}")
    return line + (f" ({', '.join(extra)})" if extra else "")


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return fmt(value)


def _p(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3g}"


def render_look(look: dict[str, Any] | None) -> str:
    """The latest look: its score and status, then one row per metric."""
    if not look:
        return "no look yet"
    step = int(look.get("step") or 0) + 1
    head = (
        f"look {look.get('number')} at {ts(look.get('at'))} (step {step}): "
        f"score {_value(look.get('score'))}, {look.get('status')}"
    )
    if look.get("action") or look.get("reason"):
        head += f" -> {look.get('action') or '-'}: {fmt(look.get('reason'))}"
    results = look.get("results") or []
    if not results:
        return head
    rows = []
    for r in results:
        samples = r.get("samples") or []
        rows.append(
            [
                r.get("metric"), r.get("kind"), r.get("verdict"), _value(r.get("canary")),
                _value(r.get("incumbent")), _value(r.get("effect")), _value(r.get("tolerance")),
                _p(r.get("p_value")), "/".join(str(n) for n in samples) or "-", r.get("reason"),
            ]
        )  # fmt: skip
    headers = ["METRIC", "KIND", "VERDICT", "CANARY", "INCUMBENT", "EFFECT", "TOLERANCE",
               "P-VALUE", "N (C/I)", "REASON"]  # fmt: skip
    return head + "\n" + table(headers, rows, max_width=80)


def render_decisions(decisions: list[dict[str, Any]], last: int | None = None) -> str:
    if not decisions:
        return "no decisions yet"
    shown = decisions if last is None else decisions[-last:]
    rows = [
        [ts(d.get("at")), d.get("action"), int(d.get("step") or 0) + 1, d.get("actor"),
         "auto" if d.get("automatic") else "manual", d.get("reason")]
        for d in shown
    ]  # fmt: skip
    text = table(["AT", "ACTION", "STEP", "BY", "HOW", "REASON"], rows, max_width=100)
    if len(shown) < len(decisions):
        text = f"({len(decisions) - len(shown)} earlier)\n" + text
    return text


def render_rollout(rollout: dict[str, Any], *, decisions: int | None = None) -> str:
    """A rollout for people: where it is, what serves, the latest look and the decisions."""
    state = str(rollout.get("state", "?"))
    head = (
        f"rollout {rollout.get('id')}: {rollout.get('model')} version {rollout.get('version')} "
        f"against version {fmt(rollout.get('incumbent_version'))} "
        f"({rollout.get('strategy')}), {state.upper()}"
    )
    pairs: list[tuple[str, Any]] = [
        ("step", _step_line(rollout)),
        ("weights", render_weights(rollout)),
        ("steps", format_steps(rollout.get("steps") or [])),
        ("started", f"{ts(rollout.get('created_at'))} by {fmt(rollout.get('created_by'))}"),
    ]
    if rollout.get("ended_at"):
        pairs.append(("ended", ts(rollout.get("ended_at"))))
    if rollout.get("reason"):
        pairs.append(("reason", rollout.get("reason")))
    looks = rollout.get("looks") or []
    parts = [
        head,
        kv(pairs),
        "",
        render_look(looks[-1] if looks else None),
        "",
        render_decisions(rollout.get("decisions") or [], decisions),
    ]
    return "\n".join(parts)


def rollout_line(rollout: dict[str, Any]) -> str:
    return (
        f"rollout {rollout.get('id')}: {rollout.get('model')} version {rollout.get('version')} "
        f"{rollout.get('state')}, step {int(rollout.get('step') or 0) + 1} of "
        f"{len(rollout.get('steps') or [])}, weights {render_weights(rollout)}"
    )


def render_list(page: dict[str, Any]) -> str:
    rows = [
        [r.get("id"), r.get("model"), r.get("version"), r.get("incumbent_version"),
         r.get("strategy"), r.get("state"),
         f"{int(r.get('step') or 0) + 1}/{len(r.get('steps') or [])}",
         render_weights(r), ts(r.get("created_at")), r.get("reason")]
        for r in page.get("items") or []
    ]  # fmt: skip
    headers = ["ID", "MODEL", "VERSION", "INCUMBENT", "STRATEGY", "STATE", "STEP", "WEIGHTS",
               "CREATED", "REASON"]  # fmt: skip
    return table(headers, rows)


# Commands -------------------------------------------------------------------------------


@click.group()
def rollout() -> None:
    """Progressive delivery: move traffic to a version step by step, judged by the
    observations serving reports (canary, blue_green, shadow, ab)."""


def _steps_option(value: str | None) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    try:
        return parse_steps(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--steps") from None


def _resolve(target: str) -> int:
    """A rollout id, or a model name: its newest rollout."""
    if target.isdigit():
        return int(target)
    page = client().rollouts(target, limit=1)
    if not page["items"]:
        fail(f"model {target!r} has no rollout")
    return int(page["items"][0]["id"])


@rollout.command("start")
@click.argument("model")
@click.argument("version", type=click.IntRange(1))
@click.option("--strategy", type=click.Choice(STRATEGIES), default="canary", show_default=True)
@click.option("--steps", "steps_text", metavar="STEPS", help=STEPS_HELP)
@click.option("--steps-file", type=click.Path(dir_okay=False),
              help="A JSON file: the API's steps (a list), or an object with \"steps\" and "
                   "optionally \"analysis\", \"strategy\", \"promote_on_complete\".")  # fmt: skip
@click.option("--analysis-file", type=click.Path(dir_okay=False),
              help="A JSON file with the analysis spec (metrics, alpha, pass_score, ...); "
                   "the server's defaults without it.")  # fmt: skip
@click.option(
    "--promote-on-complete/--no-promote-on-complete",
    default=None,
    help="shadow and ab: make the version production when the rollout completes.",
)
@click.option("--reason", help="Why (kept with the rollout and in the audit log).")
@click.option("--idempotency-key", help="Retry-safe key: the same key answers the first start.")
@click.option("--watch", is_flag=True, help="Then follow it like `rollout status --watch`.")
@click.option("--interval", type=click.FloatRange(0.2, 300), default=2.0, show_default=True,
              help="With --watch: seconds between reads.")  # fmt: skip
@api_options
def rollout_start(
    model: str,
    version: int,
    strategy: str,
    steps_text: str | None,
    steps_file: str | None,
    analysis_file: str | None,
    promote_on_complete: bool | None,
    reason: str | None,
    idempotency_key: str | None,
    watch: bool,
    interval: float,
) -> None:
    """Start a rollout of VERSION of MODEL toward production.

    \b
    Steps (--steps): WEIGHT:HOLD[+HOLD...], comma-separated:
      5:5m+500obs,25:2000obs+approval,100:60s
    WEIGHT  the candidate's percent of requests (shadow: percent it also scores),
            0 < w <= 100, increasing; blue_green and ab take exactly one step
    HOLD    300s / 5m / 1h      at least this long at the step
            2000obs             at least this many observations of the candidate
            approval            a reviewer approves (modelgate rollout approve)

    \b
    Examples:
      modelgate rollout start churn 7 --steps 5:300s,25:2000obs,100:60s
      modelgate rollout start churn 7 --strategy shadow --steps 50:1h
      modelgate rollout start churn 7 --steps-file rollout.json --watch
    """
    if (steps_text is None) == (steps_file is None):
        fail("give the steps: --steps (e.g. 5:300s,25:2000obs,100:60s) or --steps-file")
    steps = _steps_option(steps_text)
    analysis: dict[str, Any] | None = None
    if steps_file is not None:
        document = read_json_file(steps_file, "steps")
        if isinstance(document, dict):
            steps = document.get("steps")
            analysis = document.get("analysis")
            strategy = str(document.get("strategy", strategy))
            if promote_on_complete is None:
                promote_on_complete = document.get("promote_on_complete")
        else:
            steps = document
        if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
            fail(f"the steps file {steps_file} holds no list of steps (objects)")
    if analysis_file is not None:
        analysis = read_json_file(analysis_file, "analysis")
        if not isinstance(analysis, dict):
            fail(f"the analysis file {analysis_file} holds no JSON object")
    assert steps is not None
    created = client().start_rollout(
        model, version, steps=steps, strategy=strategy, analysis=analysis,
        promote_on_complete=promote_on_complete, reason=reason,
        idempotency_key=idempotency_key,
    )  # fmt: skip
    started = created.body
    if created.replayed:
        note("the server had this start already (same --idempotency-key): nothing new started")
    if not watch:
        emit(started, rollout_line)
        return
    _watch(int(started["id"]), interval, None)


@rollout.command("status")
@click.argument("target", metavar="ID|MODEL")
@click.option(
    "--watch",
    is_flag=True,
    help="Re-print it on every change until it completes (exit 0) or aborts (exit 1).",
)
@click.option("--interval", type=click.FloatRange(0.2, 300), default=2.0, show_default=True,
              help="With --watch: seconds between reads.")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(0), default=None,
              help="With --watch: give up after this many seconds (exit 1).")  # fmt: skip
@api_options
def rollout_status(target: str, watch: bool, interval: float, timeout: float | None) -> None:
    """A rollout (by ID, or MODEL's newest): state, step, weights, the latest look's
    per-metric results and the decisions with their reasons.

    With --watch it is printed again on every change (step, weights, a new look or a
    decision) until it ends: exit 0 when it completed, 1 when it was aborted (or
    --timeout passed). With --output json, each state is one JSON line."""
    rollout_id = _resolve(target)
    if watch:
        _watch(rollout_id, interval, timeout)
        return
    emit(client().rollout(rollout_id), render_rollout)


def _watch(rollout_id: int, interval: float, timeout: float | None) -> None:
    api = client()
    deadline = None if timeout is None else time.monotonic() + timeout
    seen: tuple[Any, ...] | None = None
    current: Any = None
    try:
        while True:
            current = api.rollout(rollout_id)
            mark = rollout_mark(current)
            if mark != seen:
                seen = mark
                if json_output():
                    click.echo(json.dumps(current, ensure_ascii=False))
                else:
                    click.echo(f"--- {time.strftime('%H:%M:%S')} " + "-" * 60)
                    click.echo(render_rollout(current, decisions=WATCH_DECISIONS))
                sys.stdout.flush()
            if current.get("state") in ENDED:
                break
            if deadline is not None and time.monotonic() >= deadline:
                note(f"rollout {rollout_id} still {current.get('state')} after {timeout:g} s")
                sys.exit(EXIT_FAILED)
            time.sleep(interval)
    except KeyboardInterrupt:
        sys.exit(130)
    if current.get("state") == "aborted":
        if not json_output():
            note(f"rollout {rollout_id} aborted: {current.get('reason')}")
        sys.exit(EXIT_FAILED)


@rollout.command("list")
@click.argument("model")
@click.option("--state", type=click.Choice(STATES), help="Only rollouts in this state.")
@page_options
@api_options
def rollout_list(
    model: str, state: str | None, limit: int, cursor: str | None, all_pages: bool
) -> None:
    """MODEL's rollouts, newest first."""
    page = fetch_page(
        lambda c, n: client().rollouts(model, state=state, cursor=c, limit=n),
        limit=limit, cursor=cursor, all_pages=all_pages,
    )  # fmt: skip
    emit(page, render_list)
    more_hint(page)


def _action(name: str, verb: str, needs_reason: bool = False) -> click.Command:
    @click.argument("target", metavar="ID|MODEL")
    @click.option(
        "--comment" if name == "approve" else "--reason",
        "text",
        required=needs_reason,
        help="Why (kept with the decision and in the audit log)"
        + (", required." if needs_reason else "."),
    )
    @api_options
    def command(target: str, text: str | None) -> None:
        rollout_id = _resolve(target)
        api = client()
        if name == "approve":
            answer = api.approve_rollout(rollout_id, comment=text)
        elif name == "abort":
            if not text or not text.strip():
                fail("--reason is required to abort (and may not be blank)")
            answer = api.abort_rollout(rollout_id, reason=text)
        elif name == "advance":
            # From the step read now: two operators advancing at once move it once.
            seen = int(api.rollout(rollout_id)["step"])
            answer = api.advance_rollout(rollout_id, reason=text, from_step=seen)
        else:
            answer = getattr(api, f"{name}_rollout")(rollout_id, reason=text)
        emit(answer, rollout_line)

    command.__doc__ = f"{verb} (ID, or MODEL's newest rollout)."
    return click.command(name)(command)


for _name, _verb, _required in (
    ("advance", "Move the rollout to its next step now, whatever the hold (not frozen)", False),
    ("pause", "Hold the rollout at its weights: no look advances or aborts it", False),
    ("resume", "Let a paused rollout go on", False),
    ("abort", "Send all traffic back to the incumbent and end the rollout; stages unchanged", True),
    ("approve", "Approve the current step's approval hold (a reviewer, not the starter)", False),
):  # fmt: skip
    rollout.add_command(_action(_name, _verb, _required))


__all__ = ["render_look", "render_rollout", "rollout"]
