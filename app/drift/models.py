"""Tables of drift monitoring: reference profiles, drift reports, per-model settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, BigIntPK, utcnow


class ReferenceProfile(Base):
    """The training-data profile of one version; immutable, at most one per version."""

    __tablename__ = "reference_profiles"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("registered_models.id"))
    version_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("model_versions.id", ondelete="CASCADE"), unique=True
    )
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))
    dataset: Mapped[str | None] = mapped_column(String(256))
    rows: Mapped[int | None] = mapped_column(BigInteger)
    # Bins, frequencies and the kept samples (up to a few MB): loaded when needed only.
    profile: Mapped[dict[str, Any]] = mapped_column(deferred=True)
    digest: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DriftReport(Base):
    """One production window checked against the production version's reference."""

    __tablename__ = "drift_reports"
    __table_args__ = (Index("ix_drift_reports_model_id_id", "model_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("registered_models.id"))
    version: Mapped[int] = mapped_column(Integer)
    reference_profile_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("reference_profiles.id")
    )
    window_start: Mapped[datetime | None] = mapped_column()
    window_end: Mapped[datetime | None] = mapped_column()
    rows: Mapped[int | None] = mapped_column(BigInteger)
    score: Mapped[float] = mapped_column(Float)
    tau: Mapped[float] = mapped_column(Float)
    drifted: Mapped[bool] = mapped_column(Boolean)
    top_feature: Mapped[str | None] = mapped_column(String(256))
    report: Mapped[dict[str, Any]] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DriftSettings(Base):
    """A model's drift thresholds; without a row, the documented defaults apply."""

    __tablename__ = "drift_settings"

    model_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("registered_models.id"), primary_key=True
    )
    tau: Mapped[float] = mapped_column(Float)
    max_null_rate: Mapped[float] = mapped_column(Float)
    alpha: Mapped[float] = mapped_column(Float)
    updated_by: Mapped[str] = mapped_column(String(256))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
