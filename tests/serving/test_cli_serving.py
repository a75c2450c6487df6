"""``modelgate alias`` and ``modelgate serving`` against a real server process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

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
