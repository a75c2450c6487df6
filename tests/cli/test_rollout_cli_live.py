"""``modelgate rollout`` against a live server: start with the short step syntax, status
and list, the approval hold, pause/resume/advance to completion, abort, and
``status --watch`` ending 0 on completion and 1 on abort."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from modelgate_client import ModelgateClient
from tests.cli.conftest import Cli, Tokens
from tests.cli.test_cli_live import add_version

pytestmark = pytest.mark.timeout(300)

# The server's analysis would not look within the test: the operator drives.
SLOW_ANALYSIS = {"interval_seconds": 3600}


def production_model(admin: ModelgateClient, model: str) -> tuple[int, int]:
    """Version 1 in production (no approval, no staging needed), version 2 a candidate."""
    admin.put_policy(
        model,
        {
            "staging": {"rules": [], "approvals_required": 0, "auto_promote": True},
            "production": {
                "rules": [], "approvals_required": 0, "auto_promote": True,
                "require_staging": False,
            },
        },
    )  # fmt: skip
    first = add_version(admin, model)
    assert admin.request_promotion(model, first, target="production").body["status"] == "applied"
    return first, add_version(admin, model)


def finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def test_a_rollout_driven_to_completion_from_the_command_line(
    cli: Cli, admin: ModelgateClient, tokens: Tokens, model: str, tmp_path: Path
) -> None:
    v1, v2 = production_model(admin, model)
    analysis = tmp_path / "analysis.json"
    analysis.write_text(json.dumps(SLOW_ANALYSIS))
    started = cli.json(
        "rollout", "start", model, str(v2), "--steps", "50:approval,100:1h",
        "--analysis-file", str(analysis), "--reason", "cli test", token=tokens.operator,
    )  # fmt: skip
    rollout_id = started["id"]
    assert started["state"] == "running"
    assert started["steps"][0]["hold"].get("approval") is True
    assert started["steps"][1]["hold"]["duration_seconds"] == 3600
    assert started["weights"] == {str(v1): 50.0, str(v2): 50.0}

    # By model name: its newest rollout, rendered for people.
    shown = cli.run("rollout", "status", model, token=tokens.operator)
    assert shown.returncode == 0, shown.stderr
    assert f"rollout {rollout_id}: {model} version {v2} against version {v1}" in shown.stdout
    assert f"weights: v{v1} 50%, v{v2} 50%" in shown.stdout
    assert "1 of 2: 50% until approval" in shown.stdout
    listed = cli.json("rollout", "list", model, "--state", "running", token=tokens.operator)
    assert [r["id"] for r in listed["items"]] == [rollout_id]

    watch = cli.start("rollout", "status", str(rollout_id), "--watch", "--interval", "0.3",
                      token=tokens.operator)  # fmt: skip
    try:
        # The approval hold: an operator cannot skip it, nor approve; a reviewer can.
        held = cli.run("rollout", "advance", str(rollout_id), token=tokens.operator)
        assert held.returncode == 3, held.stderr
        assert "approv" in held.stderr
        refused = cli.run("rollout", "approve", str(rollout_id), token=tokens.operator)
        assert refused.returncode == 3
        assert "403" in refused.stderr
        approved = cli.json("rollout", "approve", str(rollout_id), "--comment", "slices ok",
                            token=tokens.reviewer)  # fmt: skip
        assert approved["steps"][0]["approved_by"] == tokens.names["reviewer"]

        paused = cli.json("rollout", "pause", model, "--reason", "lunch", token=tokens.operator)
        assert paused["state"] == "paused"
        not_now = cli.run("rollout", "advance", str(rollout_id), token=tokens.operator)
        assert not_now.returncode == 3
        resumed = cli.json("rollout", "resume", str(rollout_id), token=tokens.operator)
        assert resumed["state"] == "running"
        advanced = cli.json("rollout", "advance", str(rollout_id), "--reason", "looks fine",
                            token=tokens.operator)  # fmt: skip
        assert advanced["step"] == 1
        assert advanced["weights"][str(v2)] == 100.0
        done = cli.json("rollout", "advance", str(rollout_id), token=tokens.operator)
        assert done["state"] == "completed"
        code, out, err = finish(watch)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert code == 0, (out, err)
    assert out.count("--- ") >= 2  # printed again as it changed
    assert "COMPLETED" in out
    assert "approved" in out
    assert "resumed" in out
    assert "completed" in out
    assert admin.versions_in_stage(model, "production")["items"][0]["version"] == v2


def test_an_aborted_rollout_ends_the_watch_with_exit_1(
    cli: Cli, admin: ModelgateClient, tokens: Tokens, model: str, tmp_path: Path
) -> None:
    v1, v2 = production_model(admin, model)
    steps = tmp_path / "rollout.json"
    steps.write_text(json.dumps({
        "steps": [{"weight": 10, "hold": {"duration_seconds": 3600}}],
        "analysis": SLOW_ANALYSIS,
    }))  # fmt: skip
    bad = cli.run("rollout", "start", model, str(v2), "--strategy", "blue_green",
                  "--steps", "10:1h,100:1h", token=tokens.operator)  # fmt: skip
    assert bad.returncode == 3
    assert "exactly one step" in bad.stderr
    started = cli.json("rollout", "start", model, str(v2), "--steps-file", str(steps),
                       token=tokens.operator)  # fmt: skip
    rollout_id = started["id"]
    second = cli.run("rollout", "start", model, str(v2), "--steps", "5:1h", token=tokens.operator)
    assert second.returncode == 3
    assert "409" in second.stderr

    watch = cli.start("rollout", "status", str(rollout_id), "--watch", "--interval", "0.3",
                      "--output", "json", token=tokens.operator)  # fmt: skip
    try:
        blank = cli.run("rollout", "abort", str(rollout_id), "--reason", " ", token=tokens.operator)
        assert blank.returncode == 2
        aborted = cli.json("rollout", "abort", str(rollout_id), "--reason", "INC-7: alerts",
                           token=tokens.operator)  # fmt: skip
        assert aborted["state"] == "aborted"
        code, out, err = finish(watch)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert code == 1, (out, err)
    states = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert states[0]["state"] == "running"
    assert states[-1]["state"] == "aborted"
    assert states[-1]["reason"] == "INC-7: alerts"
    # Production untouched.
    assert admin.versions_in_stage(model, "production")["items"][0]["version"] == v1
