"""Creating and dropping PostgreSQL databases for tests (the server's admin URL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

PG_ADMIN_URL = os.environ.get(
    "MODELGATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def admin_engine() -> Engine:
    """An AUTOCOMMIT engine on the maintenance database (CREATE/DROP DATABASE)."""
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def pg_url(name: str) -> str:
    """The URL of database ``name`` on the test server, password included."""
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def create_pg_database(name: str) -> str:
    """A new, empty database (dropped first if it exists); returns its URL."""
    engine = admin_engine()
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return pg_url(name)


def drop_pg_database(name: str) -> None:
    engine = admin_engine()
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@contextmanager
def migrated_pg_database(prefix: str) -> Iterator[str]:
    """A new database built by the migrations (named ``<prefix>_<pid>_<random>``, so
    parallel runs never share one); yields its URL and drops it afterwards."""
    from app.db import migrate

    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = create_pg_database(name)
    engine = create_engine(url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    try:
        yield url
    finally:
        drop_pg_database(name)
