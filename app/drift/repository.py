"""All SQL of drift monitoring."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from app.drift.models import DriftReport, DriftSettings, ReferenceProfile


def add(session: Session, obj: Any) -> None:
    session.add(obj)


def profile_for_version(
    session: Session, version_id: int, *, with_profile: bool = False
) -> ReferenceProfile | None:
    stmt = select(ReferenceProfile).where(ReferenceProfile.version_id == version_id)
    if with_profile:
        stmt = stmt.options(undefer(ReferenceProfile.profile))
    return session.scalars(stmt).first()


def profile_for(
    session: Session, model_id: int, version: int, *, with_profile: bool = False
) -> ReferenceProfile | None:
    stmt = select(ReferenceProfile).where(
        ReferenceProfile.model_id == model_id, ReferenceProfile.version == version
    )
    if with_profile:
        stmt = stmt.options(undefer(ReferenceProfile.profile))
    return session.scalars(stmt).first()


def settings_for(session: Session, model_id: int) -> DriftSettings | None:
    return session.get(DriftSettings, model_id)


def report(session: Session, model_id: int, report_id: int) -> DriftReport | None:
    stmt = select(DriftReport).where(DriftReport.id == report_id, DriftReport.model_id == model_id)
    return session.scalars(stmt).first()


def page_reports(
    session: Session,
    *,
    model_id: int,
    before_id: int | None,
    drifted: bool | None,
    limit: int,
) -> Sequence[DriftReport]:
    stmt = select(DriftReport).where(DriftReport.model_id == model_id)
    if before_id is not None:
        stmt = stmt.where(DriftReport.id < before_id)
    if drifted is not None:
        stmt = stmt.where(DriftReport.drifted.is_(drifted))
    return session.scalars(stmt.order_by(DriftReport.id.desc()).limit(limit)).all()
