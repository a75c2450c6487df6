"""Fixtures of the security tests: an application whose state lives for a whole module.

The authorization matrix and the fuzzer send hundreds of requests against one prepared
world (models, versions, tokens, promotions); rebuilding it for each would cost minutes.
Each module gets a database of its own (PostgreSQL or a SQLite file, built by the
migrations) and an artifact store of its own (a bucket on the test S3 server, or a
directory), picked by ``MODELGATE_TEST_DB`` and ``MODELGATE_TEST_STORE`` like the rest of
the suite.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import boto3
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import create_engine

from app.db import migrate
from app.main import create_app
from app.settings import Settings
from tests.support.api import ADMIN_TOKEN, SECRET_KEY
from tests.support.pg import create_pg_database, drop_pg_database

TEST_DB = os.environ.get("MODELGATE_TEST_DB", "postgres")
TEST_STORE = os.environ.get("MODELGATE_TEST_STORE", "s3")


@pytest.fixture(scope="module")
def module_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database for one test module."""
    if TEST_DB == "postgres":
        name = f"modelgate_sec_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        url = create_pg_database(name)
    else:
        name = ""
        url = f"sqlite:///{tmp_path_factory.mktemp('security-db') / 'modelgate.db'}"
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    if name:
        drop_pg_database(name)


@pytest.fixture(scope="module")
def module_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An empty artifact store for one test module."""
    if TEST_STORE == "s3":
        endpoint: str = request.getfixturevalue("s3_endpoint")
        bucket = f"mg-sec-{uuid.uuid4().hex[:16]}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket=bucket
        )
        return f"s3://{bucket}/artifacts"
    return str(tmp_path_factory.mktemp("security-store") / "artifacts")


@pytest.fixture(scope="module")
def module_settings(
    request: pytest.FixtureRequest, module_database: str, module_store: str
) -> Settings:
    endpoint = request.getfixturevalue("s3_endpoint") if TEST_STORE == "s3" else None
    return Settings(
        database_url=module_database,
        artifact_store=module_store,
        s3_endpoint_url=endpoint,
        s3_region="us-east-1",
        bootstrap_admin_token=SecretStr(ADMIN_TOKEN),
        secret_key=SecretStr(SECRET_KEY),
        auto_migrate=False,
        log_level="WARNING",
        db_pool_size=5,
        # No background deliveries: webhooks created here point at nothing.
        webhook_dispatcher_enabled=False,
    )


@pytest.fixture(scope="module")
def module_app_client(module_settings: Settings) -> Iterator[TestClient]:
    """The application for one module, unauthenticated; a 500 comes back as an answer
    (not an exception) so that a test can report it with the request that caused it."""
    app = create_app(module_settings)
    with TestClient(app, base_url="http://modelgate.test", raise_server_exceptions=False) as client:
        yield client
