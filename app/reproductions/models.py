"""The ``reproductions`` table: what a re-run of a version's training produced."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, BigIntPK, utcnow


class Reproduction(Base):
    """A re-run of one version's training: its artifact digest and metrics. Immutable."""

    __tablename__ = "reproductions"
    __table_args__ = (Index("ix_reproductions_version_id_id", "version_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("registered_models.id", ondelete="RESTRICT")
    )
    version_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("model_versions.id", ondelete="RESTRICT")
    )
    artifact_sha256: Mapped[str | None] = mapped_column(String(64))
    metrics: Mapped[list[Any]] = mapped_column()
    """``[{"name", "dataset", "slice", "value"}]``, as the re-run measured them."""
    lineage_fingerprint: Mapped[str | None] = mapped_column(String(64))
    """The re-run's own fingerprint, when it stated its lineage (then equal to the version's)."""
    run_url: Mapped[str | None] = mapped_column(String(2048))
    comment: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
