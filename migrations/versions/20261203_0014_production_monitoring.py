"""Monitoring after release: the state of each production period's watch.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "production_monitoring",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "model_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "registered_models.id",
                name="fk_production_monitoring_model_id_registered_models",
                ondelete="CASCADE",
            ),
            nullable=False,
        ),
        sa.Column(
            "period_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "production_history.id",
                name="fk_production_monitoring_period_id_production_history",
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("baseline_version", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("looks", sa.Integer(), nullable=False),
        sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_look", sa.JSON(), nullable=True),
        sa.Column("degraded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("degraded_reason", sa.Text(), nullable=True),
        sa.Column("action", sa.String(length=24), nullable=True),
        sa.Column("action_detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_production_monitoring")),
        sa.UniqueConstraint("period_id", name=op.f("uq_production_monitoring_period_id")),
    )


def downgrade() -> None:
    op.drop_table("production_monitoring")
