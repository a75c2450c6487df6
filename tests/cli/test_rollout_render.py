"""``modelgate rollout``: the short step syntax, its refusals, and how a rollout is
rendered (step, weights, the latest look's per-metric table, decisions) from fixtures."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest

from modelgate_client.cli.commands_rollout import render_list, render_rollout
from modelgate_client.rollouts import format_steps, parse_steps
from tests.cli.conftest import clean_env


def test_the_short_step_syntax_becomes_the_apis_steps() -> None:
    assert parse_steps("5:300s,25:2000obs,100:60s") == [
        {"weight": 5.0, "hold": {"duration_seconds": 300}},
        {"weight": 25.0, "hold": {"min_observations": 2000}},
        {"weight": 100.0, "hold": {"duration_seconds": 60}},
    ]
    assert parse_steps("0.5%:5m+500obs, 50:1h+approval") == [
        {"weight": 0.5, "hold": {"duration_seconds": 300, "min_observations": 500}},
        {"weight": 50.0, "hold": {"duration_seconds": 3600, "approval": True}},
    ]
    text = "5:5m+500obs,25:2000obs+approval,100:90s"
    assert format_steps(parse_steps(text)) == text


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "no steps"),
        ("5", "WEIGHT:HOLD"),
        ("5:", "WEIGHT:HOLD"),
        ("0:60s", "not in (0, 100]"),
        ("101:60s", "not in (0, 100]"),
        ("abc:60s", "not a number"),
        ("25:60s,5:60s", "weights must increase"),
        ("25:60s,25:60s", "weights must increase"),
        ("5:60", "none of"),
        ("5:10min", "none of"),
        ("5:0s", "more than 0"),
        ("5:60s+2m", "same kind"),
    ],
)
def test_bad_steps_are_refused_naming_the_step(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_steps(text)


def look(number: int, status: str, score: float, verdict: str) -> dict[str, Any]:
    return {
        "number": number,
        "at": "2026-12-03T14:00:05.123456Z",
        "step": 1,
        "score": score,
        "status": status,
        "results": [
            {"metric": "errors", "kind": "error_rate", "verdict": verdict,
             "reason": "the canary's error rate 0.0213 is above the incumbent's 0.0098",
             "canary": 0.0213, "incumbent": 0.0098, "effect": 0.0115, "tolerance": 0.0,
             "p_value": 0.00031, "fixed_p_value": 0.0002, "alpha": 0.05,
             "samples": [2310, 21870]},
            {"metric": "latency", "kind": "latency", "verdict": "pass", "reason": "no slower",
             "canary": 12.5, "incumbent": 12.4, "effect": 0.008, "tolerance": 0.1,
             "p_value": 0.61, "fixed_p_value": 0.5, "alpha": 0.05, "samples": [2310, 21870]},
        ],
    }  # fmt: skip


def rollout(state: str = "aborted") -> dict[str, Any]:
    return {
        "id": 12, "model": "churn", "version": 7, "incumbent_version": 6,
        "strategy": "canary", "state": state, "step": 1,
        "steps": [
            {"weight": 5.0, "hold": {"duration_seconds": 300, "min_observations": 500},
             "started_at": "2026-12-03T13:50:00Z", "approved_by": None},
            {"weight": 25.0, "hold": {"min_observations": 2000},
             "started_at": "2026-12-03T13:55:00Z", "approved_by": None},
            {"weight": 100.0, "hold": {"duration_seconds": 60}, "started_at": None,
             "approved_by": None},
        ],
        "weights": {"6": 100.0} if state == "aborted" else {"7": 25.0, "6": 75.0},
        "shadow_share": 0.0,
        "analysis": {},
        "looks": [look(3, "pass", 100.0, "pass"), look(4, "fail", 50.0, "fail")],
        "decisions": [
            {"at": "2026-12-03T13:50:00Z", "action": "started", "step": 0, "actor": "ci-bot",
             "automatic": False, "reason": "weekly retrain"},
            {"at": "2026-12-03T13:55:00Z", "action": "advanced", "step": 1, "actor": "system",
             "automatic": True, "reason": "hold met; look 3 scored 100 (pass)"},
            {"at": "2026-12-03T14:00:05Z", "action": "aborted", "step": 1, "actor": "system",
             "automatic": True, "reason": "look 4 failed: errors"},
        ],
        "reason": "look 4 failed: errors",
        "created_by": "ci-bot", "created_at": "2026-12-03T13:50:00Z",
        "updated_at": "2026-12-03T14:00:05Z", "ended_at": "2026-12-03T14:00:05Z",
        "serving_revision": 42,
    }  # fmt: skip


def test_a_rollout_is_rendered_with_its_step_weights_latest_look_and_decisions() -> None:
    text = render_rollout(rollout("running"))
    lines = text.splitlines()
    assert lines[0] == "rollout 12: churn version 7 against version 6 (canary), RUNNING"
    assert "step:    2 of 3: 25% until 2000obs (started 2026-12-03 13:55:00)" in text
    assert "weights: v6 75%, v7 25%" in text
    assert "steps:   5:5m+500obs,25:2000obs,100:1m" in text
    # The latest look only, one row per metric with its numbers.
    assert "look 4 at 2026-12-03 14:00:05 (step 2): score 50, fail" in text
    assert "look 3 at" not in text
    errors_row = next(line for line in lines if line.startswith("errors"))
    for cell in ("error_rate", "fail", "0.0213", "0.0098", "0.0115", "0.00031", "2310/21870"):
        assert cell in errors_row, errors_row
    assert "the canary's error rate 0.0213 is above" in errors_row
    latency_row = next(line for line in lines if line.startswith("latency"))
    assert "pass" in latency_row
    assert "0.61" in latency_row
    # Every decision, who made it, automatic or not, and why.
    started = next(line for line in lines if " started " in line)
    assert "ci-bot" in started
    assert "manual" in started
    assert "weekly retrain" in started
    aborted = next(line for line in lines if " aborted " in line)
    assert "system" in aborted
    assert "auto" in aborted
    assert "look 4 failed: errors" in aborted


def test_an_ended_rollout_says_why_and_a_shadow_names_its_share() -> None:
    text = render_rollout(rollout("aborted"), decisions=1)
    assert "ABORTED" in text.splitlines()[0]
    assert "weights: v6 100%" in text
    assert "reason:  look 4 failed: errors" in text
    assert "ended:   2026-12-03 14:00:05" in text
    assert "(2 earlier)" in text
    assert "weekly retrain" not in text
    shadow = {**rollout("running"), "strategy": "shadow", "weights": {"6": 100.0},
              "shadow_share": 25.0, "looks": [], "decisions": []}  # fmt: skip
    text = render_rollout(shadow)
    assert "weights: v6 100% (v7 shadows 25% of requests)" in text
    assert "no look yet" in text
    assert "no decisions yet" in text
    listed = render_list({"items": [rollout("running"), rollout("aborted")]})
    assert listed.splitlines()[1].split()[:7] == [
        "12",
        "churn",
        "7",
        "6",
        "canary",
        "running",
        "2/3",
    ]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelgate_client.cli", *args],
        env=clean_env(MODELGATE_URL="http://127.0.0.1:9", MODELGATE_TOKEN="t"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_start_refuses_bad_steps_before_sending_anything() -> None:
    # Port 9 has no server: a usage error must come before any request.
    done = run_cli("rollout", "start", "churn", "7", "--steps", "25:60s,5:60s")
    assert done.returncode == 2
    assert "weights must increase" in done.stderr
    done = run_cli("rollout", "start", "churn", "7")
    assert done.returncode == 2
    assert "--steps" in done.stderr
    done = run_cli("rollout", "start", "churn", "7", "--steps", "5:5s", "--output", "json")
    assert done.returncode == 2  # nothing listens: a connection error, exit 2
    problem = json.loads(done.stderr.strip().splitlines()[-1])
    assert problem["exit_code"] == 2
    done = run_cli("rollout", "abort", "12")
    assert done.returncode == 2
    assert "--reason" in done.stderr
    helped = run_cli("rollout", "start", "--help")
    assert "5:5m+500obs,25:2000obs+approval,100:60s" in helped.stdout
    assert "2000obs" in helped.stdout
    assert "approval" in helped.stdout
    helped = run_cli("rollout", "--help")
    for command in ("start", "status", "list", "advance", "pause", "resume", "abort", "approve"):
        assert command in helped.stdout
