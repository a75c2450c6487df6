"""All SQL of the audit log."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session, SessionTransaction

from app.audit.hashing import GENESIS_HASH
from app.audit.models import AuditEvent, AuditStream
from app.db.dialect import insert_ignore, insert_with_own_params, is_postgres, own_params
from app.events import outbox


@dataclass(slots=True)
class StreamHead:
    """The head of one chain as this transaction holds it (locked): the last sequence
    number and hash appended to it."""

    stream: str
    seq: int
    head_hash: str


# Heads this session has locked, by stream, with the transaction (or savepoint) that
# locked them: in any other one they are locked again.
_HELD_HEADS = "modelgate.audit.held_heads"


def _held(session: Session) -> dict[str, StreamHead]:
    transaction: SessionTransaction | None = (
        session.get_nested_transaction() or session.get_transaction()
    )
    cached: tuple[SessionTransaction | None, dict[str, StreamHead]] | None = session.info.get(
        _HELD_HEADS
    )
    if cached is not None and cached[0] is transaction:
        return cached[1]
    held: dict[str, StreamHead] = {}
    session.info[_HELD_HEADS] = (transaction, held)
    return held


def lock_stream_head(session: Session, stream: str) -> StreamHead:
    """Lock (creating it if new) the head row of one chain until the transaction ends.

    A head already locked by the current transaction is returned as it is: a promotion
    appends three to five events to its model's chain, and locking again would cost a
    round trip each time for a lock that is already held.
    """
    connection = session.connection()  # begins the transaction the lock belongs to
    held = _held(session)
    head = held.get(stream)
    if head is not None:
        return head
    row = connection.execute(_LOCK_HEAD, {"stream": stream}).first()
    if row is None:
        insert_ignore(
            session,
            AuditStream.__table__,  # type: ignore[arg-type]
            {"stream": stream, "seq": 0, "head_hash": GENESIS_HASH},
        )
        row = connection.execute(_LOCK_HEAD, {"stream": stream}).one()
    head = StreamHead(stream, row.seq, row.head_hash)
    held[stream] = head
    return head


def append_event(
    session: Session, head: StreamHead, fields: dict[str, Any],
    publication: dict[str, Any] | None = None,
) -> int | None:  # fmt: skip
    """Insert one event row (its ``seq`` and ``hash`` the head's next) and move the locked
    head to it, now, on the session's transaction: one statement on PostgreSQL (the head's
    ``UPDATE`` as a CTE of the event's ``INSERT``), two on SQLite.

    On PostgreSQL the same statement also writes the event's outbox row and its
    deliveries when there is a ``publication`` (:func:`app.events.outbox.row_of`), and
    the number of deliveries is returned; ``None`` when the outbox row is not written
    here (there is none, or SQLite: :func:`app.events.outbox.publish` writes it).

    Core rather than the ORM: events are written and never read back in the transaction
    that writes them, and the ORM's flush (identity map, dependency sort) was a third of
    a version creation's database CPU.
    """
    connection = session.connection()
    moved = {"h_stream": head.stream, "h_seq": fields["seq"], "h_hash": fields["hash"]}
    deliveries: int | None = None
    if is_postgres(session):
        params = {**own_params("e_", fields), **moved}
        if publication is None:
            connection.execute(_APPEND_PG, params)
        else:
            params |= outbox.params(publication)
            deliveries = connection.execute(_APPEND_AND_PUBLISH_PG, params).scalar_one()
    else:
        connection.execute(_INSERT_EVENT, fields)
        connection.execute(_MOVE_HEAD, moved)
    head.seq = fields["seq"]
    head.head_hash = fields["hash"]
    return deliveries


_STREAMS = AuditStream.__table__
_LOCK_HEAD = (
    select(_STREAMS.c.seq, _STREAMS.c.head_hash)
    .where(_STREAMS.c.stream == bindparam("stream"))
    .with_for_update()
)
_EVENTS = AuditEvent.__table__
_INSERT_EVENT = insert(_EVENTS)  # type: ignore[arg-type]
_MOVE_HEAD = (
    update(_STREAMS)  # type: ignore[arg-type]
    .where(_STREAMS.c.stream == bindparam("h_stream"))
    .values(seq=bindparam("h_seq"), head_hash=bindparam("h_hash"))
)
_APPEND_PG = insert_with_own_params(_EVENTS, "e_").add_cte(  # type: ignore[arg-type]
    _MOVE_HEAD.cte("moved_head")
)
_APPEND_AND_PUBLISH_PG = outbox.publishing(_APPEND_PG)


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
