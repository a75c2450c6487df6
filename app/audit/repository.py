"""All SQL of the audit log."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, SessionTransaction

from app.audit.hashing import GENESIS_HASH
from app.audit.models import AuditEvent, AuditStream
from app.db.dialect import insert_ignore

# Heads this session has locked, by stream, with the transaction (or savepoint) that
# locked them: in any other one they are locked again.
_HELD_HEADS = "modelgate.audit.held_heads"


def _held(session: Session) -> dict[str, AuditStream]:
    transaction: SessionTransaction | None = (
        session.get_nested_transaction() or session.get_transaction()
    )
    cached: tuple[SessionTransaction | None, dict[str, AuditStream]] | None = session.info.get(
        _HELD_HEADS
    )
    if cached is not None and cached[0] is transaction:
        return cached[1]
    held: dict[str, AuditStream] = {}
    session.info[_HELD_HEADS] = (transaction, held)
    return held


def lock_stream_head(session: Session, stream: str) -> AuditStream:
    """Lock (creating it if new) the head row of one chain until the transaction ends.

    A head already locked by the current transaction is returned as it is: a promotion
    appends three to five events to its model's chain, and locking again would cost a
    round trip each time for a lock that is already held.
    """
    session.connection()  # begin the transaction the lock will belong to, if not yet begun
    held = _held(session)
    head = held.get(stream)
    if head is not None:
        return head
    stmt = select(AuditStream).where(AuditStream.stream == stream).with_for_update()
    head = session.scalars(stmt).one_or_none()
    if head is None:
        insert_ignore(
            session,
            AuditStream.__table__,  # type: ignore[arg-type]
            {"stream": stream, "seq": 0, "head_hash": GENESIS_HASH},
        )
        head = session.scalars(stmt.execution_options(populate_existing=True)).one()
    held[stream] = head
    return head


def add_event(session: Session, fields: dict[str, Any]) -> None:
    """Insert one event row now, on the session's connection and transaction.

    A Core insert rather than ``session.add``: events are written and never read back in
    the transaction that writes them, and the ORM's flush (identity map, dependency sort)
    was a third of a version creation's database CPU.
    """
    session.connection().execute(_INSERT_EVENT, fields)


_INSERT_EVENT = insert(AuditEvent.__table__)  # type: ignore[arg-type]


def query_events(
    session: Session,
    *,
    model: str | None,
    actor: str | None,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
    after_id: int | None,
    limit: int,
) -> Sequence[AuditEvent]:
    stmt = select(AuditEvent)
    if model is not None:
        stmt = stmt.where(AuditEvent.model == model)
    if actor is not None:
        stmt = stmt.where(AuditEvent.actor == actor)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    if since is not None:
        stmt = stmt.where(AuditEvent.occurred_at >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.occurred_at < until)
    if after_id is not None:
        stmt = stmt.where(AuditEvent.id > after_id)
    return session.scalars(stmt.order_by(AuditEvent.id).limit(limit)).all()


def iter_chain_order(session: Session, batch: int = 2000) -> Iterator[AuditEvent]:
    stmt = (
        select(AuditEvent)
        .order_by(AuditEvent.stream, AuditEvent.seq)
        .execution_options(yield_per=batch)
    )
    yield from session.scalars(stmt)


def stream_heads(session: Session) -> dict[str, tuple[int, str]]:
    rows = session.execute(select(AuditStream.stream, AuditStream.seq, AuditStream.head_hash))
    return {stream: (seq, head) for stream, seq, head in rows}


def iter_events(
    session: Session,
    *,
    model: str | None,
    since: datetime | None,
    until: datetime | None,
    batch: int = 2000,
) -> Iterator[AuditEvent]:
    stmt = select(AuditEvent)
    if model is not None:
        stmt = stmt.where(AuditEvent.model == model)
    if since is not None:
        stmt = stmt.where(AuditEvent.occurred_at >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.occurred_at < until)
    yield from session.scalars(stmt.order_by(AuditEvent.id).execution_options(yield_per=batch))


def model_names(session: Session) -> list[str]:
    # Imported here: the audit package must not depend on the registry at import time.
    from app.registry.models import RegisteredModel

    return list(session.scalars(select(RegisteredModel.name)))


def stage_moves_until(
    session: Session, *, model: str, actions: Sequence[str], until: datetime
) -> list[tuple[int, str]]:
    """``(version, to_stage)`` of the model's stage-change events up to ``until``
    (inclusive), oldest first."""
    stmt = (
        select(AuditEvent.version, AuditEvent.to_stage)
        .where(
            AuditEvent.model == model,
            AuditEvent.action.in_(list(actions)),
            AuditEvent.occurred_at <= until,
            AuditEvent.version.is_not(None),
            AuditEvent.to_stage.is_not(None),
        )
        .order_by(AuditEvent.id)
    )
    return [(int(v or 0), str(s)) for v, s in session.execute(stmt)]
