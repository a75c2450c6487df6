"""All SQL of principals and API tokens."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.auth.models import ApiToken, PrincipalRecord
from app.db.dialect import insert_ignore


def by_hash(session: Session, secret_hash: str) -> tuple[ApiToken, PrincipalRecord] | None:
    stmt = (
        select(ApiToken, PrincipalRecord)
        .join(PrincipalRecord, PrincipalRecord.id == ApiToken.principal_id)
        .where(ApiToken.secret_hash == secret_hash)
    )
    row = session.execute(stmt).first()
    return (row[0], row[1]) if row is not None else None


def by_id(session: Session, token_id: str, *, for_update: bool = False) -> ApiToken | None:
    stmt = select(ApiToken).where(ApiToken.id == token_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def add(session: Session, token: ApiToken) -> None:
    session.add(token)


def page(
    session: Session, *, after_id: str | None, limit: int
) -> Sequence[tuple[ApiToken, PrincipalRecord]]:
    stmt = select(ApiToken, PrincipalRecord).join(
        PrincipalRecord, PrincipalRecord.id == ApiToken.principal_id
    )
    if after_id is not None:
        stmt = stmt.where(ApiToken.id > after_id)
    rows = session.execute(stmt.order_by(ApiToken.id).limit(limit)).all()
    return [(t, p) for t, p in rows]


def _active(now: datetime) -> Any:
    return (ApiToken.revoked_at.is_(None)) & (
        or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now)
    )


def any_active_admin(session: Session, *, now: datetime) -> bool:
    stmt = select(ApiToken.id).where(ApiToken.role == "admin", _active(now))
    return session.execute(stmt.limit(1)).first() is not None


def lock_active_admin_tokens(session: Session, *, now: datetime) -> Sequence[ApiToken]:
    """Every active admin token, row-locked in id order (one order for every caller, so
    two revocations wait for each other instead of deadlocking or both passing)."""
    stmt = (
        select(ApiToken)
        .where(ApiToken.role == "admin", _active(now))
        .order_by(ApiToken.id)
        .with_for_update()
    )
    return session.scalars(stmt).all()


def principal_by_name(session: Session, name: str) -> PrincipalRecord | None:
    stmt = select(PrincipalRecord).where(PrincipalRecord.name == name)
    return session.scalars(stmt).one_or_none()


def principal_by_id(session: Session, principal_id: int) -> PrincipalRecord:
    return session.get_one(PrincipalRecord, principal_id)


def insert_principal_if_absent(
    session: Session, *, name: str, kind: str, created_by: str, created_at: datetime
) -> None:
    """Two requests naming the same new principal at once: one inserts it, neither fails."""
    table = PrincipalRecord.__table__
    insert_ignore(
        session,
        table,  # type: ignore[arg-type]
        {"name": name, "kind": kind, "created_by": created_by, "created_at": created_at},
    )


def principals_page(
    session: Session, *, after_name: str | None, limit: int
) -> Sequence[PrincipalRecord]:
    stmt = select(PrincipalRecord)
    if after_name is not None:
        stmt = stmt.where(PrincipalRecord.name > after_name)
    return session.scalars(stmt.order_by(PrincipalRecord.name).limit(limit)).all()


def active_roles(
    session: Session, principal_ids: Sequence[int], *, now: datetime
) -> dict[int, list[str]]:
    """The roles each principal holds through active tokens, with how many tokens."""
    if not principal_ids:
        return {}
    stmt = (
        select(ApiToken.principal_id, ApiToken.role, func.count())
        .where(ApiToken.principal_id.in_(principal_ids), _active(now))
        .group_by(ApiToken.principal_id, ApiToken.role)
    )
    found: dict[int, list[str]] = {}
    for principal_id, role, _count in session.execute(stmt):
        found.setdefault(principal_id, []).append(role)
    return {k: sorted(v) for k, v in found.items()}
