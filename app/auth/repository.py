"""All SQL of API tokens."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import ApiToken


def by_hash(session: Session, secret_hash: str) -> ApiToken | None:
    return session.scalars(select(ApiToken).where(ApiToken.secret_hash == secret_hash)).first()


def by_id(session: Session, token_id: str, *, for_update: bool = False) -> ApiToken | None:
    stmt = select(ApiToken).where(ApiToken.id == token_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def add(session: Session, token: ApiToken) -> None:
    session.add(token)


def page(session: Session, *, after_id: str | None, limit: int) -> Sequence[ApiToken]:
    stmt = select(ApiToken)
    if after_id is not None:
        stmt = stmt.where(ApiToken.id > after_id)
    return session.scalars(stmt.order_by(ApiToken.id).limit(limit)).all()


def any_active_admin(session: Session) -> bool:
    stmt = select(ApiToken.id).where(ApiToken.role == "admin", ApiToken.revoked_at.is_(None))
    return session.execute(stmt.limit(1)).first() is not None
