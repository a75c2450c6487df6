"""Shared fixtures: a real database (PostgreSQL or SQLite), a real artifact store (moto's
S3 server over HTTP, or a directory), and the app over httpx.

Which backends run is chosen by environment variables, so the suite runs once per
combination (scripts/test does both):

- ``MODELGATE_TEST_DB``: ``postgres`` (default) or ``sqlite``
- ``MODELGATE_TEST_STORE``: ``s3`` (default) or ``local``
- ``MODELGATE_TEST_PG_URL``: an admin URL of the PostgreSQL server
  (default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``)
- ``MODELGATE_TEST_BACKEND_ONLY=1``: run only the tests whose outcome can depend on the
  backends (scripts/test sets it for its second run: a pure gate, a Monte Carlo figure or
  a store's own test gives the same answer whatever ``MODELGATE_TEST_DB`` says)
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from app.db import migrate
from app.db.registry import Base
from app.main import create_app
from app.settings import Settings
from tests.support.api import ADMIN_TOKEN, SECRET_KEY
from tests.support.pg import migrated_pg_database
from tests.support.s3server import start_moto_server

TEST_DB = os.environ.get("MODELGATE_TEST_DB", "postgres")
TEST_STORE = os.environ.get("MODELGATE_TEST_STORE", "s3")

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def pytest_report_header() -> list[str]:
    return [f"modelgate backends: database={TEST_DB} artifact store={TEST_STORE}"]


# Fixtures through which a test reaches the chosen backends, and the folders whose own
# conftest picks the backends from the environment (their fixtures are not in a test's
# static fixture closure).
BACKEND_FIXTURES = frozenset(
    {
        "database_url",
        "artifact_store_url",
        "settings",
        "pg_database",
        "sqlite_template",
        "s3_endpoint",
        "s3_bucket",
        "s3_client",
    }
)
BACKEND_CHOOSING_FOLDERS = ("tests/cli/", "tests/security/", "tests/console/", "tests/mlflow/")


def depends_on_backend(item: pytest.Item) -> bool:
    if item.nodeid.startswith(BACKEND_CHOOSING_FOLDERS):
        return True
    return bool(BACKEND_FIXTURES.intersection(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("MODELGATE_TEST_BACKEND_ONLY") == "1":
        kept = [item for item in items if depends_on_backend(item)]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
    if TEST_DB == "postgres":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (run with MODELGATE_TEST_DB=postgres)")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


# PostgreSQL --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database for this test session, built by the migrations."""
    with migrated_pg_database("modelgate_test") as url:
        yield url


def truncate_all(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        # The audit table refuses TRUNCATE through a trigger; a replica-role session skips
        # ordinary triggers, which only a superuser (the test harness) may do.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = create_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A clean, migrated database for one test."""
    if TEST_DB == "postgres":
        url: str = request.getfixturevalue("pg_database")
        truncate_all(url)
        return url
    template: Path = request.getfixturevalue("sqlite_template")
    target = tmp_path / "modelgate.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


# Artifact store ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = start_moto_server()
    try:
        yield server.endpoint_url
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    name = f"mg-{uuid.uuid4().hex[:20]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture
def artifact_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if TEST_STORE == "s3":
        bucket: str = request.getfixturevalue("s3_bucket")
        return f"s3://{bucket}/artifacts"
    return str(tmp_path / "artifacts")


@pytest.fixture
def s3_client(s3_endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


# App --------------------------------------------------------------------------------


@pytest.fixture
def settings(
    request: pytest.FixtureRequest, database_url: str, artifact_store_url: str
) -> Settings:
    endpoint = request.getfixturevalue("s3_endpoint") if TEST_STORE == "s3" else None
    return Settings(
        database_url=database_url,
        artifact_store=artifact_store_url,
        s3_endpoint_url=endpoint,
        s3_region="us-east-1",
        bootstrap_admin_token=ADMIN_TOKEN,
        secret_key=SECRET_KEY,
        auto_migrate=False,
        log_level="WARNING",
        db_pool_size=5,
    )


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    """The app over httpx, unauthenticated, with the lifespan run."""
    app = create_app(settings)
    with TestClient(app, base_url="http://modelgate.test") as client:
        yield client


@pytest.fixture
def client(app_client: TestClient) -> TestClient:
    """The app over httpx with an admin token."""
    app_client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    return app_client


@pytest.fixture
def make_token(client: TestClient) -> Callable[..., str]:
    """Create a token with a role (and optional model scope); returns its secret."""

    def make(role: str, *, name: str | None = None, model_scope: str | None = None) -> str:
        body: dict[str, object] = {"name": name or f"{role}-{uuid.uuid4().hex[:6]}", "role": role}
        if model_scope:
            body["model_scope"] = model_scope
        response = client.post("/api/v1/tokens", json=body)
        assert response.status_code == 201, response.text
        token: str = response.json()["token"]
        return token

    return make
