"""Metrics carry their version's stage: a stage-filtered list ordered by a metric becomes
one range of an index on (model, metric, dataset, stage, value).

``metrics.stage`` is a copy of ``model_versions.stage``, filled here from the versions
and kept equal by the application in the flush that changes a version's stage
(``app/registry/models.py``). The index is partial (``slice = ''``, the whole dataset,
which is what lists order by).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_metrics_model_id_name_dataset_stage_value"


def upgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        batch.add_column(sa.Column("stage", sa.String(length=16), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        # A join, not a subquery per row: one pass over millions of metric rows.
        op.execute(
            "UPDATE metrics SET stage = model_versions.stage FROM model_versions "
            "WHERE model_versions.id = metrics.version_id"
        )
    else:
        op.execute(
            "UPDATE metrics SET stage = "
            "(SELECT model_versions.stage FROM model_versions "
            "WHERE model_versions.id = metrics.version_id)"
        )
    with op.batch_alter_table("metrics") as batch:
        batch.alter_column("stage", existing_type=sa.String(length=16), nullable=False)
    op.create_index(
        INDEX,
        "metrics",
        ["model_id", "name", "dataset", "stage", "value"],
        unique=False,
        postgresql_where=sa.text("slice = ''"),
        sqlite_where=sa.text("slice = ''"),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="metrics")
    with op.batch_alter_table("metrics") as batch:
        batch.drop_column("stage")
