"""Liveness and readiness probes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from app.main import create_app
from app.settings import Settings
from tests.support.api import API, assert_problem
from tests.support.s3server import free_port


@pytest.mark.parametrize("prefix", ["", API])
def test_healthz_and_readyz(app_client: TestClient, prefix: str) -> None:
    health = app_client.get(f"{prefix}/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = app_client.get(f"{prefix}/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "artifact_store": "ok"}


def test_probes_need_no_token(app_client: TestClient) -> None:
    assert "authorization" not in app_client.headers
    assert app_client.get("/healthz").status_code == 200
    assert app_client.get("/readyz").status_code == 200


def test_readyz_is_503_when_the_store_is_unreachable(settings: Settings) -> None:
    dead = settings.model_copy(
        update={
            "artifact_store": "s3://no-store-here/artifacts",
            "s3_endpoint_url": f"http://127.0.0.1:{free_port()}",
        }
    )
    with TestClient(create_app(dead), base_url="http://modelgate.test") as client:
        # Liveness does not depend on the store.
        assert client.get("/healthz").status_code == 200
        started = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - started
        problem = assert_problem(response, 503, "not-ready")
        assert problem["checks"]["database"] == "ok"
        assert problem["checks"]["artifact_store"].startswith("unavailable")
        assert "artifact_store" in problem["detail"]
        assert elapsed < 30, f"readiness took {elapsed:.1f}s against a dead endpoint"


def test_readyz_is_503_when_the_store_directory_is_unusable(
    settings: Settings, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    broken = settings.model_copy(
        update={"artifact_store": str(blocker / "artifacts"), "s3_endpoint_url": None}
    )
    with TestClient(create_app(broken), base_url="http://modelgate.test") as client:
        problem = assert_problem(client.get("/readyz"), 503, "not-ready")
        assert problem["checks"]["artifact_store"].startswith("unavailable")


def test_readyz_is_503_when_the_database_is_unreachable(settings: Settings) -> None:
    with TestClient(create_app(settings), base_url="http://modelgate.test") as client:
        app = client.app
        healthy = app.state.engine  # type: ignore[attr-defined]
        app.state.engine = create_engine(  # type: ignore[attr-defined]
            "postgresql+psycopg://postgres@127.0.0.1:1/nothing",
            connect_args={"connect_timeout": 2},
        )
        try:
            problem = assert_problem(client.get("/readyz"), 503, "not-ready")
            assert problem["checks"]["database"].startswith("unavailable")
            assert problem["checks"]["artifact_store"] == "ok"
            assert "database" in problem["detail"]
        finally:
            app.state.engine.dispose()  # type: ignore[attr-defined]
            app.state.engine = healthy  # type: ignore[attr-defined]
