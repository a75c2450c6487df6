"""Fixtures of the serving tests: models with production versions, and real server
processes sharing the test's database and artifact store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from app.settings import Settings
from tests.support.api import ADMIN_TOKEN, auth, create_model
from tests.support.flows import new_version, permissive_policy, promote, put_policy
from tests.support.servers import ServerProcess, running_servers


def server_settings(settings: Settings) -> dict[str, str]:
    """The test's settings as a server process's ``MODELGATE_*`` variables."""
    env = {
        "DATABASE_URL": settings.database_url,
        "ARTIFACT_STORE": settings.artifact_store,
        "BOOTSTRAP_ADMIN_TOKEN": ADMIN_TOKEN,
        "AUTO_MIGRATE": "false",
        "LOG_LEVEL": "WARNING",
        "DB_POOL_SIZE": "4",
        "DB_POOL_OVERFLOW": "2",
        "WEBHOOK_DISPATCHER_ENABLED": "false",
    }
    if settings.s3_endpoint_url:
        env["S3_ENDPOINT_URL"] = settings.s3_endpoint_url
        env["S3_REGION"] = "us-east-1"
    return env


@pytest.fixture
def two_servers(settings: Settings) -> Iterator[list[ServerProcess]]:
    """Two server processes on the test's database and store."""
    with running_servers(server_settings(settings), count=2, timeout=120) as servers:
        yield servers


def admin(base_url: str, timeout: float = 60.0) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers=auth(ADMIN_TOKEN), timeout=timeout)


def model_in_production(client: httpx.Client, name: str | None = None, *, versions: int = 2) -> str:
    """A model with a permissive policy and ``versions`` versions promoted to production in
    turn (the last one serves; the revision is ``versions``)."""
    name = name or f"serve-{uuid.uuid4().hex[:8]}"
    create_model(client, name, primary_metric="accuracy", primary_dataset="holdout")
    put_policy(client, name, permissive_policy())
    for i in range(versions):
        number = new_version(client, name, accuracy=0.8 + i / 100)
        promote(client, name, number, "production", status="applied")
    return name
