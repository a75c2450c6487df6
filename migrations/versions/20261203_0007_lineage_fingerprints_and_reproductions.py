"""Lineage fingerprints on versions, reproductions (re-runs of a version's training), and
data checks (datasets checked against a version's data contract).

``model_versions.lineage_fingerprint`` is the sha256 of the canonical JSON of the lineage
fields that make up a training specification (``app/registry/fingerprint.py``); existing
versions are filled here from their stored lineage, with the definition of this revision
copied below (a migration must not change when the application's code does). An index on
(model, fingerprint) finds the versions of one specification.

``reproductions`` holds re-runs submitted as evidence: the artifact digest and metrics a
re-run produced, for the ``reproducible`` gate rule. ``data_checks`` holds data-contract
reports, for the ``data_contract`` gate rule.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_model_versions_model_id_lineage_fingerprint"
FIELDS = (
    "code_commit",
    "data_version",
    "feature_pipeline_version",
    "environment",
    "hyperparameters",
    "seed",
)
BATCH = 1000


def _fingerprint(lineage: Any) -> str:
    if isinstance(lineage, str):
        lineage = json.loads(lineage)
    spec = {field: (lineage or {}).get(field) for field in FIELDS}
    text = json.dumps(
        spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(text.encode()).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("lineage_fingerprint", sa.String(length=64), nullable=True))
    bind = op.get_bind()
    versions = sa.table(
        "model_versions",
        sa.column("id", sa.BigInteger()),
        sa.column("lineage", sa.JSON()),
        sa.column("lineage_fingerprint", sa.String(length=64)),
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(versions.c.id, versions.c.lineage)
            .where(versions.c.id > last)
            .order_by(versions.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        bind.execute(
            versions.update()
            .where(versions.c.id == sa.bindparam("vid"))
            .values(lineage_fingerprint=sa.bindparam("fp")),
            [{"vid": row.id, "fp": _fingerprint(row.lineage)} for row in rows],
        )
        last = rows[-1].id
    with op.batch_alter_table("model_versions") as batch:
        batch.alter_column(
            "lineage_fingerprint", existing_type=sa.String(length=64), nullable=False
        )
    op.create_index(INDEX, "model_versions", ["model_id", "lineage_fingerprint"], unique=False)

    op.create_table(
        "reproductions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("model_id", sa.BigInteger(), nullable=False),
        sa.Column("version_id", sa.BigInteger(), nullable=False),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("lineage_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("run_url", sa.String(length=2048), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_models.id"],
            name=op.f("fk_reproductions_model_id_registered_models"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_reproductions_version_id_model_versions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reproductions")),
    )
    op.create_index(
        "ix_reproductions_version_id_id", "reproductions", ["version_id", "id"], unique=False
    )

    op.create_table(
        "data_checks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("model_id", sa.BigInteger(), nullable=False),
        sa.Column("version_id", sa.BigInteger(), nullable=False),
        sa.Column("dataset", sa.String(length=256), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("rows", sa.Float(), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_models.id"],
            name=op.f("fk_data_checks_model_id_registered_models"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_data_checks_version_id_model_versions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_checks")),
    )
    op.create_index(
        "ix_data_checks_version_id_dataset_id",
        "data_checks",
        ["version_id", "dataset", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_data_checks_version_id_dataset_id", table_name="data_checks")
    op.drop_table("data_checks")
    op.drop_index("ix_reproductions_version_id_id", table_name="reproductions")
    op.drop_table("reproductions")
    op.drop_index(INDEX, table_name="model_versions")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("lineage_fingerprint")
