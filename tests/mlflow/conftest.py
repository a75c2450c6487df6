"""Fixtures for the MLflow door: the real MLflow 3 client (``.venv-mlflow``, made by
scripts/setup), a real ``mlflow server`` on SQLite, and a live Modelgate process."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import ADMIN_TOKEN
from tests.support.s3server import TEST_CREDENTIALS, ManagedProcess, free_port
from tests.support.servers import REPO_ROOT, ServerProcess, start_server

MLFLOW_VENV = REPO_ROOT / ".venv-mlflow"
MLFLOW_PYTHON = MLFLOW_VENV / "bin" / "python"


@pytest.fixture(scope="session")
def mlflow_python() -> Path:
    if not MLFLOW_PYTHON.exists():
        pytest.fail("the MLflow client venv is missing: run scripts/setup (it makes .venv-mlflow)")
    return MLFLOW_PYTHON


class MlflowServer(ManagedProcess):
    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_mlflow_server(workdir: Path, extra_env: dict[str, str] | None = None) -> MlflowServer:
    """``mlflow server`` on a SQLite backend with its artifacts in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "mlflow-server.log"
    env = {**os.environ, **TEST_CREDENTIALS, **(extra_env or {})}
    env.pop("MLFLOW_TRACKING_TOKEN", None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(MLFLOW_VENV / "bin" / "mlflow"), "server",
                "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
                "--artifacts-destination", str(workdir / "mlartifacts"),
                "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            ],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=workdir,
        )  # fmt: skip
    server = MlflowServer(process, port, str(log))
    # Generous: the server imports much of MLflow, and the test machine is shared.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = server.log()[-4000:]
            server.stop()
            raise RuntimeError("mlflow server exited:\n" + output)
        try:
            if httpx.get(server.uri + "/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    output = server.log()[-4000:]
    server.stop()
    raise RuntimeError("mlflow server not ready:\n" + output)


@pytest.fixture
def mlflow_server(mlflow_python: Path, tmp_path: Path) -> Iterator[MlflowServer]:
    server = start_mlflow_server(tmp_path / "mlflow")
    try:
        yield server
    finally:
        server.stop()


def modelgate_settings(
    database_url: str, artifact_store_url: str, s3_endpoint: str | None, **extra: str
) -> dict[str, str]:
    settings = {
        "DATABASE_URL": database_url,
        "ARTIFACT_STORE": artifact_store_url,
        "BOOTSTRAP_ADMIN_TOKEN": ADMIN_TOKEN,
        "AUTO_MIGRATE": "false",
        "LOG_LEVEL": "WARNING",
        "DB_POOL_SIZE": "4",
        "WEBHOOK_DISPATCHER_ENABLED": "false",
        **extra,
    }
    if s3_endpoint:
        settings["S3_ENDPOINT_URL"] = s3_endpoint
        settings["S3_REGION"] = "us-east-1"
    return settings


@pytest.fixture
def live_modelgate(
    request: pytest.FixtureRequest, database_url: str, artifact_store_url: str
) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    """A Modelgate process; tests that need a tracking server start one of their own."""
    endpoint = request.getfixturevalue("s3_endpoint")
    settings = modelgate_settings(database_url, artifact_store_url, endpoint)
    server = start_server(settings)
    try:
        server.wait_ready(timeout=180)
        yield server, settings
    finally:
        server.stop()


def run_client(
    python: Path, script: str, env: dict[str, str], tmp_path: Path, timeout: float = 900
) -> dict[str, Any]:
    """Run a Python script with the MLflow client; it prints one JSON line last."""
    path = tmp_path / f"client-{time.monotonic_ns()}.py"
    path.write_text(script)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MODELGATE_"))}
    full_env.pop("PYTHONPATH", None)
    full_env.update(TEST_CREDENTIALS)
    full_env.update(env)
    done = subprocess.run(
        [str(python), str(path)], capture_output=True, text=True, env=full_env, timeout=timeout,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, f"client failed:\nSTDOUT:\n{done.stdout}\nSTDERR:\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
