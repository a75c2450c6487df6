"""Observations from serving: per-window aggregates per version and role, and the
predictions kept until their labels arrive.

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        autoincrement=True,
        nullable=False,
    )


def _model_id(table: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "model_id",
        sa.BigInteger(),
        sa.ForeignKey(
            "registered_models.id",
            name=f"fk_{table}_model_id_registered_models",
            ondelete="CASCADE",
        ),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "observation_windows",
        _id(),
        _model_id("observation_windows"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("latency_count", sa.BigInteger(), nullable=False),
        sa.Column("latency_sum_ms", sa.Float(), nullable=False),
        sa.Column("latency_sample", sa.JSON(), nullable=False),
        sa.Column("predictions", sa.JSON(), nullable=False),
        sa.Column("value_count", sa.BigInteger(), nullable=False),
        sa.Column("value_sum", sa.Float(), nullable=False),
        sa.Column("value_sq_sum", sa.Float(), nullable=False),
        sa.Column("labelled", sa.BigInteger(), nullable=False),
        sa.Column("correct", sa.BigInteger(), nullable=False),
        sa.Column("value_labelled", sa.BigInteger(), nullable=False),
        sa.Column("abs_error_sum", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observation_windows")),
        sa.UniqueConstraint(
            "model_id",
            "version",
            "role",
            "window_start",
            name=op.f("uq_observation_windows_model_id_version_role_window_start"),
        ),
    )
    op.create_index(
        "ix_observation_windows_model_id_window_start",
        "observation_windows",
        ["model_id", "window_start"],
    )
    op.create_table(
        "observed_predictions",
        _id(),
        _model_id("observed_predictions"),
        sa.Column("request_key", sa.String(length=256), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prediction_kind", sa.String(length=8), nullable=False),
        sa.Column("prediction_class", sa.String(length=256), nullable=True),
        sa.Column("prediction_value", sa.Float(), nullable=True),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observed_predictions")),
        sa.UniqueConstraint(
            "model_id",
            "request_key",
            "role",
            name=op.f("uq_observed_predictions_model_id_request_key_role"),
        ),
    )
    op.create_index(
        "ix_observed_predictions_model_id_observed_at",
        "observed_predictions",
        ["model_id", "observed_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_observed_predictions_model_id_observed_at", "observed_predictions")
    op.drop_table("observed_predictions")
    op.drop_index("ix_observation_windows_model_id_window_start", "observation_windows")
    op.drop_table("observation_windows")
