"""Empty databases for the migration tests: each test builds its schema itself, revision
by revision, so none of these fixtures migrates anything."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from tests.support.pg import create_pg_database, drop_pg_database


@pytest.fixture
def fresh_pg() -> Iterator[Engine]:
    """An empty PostgreSQL database of its own, dropped afterwards."""
    name = f"modelgate_migr_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    engine = create_engine(create_pg_database(name))
    try:
        yield engine
    finally:
        engine.dispose()
        drop_pg_database(name)


@pytest.fixture
def fresh_sqlite(tmp_path: Path) -> Iterator[Engine]:
    """An empty SQLite file."""
    engine = create_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres_only)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """An empty database on each backend (PostgreSQL only where the suite runs on it)."""
    fixture = "fresh_sqlite" if request.param == "sqlite" else "fresh_pg"
    engine: Engine = request.getfixturevalue(fixture)
    return engine
