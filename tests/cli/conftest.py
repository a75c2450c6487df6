"""A live Modelgate server for the CLI tests, and a way to run ``modelgate`` against it.

The server runs on the suite's backends (``MODELGATE_TEST_DB`` / ``MODELGATE_TEST_STORE``,
see tests/conftest.py): PostgreSQL and moto's S3 server, or SQLite and a directory. It
starts once per session on a database of its own; each test works on models of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from modelgate_client.client import ModelgateClient
from tests.cli._server import REPO_ROOT, LiveServer
from tests.support.api import ADMIN_TOKEN, SECRET_KEY
from tests.support.pg import migrated_pg_database
from tests.support.s3server import TEST_CREDENTIALS

TEST_DB = os.environ.get("MODELGATE_TEST_DB", "postgres")
TEST_STORE = os.environ.get("MODELGATE_TEST_STORE", "s3")

# Variables that would make the CLI believe it runs in CI (the suite itself may).
_CI_PREFIXES = ("GITHUB_", "GITLAB_", "CI_", "BUILD_", "JENKINS_", "MODELGATE_")
_CI_NAMES = {"CI", "JOB_NAME", "GIT_COMMIT", "GIT_URL", "BRANCH_NAME"}


@pytest.fixture(scope="session")
def server_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """``MODELGATE_*`` settings of the live server, on a database and bucket of its own."""
    workdir = tmp_path_factory.mktemp("cli-backend")
    settings = {
        "MODELGATE_BOOTSTRAP_ADMIN_TOKEN": ADMIN_TOKEN,
        "MODELGATE_SECRET_KEY": SECRET_KEY,
        "MODELGATE_LOG_LEVEL": "WARNING",
        "MODELGATE_DB_POOL_SIZE": "5",
        **TEST_CREDENTIALS,
    }
    database = ExitStack()
    if TEST_DB == "postgres":
        url = database.enter_context(migrated_pg_database("modelgate_cli"))
        settings["MODELGATE_DATABASE_URL"] = url
        settings["MODELGATE_AUTO_MIGRATE"] = "false"
    else:
        settings["MODELGATE_DATABASE_URL"] = f"sqlite:///{workdir}/modelgate.db"
    if TEST_STORE == "s3":
        endpoint: str = request.getfixturevalue("s3_endpoint")
        bucket = f"mg-cli-{uuid.uuid4().hex[:16]}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket=bucket
        )
        settings["MODELGATE_ARTIFACT_STORE"] = f"s3://{bucket}/artifacts"
        settings["MODELGATE_S3_ENDPOINT_URL"] = endpoint
        settings["MODELGATE_S3_REGION"] = "us-east-1"
    else:
        settings["MODELGATE_ARTIFACT_STORE"] = str(workdir / "artifacts")
    with database:
        yield settings


@pytest.fixture(scope="session")
def live_server(
    server_settings: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with LiveServer(server_settings, tmp_path_factory.mktemp("cli-server")) as server:
        yield server


@pytest.fixture(scope="session")
def admin(live_server: LiveServer) -> Iterator[ModelgateClient]:
    """The Python client with the bootstrap admin token (setting scenes up quickly)."""
    with ModelgateClient(live_server.url, ADMIN_TOKEN) as client:
        yield client


@dataclass(frozen=True)
class Tokens:
    """One secret per role; the names are the actors the audit log and approvals see."""

    admin: str
    submitter: str
    reviewer: str
    operator: str
    auditor: str
    names: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def tokens(admin: ModelgateClient) -> Tokens:
    secrets: dict[str, str] = {}
    names: dict[str, str] = {}
    for role in ("submitter", "reviewer", "operator", "auditor"):
        name = f"cli-{role}-{uuid.uuid4().hex[:6]}"
        secrets[role] = admin.create_token(name, role)["token"]
        names[role] = name
    return Tokens(admin=ADMIN_TOKEN, names=names, **secrets)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without CI or Modelgate variables, plus ``extra``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(_CI_PREFIXES) and k not in _CI_NAMES
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


@dataclass
class Cli:
    """Runs ``python -m modelgate_client.cli`` as a separate process, as a user would."""

    url: str
    token: str
    workdir: Path

    def env(self, token: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
        env = clean_env(MODELGATE_URL=self.url)
        env.update(extra or {})
        if token is not None:
            env["MODELGATE_TOKEN"] = token
        return env

    def command(self, args: tuple[str, ...]) -> list[str]:
        return [sys.executable, "-m", "modelgate_client.cli", *args]

    def run(
        self,
        *args: str,
        token: str | None = "",
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(args),
            env=self.env(self.token if token == "" else token, env),
            cwd=cwd or self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(
        self, *args: str, token: str | None = "", env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(args),
            env=self.env(self.token if token == "" else token, env),
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def json(self, *args: str, token: str | None = "", **kwargs: Any) -> Any:
        """Run with ``--output json``; the exit code must be 0 and stdout must parse."""
        done = self.run(*args, "--output", "json", token=token, **kwargs)
        assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
        return json.loads(done.stdout)


@pytest.fixture
def cli(live_server: LiveServer, tokens: Tokens, tmp_path: Path) -> Cli:
    """The CLI as the CI job (submitter token), run in an empty directory (no git)."""
    workdir = tmp_path / "job"
    workdir.mkdir()
    return Cli(url=live_server.url, token=tokens.submitter, workdir=workdir)


@pytest.fixture
def model(admin: ModelgateClient) -> str:
    """A fresh model with accuracy on holdout as its primary metric."""
    name = f"cli-{uuid.uuid4().hex[:10]}"
    admin.create_model(name, primary_metric="accuracy", primary_dataset="holdout")
    return name


FULL_LINEAGE = {
    "data_version": "transactions@2026-11-01",
    "feature_pipeline_version": "features-v12",
    "environment": "python:3.11-slim@sha256:" + "ab" * 32,
    "hyperparameters": {"lr": 0.1, "epochs": 20},
    "seed": 42,
}


@dataclass(frozen=True)
class JobFiles:
    """What a training job leaves for ``modelgate submit``."""

    artifact: Path
    metrics: Path
    lineage: Path


def write_job_files(
    directory: Path, *, accuracy: float = 0.9, size: int = 4096, name: str = "model"
) -> JobFiles:
    directory.mkdir(parents=True, exist_ok=True)
    artifact = directory / f"{name}.bin"
    artifact.write_bytes(os.urandom(size))
    metrics = directory / f"{name}-metrics.json"
    metrics.write_text(
        json.dumps(
            [{"name": "accuracy", "value": accuracy, "dataset": "holdout", "sample_count": 1000}]
        )
    )
    lineage = directory / f"{name}-lineage.json"
    lineage.write_text(json.dumps(FULL_LINEAGE))
    return JobFiles(artifact=artifact, metrics=metrics, lineage=lineage)
