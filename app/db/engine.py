"""Engine and session factory for PostgreSQL and the embedded SQLite default."""

from __future__ import annotations

import select
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from app.settings import Settings


def build_engine(settings: Settings) -> Engine:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(settings)
    connect_args: dict[str, Any] = {"connect_timeout": 5, "application_name": "modelgate"}
    if settings.db_statement_timeout_ms:
        connect_args["options"] = f"-c statement_timeout={settings.db_statement_timeout_ms}"
    engine = create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_recycle=1800,
        connect_args=connect_args,
    )
    _replace_dead_connections(engine)
    return engine


def _replace_dead_connections(engine: Engine) -> None:
    """A connection that died with a PostgreSQL restart (or pg_terminate_backend, or an
    idle timeout) is replaced at checkout instead of failing the request that draws it.

    SQLAlchemy's ``pool_pre_ping`` would send ``SELECT 1`` on every checkout: a round trip
    and about 4 % of a simple request's CPU. A server that ends a session sends its
    goodbye (an error message, then EOF) on the socket, so a healthy idle connection is
    one whose socket has nothing to read: one non-blocking poll, and the real ping only
    when something did arrive.
    """

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if getattr(dbapi_connection, "closed", False) or getattr(dbapi_connection, "broken", False):
            raise DisconnectionError("the connection is closed")
        try:
            readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
        except (OSError, ValueError) as exc:
            raise DisconnectionError(str(exc)) from exc
        if not readable:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool discards this connection and checks out (or opens) another.
            raise DisconnectionError(str(exc)) from exc


def _sqlite_engine(settings: Settings) -> Engine:
    url = make_url(settings.database_url)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_overflow,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy issue BEGIN itself (pysqlite's implicit transactions would
        # defer it), so that writers can take the write lock up front below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # SQLite has no row locks: a writer that starts with a deferred BEGIN and reads
        # first can dead-end on SQLITE_BUSY when it upgrades. Write transactions take the
        # database write lock at BEGIN instead, which serialises them like a model lock.
        if conn.get_execution_options().get("modelgate_write", True):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def build_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


def read_only_bind(engine: Engine) -> Engine:
    """An engine view whose transactions do not take SQLite's write lock."""
    return engine.execution_options(modelgate_write=False)
