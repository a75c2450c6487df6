"""Running alembic from Modelgate itself (server start, ``modelgate db upgrade``, tests)."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

import migrations


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.set_main_option("path_separator", "os")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


# Any fixed 64-bit number; names the "schema migration" advisory lock on PostgreSQL.
_MIGRATION_LOCK_KEY = 0x6D6F64656C676174


def upgrade(engine: Engine, revision: str = "head", *, secret_key: str | None = None) -> None:
    """Upgrade to ``revision``. ``secret_key`` is the key revision 0016 seals existing
    webhook secrets under (default: ``MODELGATE_SECRET_KEY`` from the environment)."""
    cfg = alembic_config()
    cfg.attributes["secret_key"] = secret_key
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Several containers starting at once must not run the same migration twice:
            # the second waits here, then finds the schema already at head.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        _check_sealing_key(conn, revision, secret_key)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _check_sealing_key(conn: Connection, revision: str, secret_key: str | None) -> None:
    """Refuse, before any revision runs, an upgrade through 0016 that has webhook secrets
    to seal and no key to seal them with. Revision 0016 checks this itself too, but the
    revisions before it in the same upgrade would already have run, and SQLite runs DDL
    outside the transaction: the database would be left between revisions."""
    if revision != "head" and revision < "0016":
        return
    if "webhooks" not in inspect(conn).get_table_names():
        return
    if "secret" not in {c["name"] for c in inspect(conn).get_columns("webhooks")}:
        return  # 0016 already ran: secrets are sealed
    if secret_key or os.environ.get("MODELGATE_SECRET_KEY"):
        return
    hooks = conn.execute(text("SELECT count(*) FROM webhooks")).scalar_one()
    if hooks:
        raise RuntimeError(
            f"revision 0016 seals the secrets of {hooks} existing webhook(s) and needs "
            "the key: set MODELGATE_SECRET_KEY (32 random bytes, base64) and upgrade again"
        )


def downgrade(engine: Engine, revision: str, *, secret_keys: tuple[str, ...] = ()) -> None:
    """Downgrade to ``revision``; below 0016 the webhook secrets are opened with
    ``secret_keys`` (default: the environment's keys) and stored in clear again."""
    cfg = alembic_config()
    cfg.attributes["secret_keys"] = secret_keys
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
