"""The monitoring state of each production period: looks taken, and the degradation
raised (at most once per period)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, BigIntPK, utcnow


class ProductionWatch(Base):
    """One production period's monitoring: created at its first check, locked (with the
    model) by every check, so that two server processes never both take a look or both
    raise ``production.degraded``."""

    __tablename__ = "production_monitoring"
    __table_args__ = (UniqueConstraint("period_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("registered_models.id", ondelete="CASCADE")
    )
    period_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("production_history.id"))
    version: Mapped[int] = mapped_column(Integer)
    baseline_version: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    looks: Mapped[int] = mapped_column(Integer, default=0)
    last_checked_at: Mapped[datetime | None] = mapped_column()
    last_look: Mapped[dict[str, Any] | None] = mapped_column()
    degraded_at: Mapped[datetime | None] = mapped_column()
    degraded_reason: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str | None] = mapped_column(String(24))
    action_detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
