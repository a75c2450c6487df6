"""All SQL of console sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.console.models import ConsoleSession


def add(session: Session, row: ConsoleSession) -> None:
    session.add(row)


def by_hash(session: Session, id_hash: str) -> ConsoleSession | None:
    return session.scalars(
        select(ConsoleSession).where(ConsoleSession.id_hash == id_hash)
    ).one_or_none()


def revoke_for_token(session: Session, token_id: str, at: datetime) -> None:
    session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.token_id == token_id, ConsoleSession.revoked_at.is_(None))
        .values(revoked_at=at)
    )
