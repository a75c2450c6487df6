"""The README's walkthrough runs as written: its curl block, against a live server."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

from modelgate_client import ModelgateClient
from tests.cli._server import REPO_ROOT, LiveServer
from tests.cli.conftest import clean_env
from tests.support.api import ADMIN_TOKEN

SECTION = "## A walk through the API with curl"


def walkthrough() -> str:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(SECTION, 1)[1]
    found = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert found, "no bash block in the README's walkthrough"
    return found.group(1)


def test_the_curl_walkthrough_runs_as_written(
    live_server: LiveServer, admin: ModelgateClient, tmp_path: Path
) -> None:
    script = walkthrough()
    # Only what the reader fills in: the server and the admin token printed at first start.
    assert "export MG=http://127.0.0.1:8080/api/v1" in script
    assert "export TOKEN=mgt_..." in script
    script = script.replace("http://127.0.0.1:8080", live_server.url)
    script = script.replace("export TOKEN=mgt_...", f"export TOKEN={ADMIN_TOKEN}")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout, done.stderr)
    answers = [json.loads(line) for line in done.stdout.replace("}{", "}\n{").splitlines()]
    problems = [a for a in answers if isinstance(a, dict) and "status" in a and "code" in a]
    assert not problems, problems
    assert (tmp_path / "model.bin").read_bytes() == (tmp_path / "model-copy.bin").read_bytes()
    version = admin.get_version("fraud-detector", 1)
    digest = hashlib.sha256((tmp_path / "model.bin").read_bytes()).hexdigest()
    assert version["artifact"]["sha256"] == digest
    assert version["stage"] == "staging"
    assert answers[-1]["ok"] is True  # audit verify
