"""Publishing an audit event to the outbox: one outbox row, and one delivery row per
active webhook that subscribes to it, in the change's own transaction.

:func:`publish` is called by name from :func:`app.audit.service.record` for every event
whose :class:`~app.audit.actions.AuditAction` has an event type. So an event (and its
deliveries) exists exactly when the change committed, and the dispatcher only ever has
to look at the delivery table.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session, SessionTransaction

from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.events import repository
from app.events.models import DeliveryStatus, Webhook
from app.events.types import matches
from app.events.wakeup import wake_after_commit
from app.observability import metrics
from app.observability.aftercommit import defer

_WEBHOOKS_KEY = "modelgate_active_webhooks"


def _active_webhooks(session: Session) -> list[Webhook]:
    """Active webhooks, read once per transaction (a request can record several events;
    the cached list is kept with the transaction it was read in and read again in another)."""
    transaction: SessionTransaction | None = session.get_transaction()
    cached = session.info.get(_WEBHOOKS_KEY)
    if cached is not None and cached[0] is transaction:
        return list(cached[1])
    hooks = list(repository.active_webhooks(session))
    session.info[_WEBHOOKS_KEY] = (transaction, hooks)
    return hooks


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


def publish(session: Session, event: AuditEvent) -> None:
    """Write ``event`` to the outbox if its action has a webhook event type."""
    event_type = AuditAction(event.action).event_type
    if event_type is None:
        return
    hooks = [
        hook
        for hook in _active_webhooks(session)
        if matches(list(hook.event_types), event_type)
        and (hook.model is None or hook.model == event.model)
    ]
    # Written with Core inserts, now (not at the next flush): the id, which orders
    # deliveries, is assigned while this transaction holds the model's audit stream
    # lock, so ids of one model follow commit order.
    event_id = str(uuid.uuid4())
    outbox_id = repository.insert_outbox(
        session,
        {
            "event_id": event_id,
            "type": event_type,
            "model": event.model,
            "version": event.version,
            "occurred_at": event.occurred_at,
            "payload": payload_of(event),
        },
        returning_id=bool(hooks),
    )
    if hooks:
        assert outbox_id is not None
        repository.insert_deliveries(
            session,
            [
                {
                    "webhook_id": hook.id,
                    "outbox_id": outbox_id,
                    "event_id": event_id,
                    "event_type": event_type,
                    "ordering_key": event.model or "",
                    "status": DeliveryStatus.PENDING.value,
                    "attempts": 0,
                    "next_attempt_at": event.occurred_at,
                    "created_at": event.occurred_at,
                }
                for hook in hooks
            ],
        )
        wake_after_commit(session)
    defer(session, metrics.EVENTS.labels(type=event_type).inc)
