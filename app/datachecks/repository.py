"""SQL for data checks."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.datachecks.models import DataCheck


def add(session: Session, row: DataCheck) -> None:
    session.add(row)
    session.flush()


def newest(
    session: Session,
    version_id: int,
    *,
    dataset: str | None,
    before_id: int | None,
    limit: int,
) -> Sequence[DataCheck]:
    """A version's data checks (of one dataset, when given), newest first."""
    stmt = select(DataCheck).where(DataCheck.version_id == version_id)
    if dataset is not None:
        stmt = stmt.where(DataCheck.dataset == dataset)
    if before_id is not None:
        stmt = stmt.where(DataCheck.id < before_id)
    return session.scalars(stmt.order_by(DataCheck.id.desc()).limit(limit)).all()
