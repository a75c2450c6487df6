"""Version search terms (tags and lineage fields, indexed), filled from every stored
version; webhook secrets sealed under MODELGATE_SECRET_KEY (AES-256-GCM) instead of kept
in clear.

Existing webhook secrets are sealed here, so upgrading a database that holds webhooks
needs the key: given by Modelgate (``modelgate db upgrade`` and the server's automatic
upgrade pass the configured key) or ``MODELGATE_SECRET_KEY`` in the environment. Without
one, the upgrade stops before changing anything and says so. The downgrade opens them
again (with the same key, or one of ``MODELGATE_SECRET_KEYS_PREVIOUS``).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The lineage fields a version is found by (app/registry/search.py at this revision).
_LINEAGE = (
    "code_commit", "code_repository", "code_dirty", "data_version",
    "feature_pipeline_version", "environment", "seed", "training_run_id", "ci_run_id",
    "ci_run_url",
)  # fmt: skip


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    return None


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def _terms(tags: dict[str, Any], lineage: dict[str, Any]) -> list[tuple[str, str]]:
    found = [(f"tag:{k}", _digest(str(v))) for k, v in sorted(tags.items())]
    for field in _LINEAGE:
        text = _text(lineage.get(field))
        if text is not None:
            found.append((f"lineage:{field}", _digest(text)))
    return found


def _box(keys: Sequence[str]) -> Any:
    from app.events.secretbox import SecretBox

    return SecretBox.from_texts(keys[0], list(keys[1:]))


def _previous_from_env() -> list[str]:
    raw = os.environ.get("MODELGATE_SECRET_KEYS_PREVIOUS", "").strip()
    return [str(k) for k in json.loads(raw)] if raw else []


def upgrade() -> None:
    # First, before any change: SQLite runs DDL outside the transaction.
    conn = op.get_bind()
    hooks = conn.execute(sa.text("SELECT id, secret FROM webhooks ORDER BY id")).all()
    secret_key = op.get_context().config.attributes.get("secret_key") or os.environ.get(
        "MODELGATE_SECRET_KEY"
    )
    if hooks and not secret_key:
        raise RuntimeError(
            f"revision 0016 seals the secrets of {len(hooks)} existing webhook(s) and needs "
            "the key: set MODELGATE_SECRET_KEY (32 random bytes, base64) and upgrade again"
        )
    op.create_table(
        "version_search_terms",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("model_id", sa.BigInteger(), nullable=False),
        sa.Column("version_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("value_sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_models.id"],
            name=op.f("fk_version_search_terms_model_id_registered_models"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_version_search_terms_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_version_search_terms")),
    )
    op.create_index(
        "ix_version_search_terms_model_id_key_value_sha256_version",
        "version_search_terms",
        ["model_id", "key", "value_sha256", "version"],
        unique=False,
    )
    op.create_index(
        "ix_version_search_terms_version_id", "version_search_terms", ["version_id"], unique=False
    )
    terms = sa.table(
        "version_search_terms",
        sa.column("model_id"), sa.column("version_id"), sa.column("version"),
        sa.column("key"), sa.column("value_sha256"),
    )  # fmt: skip
    rows = conn.execute(
        sa.text("SELECT id, model_id, version, tags, lineage FROM model_versions ORDER BY id")
    )
    batch: list[dict[str, Any]] = []
    for vid, model_id, number, tags, lineage in rows:
        for term, value in _terms(_json(tags), _json(lineage)):
            batch.append({"model_id": model_id, "version_id": vid, "version": number,
                          "key": term, "value_sha256": value})  # fmt: skip
        if len(batch) >= 5000:
            conn.execute(terms.insert(), batch)
            batch = []
    if batch:
        conn.execute(terms.insert(), batch)

    with op.batch_alter_table("webhooks") as batch_op:
        batch_op.add_column(sa.Column("secret_sealed", sa.Text(), nullable=True))
    if hooks:
        box = _box([str(secret_key)])
        for hook_id, secret in hooks:
            conn.execute(
                sa.text("UPDATE webhooks SET secret_sealed = :sealed WHERE id = :id"),
                {"sealed": box.seal(secret), "id": hook_id},
            )
    with op.batch_alter_table("webhooks") as batch_op:
        batch_op.alter_column("secret_sealed", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("secret")


def downgrade() -> None:
    conn = op.get_bind()
    hooks = conn.execute(sa.text("SELECT id, secret_sealed FROM webhooks ORDER BY id")).all()
    keys = list(op.get_context().config.attributes.get("secret_keys") or ())
    if not keys and os.environ.get("MODELGATE_SECRET_KEY"):
        keys = [os.environ["MODELGATE_SECRET_KEY"], *_previous_from_env()]
    if hooks and not keys:
        raise RuntimeError(
            "downgrading below 0016 stores webhook secrets in clear again and needs the key "
            "that sealed them: set MODELGATE_SECRET_KEY"
        )
    with op.batch_alter_table("webhooks") as batch_op:
        batch_op.add_column(sa.Column("secret", sa.String(length=256), nullable=True))
    if hooks:
        box = _box(keys)
        for hook_id, sealed in hooks:
            conn.execute(
                sa.text("UPDATE webhooks SET secret = :secret WHERE id = :id"),
                {"secret": box.open(sealed), "id": hook_id},
            )
    with op.batch_alter_table("webhooks") as batch_op:
        batch_op.alter_column("secret", existing_type=sa.String(length=256), nullable=False)
        batch_op.drop_column("secret_sealed")
    op.drop_index("ix_version_search_terms_version_id", table_name="version_search_terms")
    op.drop_index(
        "ix_version_search_terms_model_id_key_value_sha256_version",
        table_name="version_search_terms",
    )
    op.drop_table("version_search_terms")
