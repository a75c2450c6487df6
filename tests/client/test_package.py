"""``modelgate-client`` on its own, as a training image gets it: a fresh virtual
environment with only clients/python installed, used from a folder that has an ``app/``
package of its own, against a live server."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
import textwrap
import venv
from pathlib import Path

import pytest

from modelgate_client import ModelgateClient
from tests.cli._server import REPO_ROOT, LiveServer
from tests.cli.conftest import FULL_LINEAGE, Tokens, clean_env

CLIENT_SOURCE = REPO_ROOT / "clients" / "python"
# What the client may pull in: httpx (and what it needs) and click; nothing of the server.
ALLOWED = {
    "modelgate-client", "httpx", "httpcore", "h11", "anyio", "idna", "certifi", "sniffio",
    "click", "typing-extensions", "pip", "setuptools", "exceptiongroup",
}  # fmt: skip
MAX_INSTALLED_BYTES = 8 * 1024 * 1024  # everything but pip and setuptools


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("client-venv") / "venv"
    venv.EnvBuilder(with_pip=True).create(root)
    python = root / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         str(CLIENT_SOURCE)],
        check=True, env=_bare_env(), timeout=600,
    )  # fmt: skip
    return python


def _bare_env(**extra: str) -> dict[str, str]:
    """No PYTHONPATH (the repository's ``app`` must not be reachable), no CI variables."""
    env = clean_env(**extra)
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    return env


def _site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, env=_bare_env(),
    )  # fmt: skip
    return Path(out.stdout.strip())


def test_installs_alone_small_and_without_the_server(client_venv: Path) -> None:
    listed = subprocess.run(
        [str(client_venv), "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
        check=True, capture_output=True, text=True, env=_bare_env(),
    )  # fmt: skip
    names = {p["name"].lower().replace("_", "-") for p in json.loads(listed.stdout)}
    assert "modelgate-client" in names
    assert names <= ALLOWED, names - ALLOWED
    site = _site_packages(client_venv)
    size = sum(
        f.stat().st_size
        for f in site.rglob("*")
        if f.is_file() and not f.relative_to(site).parts[0].startswith(("pip", "setuptools"))
    )
    assert size < MAX_INSTALLED_BYTES, size
    version = subprocess.run(
        [str(client_venv.parent / "modelgate"), "--version"],
        check=True, capture_output=True, text=True, env=_bare_env(),
    )  # fmt: skip
    assert "modelgate" in version.stdout


SCRIPT = textwrap.dedent(
    """
    import json, sys
    import app  # the training project's own package, not Modelgate's
    from modelgate_client import Client
    mg = Client.from_env()
    v = mg.submit("{model}", artifact="model/", metrics={{"accuracy": 0.93}}, lineage={lineage})
    print(json.dumps({{"app": app.NAME, "version": v.version, "sha256": v.sha256,
                      "replayed": v.replayed, "stage": v.stage}}))
    """
)

DOWNLOAD = textwrap.dedent(
    """
    import json
    from modelgate_client import Client, ModelgateError
    mg = Client.from_env()
    d = mg.download("{model}", stage="production", dest="served.tar")
    try:
        mg.download("{model}", stage="staging", dest="none.tar")
    except ModelgateError as exc:
        error = {{"status": exc.status, "code": exc.code}}
    print(json.dumps({{"download": d, "error": error}}))
    """
)


def _project(tmp_path: Path) -> Path:
    """A training project: its own ``app`` package and a model directory."""
    project = tmp_path / "project"
    (project / "app").mkdir(parents=True)
    (project / "app" / "__init__.py").write_text('NAME = "the user\'s app"\n')
    (project / "model" / "weights").mkdir(parents=True)
    (project / "model" / "weights" / "layer0.bin").write_bytes(os.urandom(4096))
    (project / "model" / "config.json").write_text('{"layers": 1}\n')
    return project


def _run(python: Path, code: str, cwd: Path, env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [str(python), "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_three_line_submit_promote_and_download_production(
    client_venv: Path,
    live_server: LiveServer,
    tokens: Tokens,
    admin: ModelgateClient,
    model: str,
    tmp_path: Path,
) -> None:
    project = _project(tmp_path)
    github = {
        "GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "77001", "GITHUB_JOB": "train",
        "GITHUB_REPOSITORY": "acme/fraud", "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_SHA": "ab" * 20, "GITHUB_WORKFLOW": "nightly",
    }  # fmt: skip
    env = _bare_env(MODELGATE_URL=live_server.url, MODELGATE_TOKEN=tokens.submitter, **github)

    first = _run(client_venv, SCRIPT.format(model=model, lineage='"auto"'), project, env)
    assert first["app"] == "the user's app"
    version = first["version"]
    assert isinstance(version, int)
    stored = admin.get_version(model, version)
    assert stored["artifact"]["status"] == "verified"
    assert stored["artifact"]["sha256"] == first["sha256"]
    assert stored["lineage"]["ci_run_id"] == "77001"
    assert stored["lineage"]["code_commit"] == "ab" * 20

    # The job retried: same run, same bytes, so the same version, replayed.
    again = _run(client_venv, SCRIPT.format(model=model, lineage='"auto"'), project, env)
    assert (again["version"], again["replayed"]) == (version, True)

    # A full-lineage version (a mapping merges over what is found), then production.
    lineage = json.dumps(FULL_LINEAGE)
    (project / "model" / "config.json").write_text('{"layers": 2}\n')
    second = _run(client_venv, SCRIPT.format(model=model, lineage=lineage), project, env)
    number = second["version"]
    assert isinstance(number, int)
    assert number != version
    assert admin.request_promotion(model, number, target="staging").body["status"] == "applied"
    pending = admin.request_promotion(model, number, target="production").body
    with ModelgateClient(live_server.url, tokens.reviewer) as reviewer:
        assert reviewer.approve_promotion(pending["id"])["status"] == "applied"

    got = _run(client_venv, DOWNLOAD.format(model=model), project, env)
    download = got["download"]
    assert isinstance(download, dict)
    served = project / "served.tar"
    assert download["sha256"] == second["sha256"]
    assert hashlib.sha256(served.read_bytes()).hexdigest() == second["sha256"]
    with tarfile.open(served) as tar:
        assert sorted(tar.getnames()) == ["config.json", "weights", "weights/layer0.bin"]
    assert got["error"] == {"status": 404, "code": "stage-empty"}
    assert not (project / "none.tar").exists()
