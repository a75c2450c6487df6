"""Append events to the hash chain, and check the chain end to end.

Events are written through :func:`record` in the caller's transaction, so an event
exists exactly when the change it describes was committed. :func:`record` is the one
place an event is hashed, and it publishes every event by name: to the outbox when its
action has a webhook event type (:func:`app.events.outbox.publish`) and to the
Prometheus counters it feeds (:func:`app.observability.audit_metrics.count`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.audit import repository
from app.audit.actions import AuditAction
from app.audit.hashing import GENESIS_HASH, HASHED_FIELDS, event_hash
from app.audit.models import AuditEvent
from app.audit.schemas import AuditVerification, ChainProblem
from app.auth.roles import Principal
from app.context import current_request_id
from app.db.base import utcnow
from app.events import outbox
from app.observability import audit_metrics

GLOBAL_STREAM = "global"
MAX_REPORTED_PROBLEMS = 100


def stream_for(model: str | None) -> str:
    return GLOBAL_STREAM if model is None else f"model:{model}"


def record(
    session: Session,
    *,
    actor: Principal,
    action: AuditAction,
    model: str | None = None,
    version: int | None = None,
    from_stage: str | None = None,
    to_stage: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Append one event to the model's chain (or the global one) in the current
    transaction, and publish it (outbox, metrics).

    ``at`` is the time of the change when the caller took it (a pointer move stamps its
    stage, its production period and its event with one time, so that "what held the
    pointer at T" reads the same from each); default: now."""
    stream = stream_for(model)
    head = repository.lock_stream_head(session, stream)
    fields: dict[str, Any] = {
        "stream": stream,
        "seq": head.seq + 1,
        "occurred_at": at if at is not None else utcnow(),
        "actor": actor.name,
        "actor_role": actor.role.value,
        "token_id": actor.token_id,
        "action": AuditAction(action).value,
        "model": model,
        "version": version,
        # Plain strings (a Stage member is one, but the chain stores and hashes text).
        "from_stage": None if from_stage is None else str(from_stage),
        "to_stage": None if to_stage is None else str(to_stage),
        "reason": reason,
        "request_id": current_request_id(),
        "details": details or {},
    }
    digest = event_hash(fields, head.head_hash)
    fields["prev_hash"] = head.head_hash
    fields["hash"] = digest
    event = AuditEvent(**fields)  # for the publishers and the caller; not in the session
    publication = outbox.row_of(event)
    deliveries = repository.append_event(session, head, fields, publication)
    if publication is not None:
        outbox.publish(session, publication, deliveries=deliveries)
    audit_metrics.count(session, event)
    return event


def query(
    session: Session,
    *,
    model: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    return list(
        repository.query_events(
            session,
            model=model,
            actor=actor,
            action=action,
            since=since,
            until=until,
            after_id=after_id,
            limit=limit,
        )
    )


def stages_at(session: Session, *, model: str, at: datetime) -> dict[int, str]:
    """The stage each version of ``model`` had reached at ``at``, as the audit log tells
    it (every stage move is recorded, with the time of the move); versions without a
    move by then are absent (they were candidates, or did not exist yet)."""
    found: dict[int, str] = {}
    moves = repository.stage_moves_until(
        session,
        model=model,
        actions=(AuditAction.VERSION_STAGE_CHANGED.value, AuditAction.VERSION_ARCHIVED.value),
        until=at,
    )
    for version, stage in moves:
        found[version] = stage
    return found


def export(
    session: Session,
    *,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Iterator[AuditEvent]:
    return repository.iter_events(session, model=model, since=since, until=until)


def _fields_of(event: AuditEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in HASHED_FIELDS}


def verify(session: Session) -> AuditVerification:
    """Walk every chain in order and report events that were altered, inserted or deleted.

    Within a chain, a gap in ``seq`` is a deleted event, a wrong ``prev_hash`` a broken
    link, and a recomputed hash that differs an altered event. The stream heads catch
    events deleted from, or appended behind, the end of a chain.
    """
    heads = repository.stream_heads(session)
    problems: list[ChainProblem] = []
    checked = 0
    seen_streams: set[str] = set()
    current: str | None = None
    expected_seq = 1
    prev_hash = GENESIS_HASH

    def report(problem: ChainProblem) -> None:
        if len(problems) < MAX_REPORTED_PROBLEMS:
            problems.append(problem)

    def close_stream(stream: str, last_seq: int) -> None:
        head = heads.get(stream)
        if head is None:
            report(
                ChainProblem(
                    stream=stream,
                    seq=last_seq,
                    event_id=None,
                    kind="inserted",
                    detail="events exist for a stream that has no recorded head",
                )
            )
            return
        head_seq, head_hash = head
        if last_seq < head_seq:
            report(
                ChainProblem(
                    stream=stream,
                    seq=last_seq + 1,
                    event_id=None,
                    kind="truncated",
                    detail=f"chain ends at seq {last_seq} but its head records seq {head_seq}",
                )
            )
        elif last_seq > head_seq:
            report(
                ChainProblem(
                    stream=stream,
                    seq=head_seq + 1,
                    event_id=None,
                    kind="inserted",
                    detail=f"events after seq {head_seq}, the last one the head records",
                )
            )
        elif prev_hash != head_hash:
            report(
                ChainProblem(
                    stream=stream,
                    seq=last_seq,
                    event_id=None,
                    kind="altered",
                    detail="the last event's hash differs from the one its head records",
                )
            )

    for event in repository.iter_chain_order(session):
        if event.stream != current:
            if current is not None:
                close_stream(current, expected_seq - 1)
            current = event.stream
            seen_streams.add(current)
            expected_seq = 1
            prev_hash = GENESIS_HASH
        checked += 1
        if event.seq != expected_seq:
            report(
                ChainProblem(
                    stream=event.stream,
                    seq=expected_seq,
                    event_id=None,
                    kind="missing",
                    detail=f"events {expected_seq}..{event.seq - 1} are missing",
                )
            )
        elif event.prev_hash != prev_hash:
            report(
                ChainProblem(
                    stream=event.stream,
                    seq=event.seq,
                    event_id=event.id,
                    kind="broken_link",
                    detail="prev_hash does not match the hash of the event before it",
                )
            )
        recomputed = event_hash(_fields_of(event), event.prev_hash)
        if recomputed != event.hash:
            report(
                ChainProblem(
                    stream=event.stream,
                    seq=event.seq,
                    event_id=event.id,
                    kind="altered",
                    detail="the event's content does not match its hash",
                )
            )
        expected_seq = event.seq + 1
        prev_hash = event.hash
    if current is not None:
        close_stream(current, expected_seq - 1)
    for name in repository.model_names(session):
        stream = stream_for(name)
        if stream not in seen_streams and stream not in heads:
            # Every model starts its chain with model.created; a model with neither
            # events nor a head had its whole chain deleted.
            report(
                ChainProblem(
                    stream=stream,
                    seq=1,
                    event_id=None,
                    kind="missing",
                    detail=f"model {name!r} exists but its audit chain and head are gone",
                )
            )
    for stream, (head_seq, _) in heads.items():
        if stream not in seen_streams and head_seq > 0:
            report(
                ChainProblem(
                    stream=stream,
                    seq=1,
                    event_id=None,
                    kind="truncated",
                    detail=f"no events left, but the head records seq {head_seq}",
                )
            )
    return AuditVerification(
        ok=not problems,
        events_checked=checked,
        streams_checked=len(seen_streams),
        first_problem=problems[0] if problems else None,
        problems=problems,
    )
