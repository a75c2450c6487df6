"""scripts/rollout-demo --fast end to end: it starts its own server (SQLite and a
directory), runs the fleet, and must see the good version complete and the bad one
aborted automatically with production untouched."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.cli._server import REPO_ROOT

pytestmark = pytest.mark.timeout(900)


def test_the_rollout_demo_completes_the_good_version_and_aborts_the_bad_one() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "rollout_demo.py"), "--fast"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, (out[-6000:], done.stderr[-3000:])
    lines = out.splitlines()
    # The timeline: both rollouts started, the first completed, the second aborted by
    # the analysis (not by the demo's own timeout), with its reason.
    assert sum(1 for line in lines if " start v" in line) == 2
    assert any("completed (step" in line and "auto" in line for line in lines)
    aborted = next(i for i, line in enumerate(lines) if "aborted (step" in line)
    assert "auto" in lines[aborted]
    assert "why:" in lines[aborted + 1]
    assert "errors" in lines[aborted + 1]
    assert "timed out" not in out
    assert "OK: the good version completed and the bad one was aborted automatically" in out
    # Every replica's router reported through the registry and lost nothing.
    stats = next(line for line in lines if line.startswith("observations:"))
    assert "dropped 0" in stats
    assert "rejected 0" in stats
    assert "failed 0" in stats
