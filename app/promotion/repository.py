"""All SQL of the promotion feature."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload, undefer

from app.promotion.models import (
    GatePolicy,
    ProductionPeriod,
    PromotionApproval,
    PromotionRequest,
    PromotionStatus,
)
from app.registry.models import EvaluationEvidence, ModelVersion, RegisteredModel, Stage


def latest_policy(session: Session, model_id: int) -> GatePolicy | None:
    stmt = (
        select(GatePolicy)
        .where(GatePolicy.model_id == model_id)
        .order_by(GatePolicy.revision.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def add(session: Session, obj: object) -> None:
    session.add(obj)


def production_version(
    session: Session, model_id: int, *, for_update: bool = False
) -> ModelVersion | None:
    stmt = (
        select(ModelVersion)
        .where(ModelVersion.model_id == model_id, ModelVersion.stage == Stage.PRODUCTION.value)
        .options(selectinload(ModelVersion.metrics), selectinload(ModelVersion.evidence))
    )
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return session.scalars(stmt).first()


def evidence_payload(
    session: Session, version_id: int, dataset: str, kind: str
) -> dict[str, Any] | None:
    stmt = (
        select(EvaluationEvidence)
        .where(
            EvaluationEvidence.version_id == version_id,
            EvaluationEvidence.dataset == dataset,
            EvaluationEvidence.kind == kind,
        )
        .options(undefer(EvaluationEvidence.payload))
    )
    row = session.scalars(stmt).first()
    return row.payload if row is not None else None


def request(
    session: Session, request_id: int, *, for_update: bool = False
) -> PromotionRequest | None:
    stmt = select(PromotionRequest).where(PromotionRequest.id == request_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return session.scalars(stmt).first()


def pending_for_version(session: Session, version_id: int) -> Sequence[PromotionRequest]:
    stmt = select(PromotionRequest).where(
        PromotionRequest.version_id == version_id,
        PromotionRequest.status == PromotionStatus.PENDING_APPROVAL.value,
    )
    return session.scalars(stmt.with_for_update()).all()


def approvals(session: Session, request_ids: Sequence[int]) -> dict[int, list[PromotionApproval]]:
    if not request_ids:
        return {}
    stmt = (
        select(PromotionApproval)
        .where(PromotionApproval.request_id.in_(request_ids))
        .order_by(PromotionApproval.id)
    )
    found: dict[int, list[PromotionApproval]] = {rid: [] for rid in request_ids}
    for approval in session.scalars(stmt):
        found[approval.request_id].append(approval)
    return found


def page_requests(
    session: Session,
    *,
    status: str | None,
    model_id: int | None,
    model_scope_id: int | None,
    after_id: int | None,
    limit: int,
) -> Sequence[tuple[PromotionRequest, str]]:
    stmt = select(PromotionRequest, RegisteredModel.name).join(
        RegisteredModel, RegisteredModel.id == PromotionRequest.model_id
    )
    if status is not None:
        stmt = stmt.where(PromotionRequest.status == status)
    if model_id is not None:
        stmt = stmt.where(PromotionRequest.model_id == model_id)
    if model_scope_id is not None:
        stmt = stmt.where(PromotionRequest.model_id == model_scope_id)
    if after_id is not None:
        stmt = stmt.where(PromotionRequest.id > after_id)
    rows = session.execute(stmt.order_by(PromotionRequest.id).limit(limit)).all()
    return [(row[0], row[1]) for row in rows]


def model_name_of(session: Session, model_id: int) -> str:
    return str(
        session.execute(
            select(RegisteredModel.name).where(RegisteredModel.id == model_id)
        ).scalar_one()
    )


def open_period(session: Session, model_id: int) -> ProductionPeriod | None:
    stmt = (
        select(ProductionPeriod)
        .where(ProductionPeriod.model_id == model_id, ProductionPeriod.ended_at.is_(None))
        .order_by(ProductionPeriod.id.desc())
        .with_for_update()
    )
    return session.scalars(stmt).first()


def periods(
    session: Session, model_id: int, *, before_id: int | None, limit: int
) -> Sequence[ProductionPeriod]:
    stmt = select(ProductionPeriod).where(ProductionPeriod.model_id == model_id)
    if before_id is not None:
        stmt = stmt.where(ProductionPeriod.id < before_id)
    return session.scalars(stmt.order_by(ProductionPeriod.id.desc()).limit(limit)).all()


def count_policies(session: Session, model_id: int) -> int:
    stmt = select(func.count()).select_from(GatePolicy).where(GatePolicy.model_id == model_id)
    return int(session.execute(stmt).scalar_one())
