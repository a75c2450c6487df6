"""Configuration and the command line: bad settings fail with one line, the schema is
upgraded explicitly on PostgreSQL, and a bootstrap token made by the CLI authenticates."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect

from app.main import create_app
from app.settings import Settings
from tests.support.api import API, auth
from tests.support.pg import create_pg_database, drop_pg_database
from tests.support.servers import server_env

SCRIPT = Path(sys.executable).parent / "modelgate"


def modelgate(
    *args: str, settings: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the ``modelgate`` command with only the given MODELGATE_* settings."""
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "modelgate_client.cli"]
    return subprocess.run(
        [*command, *args],
        env=server_env(settings),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("setting", "value", "needle"),
    [
        ("DATABASE_URL", "mysql://x", "MODELGATE_DATABASE_URL"),
        ("ARTIFACT_STORE", "gs://x", "MODELGATE_ARTIFACT_STORE"),
        ("DB_POOL_SIZE", "abc", "MODELGATE_DB_POOL_SIZE"),
        ("DB_POOL_SIZE", "0", "MODELGATE_DB_POOL_SIZE"),
        ("LOG_LEVEL", "LOUD", "MODELGATE_LOG_LEVEL"),
        ("AUTO_MIGRATE", "perhaps", "MODELGATE_AUTO_MIGRATE"),
        ("ARTIFACT_STORE", "s3://", "MODELGATE_ARTIFACT_STORE"),
        ("ARTIFACT_STORE", "s3://Not_A_Bucket/x", "Not_A_Bucket"),
        ("CORS_ALLOW_ORIGINS", "not json", "MODELGATE_CORS_ALLOW_ORIGINS"),
    ],
)
def test_invalid_configuration_fails_with_one_line(
    tmp_path: Path, setting: str, value: str, needle: str
) -> None:
    settings = {
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite",
        "ARTIFACT_STORE": str(tmp_path / "artifacts"),
        setting: value,
    }
    result = modelgate("serve", "--port", "1", settings=settings, cwd=tmp_path)
    assert_one_line_failure(result, needle)
    assert not (tmp_path / "db.sqlite").exists()


def test_several_problems_still_make_one_line(tmp_path: Path) -> None:
    result = modelgate(
        "serve",
        settings={"DATABASE_URL": "mysql://x", "ARTIFACT_STORE": "gs://x", "DB_POOL_SIZE": "abc"},
        cwd=tmp_path,
    )
    assert_one_line_failure(
        result, "MODELGATE_DATABASE_URL", "MODELGATE_ARTIFACT_STORE", "MODELGATE_DB_POOL_SIZE"
    )


def test_unreachable_database_fails_with_one_line(tmp_path: Path) -> None:
    result = modelgate(
        "serve",
        settings={
            "DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/nothing",
            "ARTIFACT_STORE": str(tmp_path / "artifacts"),
        },
        cwd=tmp_path,
    )
    assert_one_line_failure(result, "database")


@pytest.fixture
def unmigrated_pg() -> Iterator[str]:
    name = f"modelgate_cli_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = create_pg_database(name)
    yield url
    drop_pg_database(name)


@pytest.mark.postgres_only
def test_unmigrated_postgres_then_db_upgrade_then_token(unmigrated_pg: str, tmp_path: Path) -> None:
    settings = {"DATABASE_URL": unmigrated_pg, "ARTIFACT_STORE": str(tmp_path / "artifacts")}

    refused = modelgate("serve", "--port", "1", settings=settings, cwd=tmp_path)
    line = assert_one_line_failure(refused, "modelgate db upgrade")
    assert "password" not in line.lower()
    engine = create_engine(unmigrated_pg)
    assert inspect(engine).get_table_names() == []  # the server does not migrate PostgreSQL
    engine.dispose()

    # A token cannot be made in a schema that is not there either; the bootstrap names
    # the database it used, then why it refuses.
    refused_token = modelgate(
        "tokens", "create", "--bootstrap", "--role", "admin", "--name", "x",
        settings=settings, cwd=tmp_path,
    )  # fmt: skip
    assert refused_token.returncode == 2, refused_token.stderr
    assert refused_token.stdout == ""
    lines = refused_token.stderr.strip().splitlines()
    assert lines[0].startswith("modelgate: using database postgresql+psycopg://")
    assert "modelgate db upgrade" in lines[-1]
    assert "Traceback" not in refused_token.stderr

    upgraded = modelgate("db", "upgrade", settings=settings, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    current = modelgate("db", "current", settings=settings, cwd=tmp_path)
    assert current.returncode == 0
    revisions = current.stdout.split()
    assert revisions[1] == revisions[3]  # "database: X  needed: X"

    check_cli_token(settings, tmp_path, unmigrated_pg)


def test_cli_token_on_the_embedded_default(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/embedded.db"
    settings = {"DATABASE_URL": url, "ARTIFACT_STORE": str(tmp_path / "artifacts")}
    # The bootstrap never creates a database (issue 14 item 7): the server (or
    # `db upgrade`) makes the embedded one first.
    upgraded = modelgate("db", "upgrade", settings=settings, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    check_cli_token(settings, tmp_path, url)


def check_cli_token(settings: dict[str, str], cwd: Path, database_url: str) -> None:
    created = modelgate(
        "tokens", "create", "--bootstrap", "--role", "admin", "--name", "x",
        settings=settings, cwd=cwd,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("mgt_")
    assert len(created.stdout.strip().splitlines()) == 1  # only the secret on stdout
    assert secret not in created.stderr

    app = create_app(
        Settings(
            database_url=database_url,
            artifact_store=str(cwd / "artifacts"),
            auto_migrate=False,
            log_level="WARNING",
        )
    )
    with TestClient(app, base_url="http://modelgate.test") as client:
        tokens = client.get(f"{API}/tokens", headers=auth(secret))
        assert tokens.status_code == 200, tokens.text
        names = [t["name"] for t in tokens.json()["items"]]
        assert "x" in names
        assert (
            client.post(
                f"{API}/models", json={"name": "from-cli"}, headers=auth(secret)
            ).status_code
            == 201
        )
        events = client.get(f"{API}/audit", headers=auth(secret)).json()["items"]
        created_events = [e for e in events if e["action"] == "token.created"]
        assert any(e["details"]["name"] == "x" for e in created_events)
        assert client.get(f"{API}/audit/verify", headers=auth(secret)).json()["ok"] is True
