"""``modelgate alias`` and ``modelgate serving`` against a real server process."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from app.settings import Settings
from tests.serving.conftest import admin, model_in_production, server_settings
from tests.support.api import ADMIN_TOKEN, API
from tests.support.flows import new_version
from tests.support.servers import running_servers


def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELGATE_URL": url, "MODELGATE_TOKEN": ADMIN_TOKEN}
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


def test_alias_and_serving_commands(settings: Settings) -> None:
    with running_servers(server_settings(settings)) as (server,), admin(server.base_url) as http:
        model = model_in_production(http, versions=1)
        v2 = new_version(http, model)
        done = run(server.base_url, "alias", "set", model, "challenger", str(v2), "--reason", "ab")
        assert done.returncode == 0, done.stderr
        assert f"{model}@challenger -> version {v2}" in done.stdout
        listed = run(server.base_url, "alias", "list", model, "--output", "json")
        assert [a["name"] for a in json.loads(listed.stdout)] == ["challenger"]
        shown = run(server.base_url, "serving", "show", model)
        assert "revision:" in shown.stdout
        assert "@challenger" in shown.stdout

        env = {**os.environ, "MODELGATE_URL": server.base_url, "MODELGATE_TOKEN": ADMIN_TOKEN}
        watch = subprocess.Popen(
            [sys.executable, "-m", "app.cli.main", "serving", "watch", model, "--wait", "5"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            time.sleep(3)
            removed = run(server.base_url, "alias", "rm", model, "challenger")
            assert removed.returncode == 0, removed.stderr
            time.sleep(2)
        finally:
            watch.terminate()
            out, err = watch.communicate(timeout=30)
        lines = [line for line in out.splitlines() if line.startswith("revision")]
        assert lines[0].startswith("revision 2 "), (out, err)
        assert "@challenger" in lines[0]
        assert lines[-1].startswith("revision 3 "), (out, err)
        assert "aliases -" in lines[-1]
        problem = run(server.base_url, "alias", "set", model, "Bad_Name", "1")
        assert problem.returncode == 3
        assert http.get(f"{API}/models/{model}/aliases").json() == []


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_by_alias_follows_the_alias_and_a_protected_alias_waits_for_review(
    settings: Settings, tmp_path: Path
) -> None:
    with running_servers(server_settings(settings)) as (server,), admin(server.base_url) as http:
        model = model_in_production(http, versions=2)
        digests = {
            n: http.get(f"{API}/models/{model}/versions/{n}").json()["artifact"]["sha256"]
            for n in (1, 2)
        }
        assert digests[1] != digests[2]
        assert run(server.base_url, "alias", "set", model, "stable", "1").returncode == 0

        first = tmp_path / "first.bin"
        done = run(server.base_url, "versions", "download", model, "--alias", "stable",
                   "--dest", str(first), "--output", "json")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["sha256"] == digests[1]
        assert _sha256(first) == digests[1]

        assert run(server.base_url, "alias", "set", model, "stable", "2").returncode == 0
        second = tmp_path / "second.bin"
        done = run(server.base_url, "versions", "download", model, "--alias", "stable",
                   "--dest", str(second))  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert _sha256(second) == digests[2]

        # The Python client names the version by alias too.
        from modelgate_client import Client

        with Client(server.base_url, ADMIN_TOKEN) as mg:
            got = mg.download(model, alias="stable", dest=tmp_path / "third.bin")
        assert got["sha256"] == digests[2]
        assert _sha256(tmp_path / "third.bin") == digests[2]

        missing = run(server.base_url, "versions", "download", model, "--alias", "nope",
                      "--dest", str(tmp_path / "none.bin"))  # fmt: skip
        assert missing.returncode != 0
        assert not (tmp_path / "none.bin").exists()

        # A protected alias asking for approval: the CLI names the request to approve.
        policy = http.get(f"{API}/models/{model}/policy").json()["policy"]
        policy["aliases"] = {"champion": {"rules": [], "approvals_required": 1}}
        assert http.put(f"{API}/models/{model}/policy", json=policy).status_code == 200
        refused = run(server.base_url, "alias", "set", model, "champion", "2")
        assert refused.returncode != 0
        pending = http.get(
            f"{API}/promotions", params={"model": model, "status": "pending_approval"}
        ).json()
        [request] = pending["items"]
        assert request["alias"] == "champion"
        assert f"promotions approve {request['id']}" in refused.stderr
