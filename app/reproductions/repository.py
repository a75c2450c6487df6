"""SQL for reproductions."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.reproductions.models import Reproduction


def add(session: Session, row: Reproduction) -> None:
    session.add(row)
    session.flush()


def newest(
    session: Session, version_id: int, *, before_id: int | None, limit: int
) -> Sequence[Reproduction]:
    """A version's reproductions, newest first, after a keyset cursor."""
    stmt = select(Reproduction).where(Reproduction.version_id == version_id)
    if before_id is not None:
        stmt = stmt.where(Reproduction.id < before_id)
    return session.scalars(stmt.order_by(Reproduction.id.desc()).limit(limit)).all()
