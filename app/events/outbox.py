"""Publishing an audit event to the outbox: one outbox row, and one delivery row per
active webhook that subscribes to it, in the change's own transaction (chosen in SQL:
the write does not read the webhooks first).

:func:`publish` is called by name from :func:`app.audit.service.record` for every event
whose :class:`~app.audit.actions.AuditAction` has an event type (:func:`row_of`); on
PostgreSQL the event's own ``INSERT`` writes the outbox row and deliveries
(:func:`publishing`), elsewhere :func:`publish` writes them. So an event (and its
deliveries) exists exactly when the change committed, and the dispatcher only ever has
to look at the delivery table.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.events import repository
from app.events.wakeup import wake_after_commit
from app.observability import metrics
from app.observability.aftercommit import defer


def payload_of(event: AuditEvent) -> dict[str, Any]:
    """What receivers get under ``data``: the audit event's fields and its chain position."""
    return {
        "action": event.action,
        "actor": event.actor,
        "actor_role": event.actor_role,
        "model": event.model,
        "version": event.version,
        "from_stage": event.from_stage,
        "to_stage": event.to_stage,
        "reason": event.reason,
        "request_id": event.request_id,
        "details": event.details,
        "audit": {"stream": event.stream, "seq": event.seq, "hash": event.hash},
    }


def row_of(event: AuditEvent) -> dict[str, Any] | None:
    """``event``'s outbox row, or ``None`` when its action has no webhook event type."""
    event_type = AuditAction(event.action).event_type
    if event_type is None:
        return None
    return {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "model": event.model,
        "version": event.version,
        "occurred_at": event.occurred_at,
        "payload": payload_of(event),
    }


def publish(session: Session, row: dict[str, Any], *, deliveries: int | None) -> None:
    """Publish an event's outbox ``row``: write it, with a pending delivery for each
    active webhook that subscribes to it, unless the statement that appended the event
    already did (``deliveries``: how many it made; PostgreSQL, :func:`publishing`).

    Written now (not at the next flush): the outbox id, which orders deliveries, is
    assigned while this transaction holds the model's audit stream lock, so ids of one
    model follow commit order."""
    if deliveries is None:
        deliveries = repository.publish_event(session, row)
    if deliveries:
        wake_after_commit(session)
    defer(session, metrics.EVENTS.labels(type=row["type"]).inc)


def publishing(statement: Insert) -> Insert:
    """PostgreSQL: ``statement`` (the audit event's ``INSERT``) also writing the outbox
    row and its deliveries, and returning how many deliveries it made; its parameters
    are its own and :func:`params`'s."""
    return repository.publishing(statement)


def params(row: dict[str, Any]) -> dict[str, Any]:
    """The parameters that write ``row`` in a :func:`publishing` statement."""
    return repository.publication_params(row)
