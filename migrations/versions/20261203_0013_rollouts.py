"""Rollouts: a version meeting traffic step by step, with its looks and decisions; one
active (running or paused) rollout per model.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = "state IN ('running', 'paused')"


def _via(allowed: str) -> None:
    # SQLite rebuilds the table (nothing references production_history).
    with op.batch_alter_table("production_history", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_production_history_via"), type_="check")
        batch.create_check_constraint(op.f("ck_production_history_via"), f"via IN ({allowed})")


def upgrade() -> None:
    # A production period opened by a completed rollout says so.
    _via("'promotion', 'rollback', 'rollout'")
    op.create_table(
        "rollouts",
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
                name="fk_rollouts_model_id_registered_models",
                ondelete="RESTRICT",
            ),
            nullable=False,
        ),
        sa.Column(
            "version_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "model_versions.id",
                name="fk_rollouts_version_id_model_versions",
                ondelete="RESTRICT",
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("incumbent_version", sa.Integer(), nullable=True),
        sa.Column("strategy", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("switched", sa.Boolean(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("promote_on_complete", sa.Boolean(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("analysis", sa.JSON(), nullable=False),
        sa.Column("looks", sa.JSON(), nullable=False),
        sa.Column("decisions", sa.JSON(), nullable=False),
        sa.Column("look_count", sa.Integer(), nullable=False),
        sa.Column("last_look_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_look_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step_base_requests", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("start_reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("serving_revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollouts")),
    )
    op.create_index(
        "uq_rollouts_one_active_per_model",
        "rollouts",
        ["model_id"],
        unique=True,
        postgresql_where=sa.text(ACTIVE),
        sqlite_where=sa.text(ACTIVE),
    )
    op.create_index("ix_rollouts_model_id_id", "rollouts", ["model_id", "id"])
    op.create_index("ix_rollouts_state_next_look_at", "rollouts", ["state", "next_look_at"])


def downgrade() -> None:
    op.drop_index("ix_rollouts_state_next_look_at", "rollouts")
    op.drop_index("ix_rollouts_model_id_id", "rollouts")
    op.drop_index("uq_rollouts_one_active_per_model", "rollouts")
    op.drop_table("rollouts")
    op.execute("UPDATE production_history SET via = 'promotion' WHERE via = 'rollout'")
    _via("'promotion', 'rollback'")
