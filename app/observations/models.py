"""Tables of observations: per-window aggregates and the request keys awaiting labels."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, BigIntPK, utcnow


class ObservationWindow(Base):
    """Everything one version was seen doing in one role during one time window.

    Bounded whatever the traffic: counts and sums, a histogram of predictions (classes,
    or ten bins of a score in [0, 1]), and a uniform sample of at most
    ``observation_latency_sample`` latencies (reservoir sampling: ``latency_count`` is how
    many the sample stands for).
    """

    __tablename__ = "observation_windows"
    __table_args__ = (
        UniqueConstraint("model_id", "version", "role", "window_start"),
        Index("ix_observation_windows_model_id_window_start", "model_id", "window_start"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("registered_models.id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    window_start: Mapped[datetime] = mapped_column()
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_count: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_sum_ms: Mapped[float] = mapped_column(Float, default=0.0)
    latency_sample: Mapped[list[Any]] = mapped_column(default=list)
    predictions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    value_count: Mapped[int] = mapped_column(BigInteger, default=0)
    value_sum: Mapped[float] = mapped_column(Float, default=0.0)
    value_sq_sum: Mapped[float] = mapped_column(Float, default=0.0)
    labelled: Mapped[int] = mapped_column(BigInteger, default=0)
    correct: Mapped[int] = mapped_column(BigInteger, default=0)
    value_labelled: Mapped[int] = mapped_column(BigInteger, default=0)
    abs_error_sum: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ObservedPrediction(Base):
    """A prediction kept until its label arrives (or its retention ends)."""

    __tablename__ = "observed_predictions"
    __table_args__ = (
        UniqueConstraint("model_id", "request_key", "role"),
        Index("ix_observed_predictions_model_id_observed_at", "model_id", "observed_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("registered_models.id", ondelete="CASCADE")
    )
    request_key: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime] = mapped_column()
    prediction_kind: Mapped[str] = mapped_column(String(8))
    prediction_class: Mapped[str | None] = mapped_column(String(256))
    prediction_value: Mapped[float | None] = mapped_column(Float)
    observed_at: Mapped[datetime] = mapped_column()
    labelled_at: Mapped[datetime | None] = mapped_column()
