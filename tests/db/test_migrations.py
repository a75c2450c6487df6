"""Migrations: one head; empty -> head -> base -> head; no drift from the models."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect, text

from app.db import migrate
from app.db.registry import Base


def app_tables() -> set[str]:
    return {t.name for t in Base.metadata.sorted_tables}


def tables_of(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def drift(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={"compare_type": True, "render_as_batch": engine.dialect.name == "sqlite"},
        )
        return list(compare_metadata(context, Base.metadata))


def test_exactly_one_head() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    heads = script.get_heads()
    assert len(heads) == 1, heads
    assert heads[0] == migrate.head_revision()
    # Every revision is reachable from the head down to the base: a single line.
    revisions = list(script.walk_revisions())
    assert revisions[-1].down_revision is None
    assert all(r.branch_labels in (None, set(), ()) for r in revisions)


def round_trip(engine: Engine) -> None:
    assert tables_of(engine) == set()
    assert migrate.current_revision(engine) is None

    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert tables_of(engine) == app_tables()
    assert drift(engine) == []

    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    assert tables_of(engine) == set()

    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert tables_of(engine) == app_tables()
    assert drift(engine) == []


@pytest.mark.postgres_only
def test_postgres_empty_head_base_head(fresh_pg: Engine) -> None:
    round_trip(fresh_pg)
    with fresh_pg.connect() as conn:
        triggers = set(
            conn.execute(
                text(
                    "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_events'::regclass"
                    " AND NOT tgisinternal"
                )
            ).scalars()
        )
    assert {"audit_events_append_only", "audit_events_append_only_truncate"} <= triggers


@pytest.mark.postgres_only
def test_postgres_step_by_step(fresh_pg: Engine) -> None:
    """Each revision upgrades and downgrades on its own, not only the whole stack."""
    script = ScriptDirectory.from_config(migrate.alembic_config())
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    for revision in revisions:
        migrate.upgrade(fresh_pg, revision)
        assert migrate.current_revision(fresh_pg) == revision
    for revision in reversed(revisions[:-1]):
        migrate.downgrade(fresh_pg, "-1")
        assert migrate.current_revision(fresh_pg) == revision
    migrate.downgrade(fresh_pg, "base")
    assert tables_of(fresh_pg) == set()
    with fresh_pg.connect() as conn:
        leftover = conn.execute(
            text("SELECT proname FROM pg_proc WHERE proname LIKE 'modelgate_%'")
        ).scalars()
        assert list(leftover) == []


@pytest.mark.postgres_only
def test_postgres_no_autogenerate_drift(pg_database: str) -> None:
    """The session's database, built by the migrations, matches the models exactly."""
    engine = create_engine(pg_database)
    try:
        assert drift(engine) == []
    finally:
        engine.dispose()


def test_sqlite_empty_head_base_head(fresh_sqlite: Engine) -> None:
    round_trip(fresh_sqlite)
