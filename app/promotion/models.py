"""Tables of the promotion feature: policies, requests, approvals, the production timeline."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, BigIntPK, StrEnumText, utcnow
from app.registry.models import Stage


class PromotionStatus(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    APPLIED = "applied"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"


class GatePolicy(Base):
    """One revision of a model's gate policy; the highest revision is in force."""

    __tablename__ = "gate_policies"
    __table_args__ = (UniqueConstraint("model_id", "revision"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("registered_models.id"))
    revision: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column()
    digest: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PromotionRequest(Base):
    __tablename__ = "promotion_requests"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending_approval', 'approved', 'rejected', 'applied', 'cancelled',"
            " 'superseded')",
            name="status",
        ),
        Index("ix_promotion_requests_status_id", "status", "id"),
        Index("ix_promotion_requests_model_id_status", "model_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("registered_models.id"))
    version_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("model_versions.id"))
    version: Mapped[int] = mapped_column(Integer)
    from_stage: Mapped[Stage] = mapped_column(StrEnumText(Stage, 16))
    target_stage: Mapped[Stage] = mapped_column(StrEnumText(Stage, 16))
    status: Mapped[PromotionStatus] = mapped_column(StrEnumText(PromotionStatus, 24))
    requested_by: Mapped[str] = mapped_column(String(256))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    comment: Mapped[str | None] = mapped_column(Text)
    policy_revision: Mapped[int] = mapped_column(Integer)
    approvals_required: Mapped[int] = mapped_column(Integer)
    auto_apply: Mapped[bool] = mapped_column(default=False)
    # The production version the gates were evaluated against: if production has moved
    # on by the time the request is applied, the gates run again.
    evaluated_against: Mapped[int | None] = mapped_column(Integer)
    report: Mapped[dict[str, Any]] = mapped_column()
    report_digest: Mapped[str] = mapped_column(String(64))
    decided_by: Mapped[str | None] = mapped_column(String(256))
    decided_at: Mapped[datetime | None] = mapped_column()
    decision_comment: Mapped[str | None] = mapped_column(Text)
    applied_at: Mapped[datetime | None] = mapped_column()


class PromotionApproval(Base):
    __tablename__ = "promotion_approvals"
    __table_args__ = (UniqueConstraint("request_id", "reviewer"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("promotion_requests.id", ondelete="CASCADE")
    )
    reviewer: Mapped[str] = mapped_column(String(256))
    reviewer_role: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProductionPeriod(Base):
    """One entry of the production timeline: a version serving from ``started_at`` until
    ``ended_at`` (open while it serves), and how it got there."""

    __tablename__ = "production_history"
    __table_args__ = (
        CheckConstraint("via IN ('promotion', 'rollback', 'rollout')", name="via"),
        Index("ix_production_history_model_id_id", "model_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("registered_models.id"))
    version: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    via: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str | None] = mapped_column(Text)
    promotion_id: Mapped[int | None] = mapped_column(BigInteger)
    replaced_version: Mapped[int | None] = mapped_column(Integer)
    ended_by: Mapped[str | None] = mapped_column(String(16))
