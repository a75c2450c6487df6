"""Small portable helpers over the differences between PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table, bindparam, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert


def insert_ignore(session: Session, table: Table, values: dict[str, Any]) -> None:
    """INSERT that does nothing when the row's unique key already exists."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(postgresql.insert(table).values(**values).on_conflict_do_nothing())
    else:
        session.execute(sqlite.insert(table).values(**values).on_conflict_do_nothing())


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def insert_with_own_params(table: Table, prefix: str) -> Insert:
    """An ``INSERT`` of every column of ``table`` but ``id``, each value the bind parameter
    named ``prefix`` + the column's name. PostgreSQL writes in a ``WITH``: a CTE attached
    to this statement, with parameters of its own, can then not take a value meant for
    one of its columns (nor the reverse). Execute it with :func:`own_params`."""
    values = {c.name: bindparam(f"{prefix}{c.name}", type_=c.type) for c in table.c}
    values.pop("id", None)
    return insert(table).values(values)


def own_params(prefix: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """``row``'s values under the parameter names of :func:`insert_with_own_params`."""
    return {f"{prefix}{key}": value for key, value in row.items()}
