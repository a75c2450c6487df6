"""The rollout table: one row per rollout, its steps, looks and decisions kept with it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, BigIntPK, utcnow


class RolloutState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ABORTED = "aborted"


ACTIVE_STATES = (RolloutState.RUNNING.value, RolloutState.PAUSED.value)
_ACTIVE_SQL = "state IN ('running', 'paused')"


class Rollout(Base):
    """A version meeting traffic step by step against the production version.

    ``weight`` is the candidate's current percent of the requests (``share``: of the
    requests it also scores, as a shadow); both are 0 once the rollout has ended. The
    serving plan reads them from the model's active rollout (running or paused): the
    partial unique index allows one per model.
    """

    __tablename__ = "rollouts"
    __table_args__ = (
        Index(
            "uq_rollouts_one_active_per_model",
            "model_id",
            unique=True,
            postgresql_where=text(_ACTIVE_SQL),
            sqlite_where=text(_ACTIVE_SQL),
        ),
        Index("ix_rollouts_model_id_id", "model_id", "id"),
        Index("ix_rollouts_state_next_look_at", "state", "next_look_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("registered_models.id", ondelete="RESTRICT")
    )
    version_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("model_versions.id", ondelete="RESTRICT")
    )
    version: Mapped[int] = mapped_column(Integer)
    incumbent_version: Mapped[int | None] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    step: Mapped[int] = mapped_column(Integer, default=0)
    switched: Mapped[bool] = mapped_column(Boolean, default=False)
    """blue_green: whether the whole share has moved (False: the green version warms up
    as a shadow)."""
    weight: Mapped[float] = mapped_column(Float, default=0.0)
    share: Mapped[float] = mapped_column(Float, default=0.0)
    promote_on_complete: Mapped[bool] = mapped_column(Boolean, default=True)
    steps: Mapped[list[Any]] = mapped_column(default=list)
    analysis: Mapped[dict[str, Any]] = mapped_column(default=dict)
    looks: Mapped[list[Any]] = mapped_column(default=list)
    decisions: Mapped[list[Any]] = mapped_column(default=list)
    look_count: Mapped[int] = mapped_column(Integer, default=0)
    """Looks taken so far (also the number of the next look minus one): a driver that
    read another count than the one under the lock does not act."""
    last_look_at: Mapped[datetime | None] = mapped_column()
    next_look_at: Mapped[datetime | None] = mapped_column()
    step_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    step_base_requests: Mapped[int] = mapped_column(BigInteger, default=0)
    """The candidate's requests observed (in its role) when the step started."""
    reason: Mapped[str | None] = mapped_column(Text)
    start_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column()
    serving_revision: Mapped[int] = mapped_column(Integer, default=0)
