"""scripts/drill against a real server process: it must pass, print the history, time its
rollbacks, and leave behind exactly the timeline it claims."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import httpx

from app.settings import Settings
from tests.support.api import ADMIN_TOKEN, auth
from tests.support.flows import (
    audit_verify,
    check_history_chain,
    history,
    production_changes,
    server_settings,
)
from tests.support.servers import running_servers

DRILL = Path(__file__).resolve().parents[2] / "scripts" / "drill"


def test_drill_runs_against_a_live_server(settings: Settings) -> None:
    with running_servers(server_settings(settings)) as (server,):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
        env.update({"MODELGATE_URL": server.base_url, "MODELGATE_TOKEN": ADMIN_TOKEN})
        done = subprocess.run(
            ["bash", str(DRILL), "--rollbacks", "10"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        model = re.search(r"with model (\S+)", out)
        assert model is not None, out
        assert "production history (oldest first):" in out
        assert "rolled back v3 -> v2" in out
        assert "rolled back v2 -> v1" in out
        assert "promoted  v4 to production" in out
        assert re.search(r"^v4 .* now \(serving\) +promotion ", out, re.MULTILINE), out
        assert re.search(r"GET  /models/\{model\}/stages/production +p50 +[\d.]+ ms", out), out
        assert re.search(r"POST /models/\{model\}/rollback +p50 +[\d.]+ ms +p99 +[\d.]+ ms", out)
        assert re.search(r"rollback / read +p50 +[\d.]+x", out), out
        assert out.rstrip().endswith("drill passed")

        with httpx.Client(base_url=server.base_url, headers=auth(ADMIN_TOKEN)) as client:
            entries = history(client, model.group(1))
            check_history_chain(entries)
            # Four promotions, two rollbacks, then the ten timed ones.
            oldest = [(e["version"], e["via"]) for e in reversed(entries)]
            assert oldest[:6] == [
                (1, "promotion"),
                (2, "promotion"),
                (3, "promotion"),
                (2, "rollback"),
                (1, "rollback"),
                (4, "promotion"),
            ]
            assert [via for _, via in oldest[6:]] == ["rollback"] * 10
            assert {version for version, _ in oldest[6:]} == {2, 3}
            assert production_changes(client, model.group(1)) == oldest
            audit_verify(client)


def test_drill_fails_cleanly_without_a_server() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
    env.update({"MODELGATE_URL": "http://127.0.0.1:9", "MODELGATE_TOKEN": "mgt_nothing"})
    done = subprocess.run(
        ["bash", str(DRILL), "--rollbacks", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "drill failed: cannot reach http://127.0.0.1:9" in done.stderr
