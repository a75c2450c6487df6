"""The ``data_checks`` table: one dataset checked against a version's data contract."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, BigIntPK, utcnow


class DataCheck(Base):
    """A stored data-contract report. Immutable; the latest per dataset is what gates read."""

    __tablename__ = "data_checks"
    __table_args__ = (Index("ix_data_checks_version_id_dataset_id", "version_id", "dataset", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("registered_models.id", ondelete="RESTRICT")
    )
    version_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("model_versions.id", ondelete="RESTRICT")
    )
    dataset: Mapped[str] = mapped_column(String(256))
    purpose: Mapped[str] = mapped_column(String(16))
    passed: Mapped[bool] = mapped_column(Boolean)
    rows: Mapped[float] = mapped_column(Float)
    checks: Mapped[list[Any]] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
