"""Webhook subscriptions, the delivery log, and manual redelivery (admins)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app import pagination
from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.roles import Principal
from app.db.base import utcnow
from app.errors import (
    SecretKeyMissing,
    StateMismatch,
    ValidationFailed,
    WebhookDeliveryNotFound,
    WebhookNotFound,
)
from app.events import repository
from app.events.models import OPEN_STATUSES, DeliveryStatus, Webhook, WebhookDelivery
from app.events.schemas import DeliveryRead, WebhookCreate, WebhookRead
from app.events.secretbox import SecretBox
from app.events.urls import ResolvesToRefused, UrlPolicy, UrlRefused, check_url
from app.events.wakeup import wake_after_commit
from app.registry.schemas import Page
from app.settings import Settings


def url_policy(settings: Settings) -> UrlPolicy:
    return UrlPolicy(
        allow_private_networks=settings.webhook_allow_private_networks,
        allow_link_local=settings.webhook_allow_link_local,
    )


def _get(session: Session, webhook_id: int, *, deleted: bool = False) -> Webhook:
    """The webhook; a deleted one is gone (404) unless ``deleted`` (DELETE again, which
    changes nothing): after a DELETE, nothing under its path answers (decision 0025)."""
    hook = repository.webhook(session, webhook_id)
    if hook is None:
        raise WebhookNotFound(f"no webhook with id {webhook_id}")
    if hook.deleted_at is not None and not deleted:
        raise WebhookNotFound(f"webhook {webhook_id} was deleted")
    return hook


def create_webhook(
    session: Session, *, actor: Principal, settings: Settings, data: WebhookCreate
) -> WebhookRead:
    try:
        check_url(data.url, url_policy(settings))
    except ResolvesToRefused as exc:
        # what the name resolves to is DNS's state, not the request's shape (decision 0025)
        raise StateMismatch(
            f"webhook URL refused: {exc}",
            errors=[{"loc": ["body", "url"], "msg": str(exc), "type": "url_refused"}],
        ) from None
    except UrlRefused as exc:
        raise ValidationFailed(
            f"webhook URL refused: {exc}",
            errors=[{"loc": ["body", "url"], "msg": str(exc), "type": "url_refused"}],
        ) from None
    box = settings.secret_box
    if box is None:
        raise SecretKeyMissing(
            "webhooks need MODELGATE_SECRET_KEY (32 random bytes, base64) to keep their "
            "secrets encrypted; the server has none configured"
        )
    hook = Webhook(
        url=data.url,
        event_types=list(data.event_types),
        model=data.model,
        secret_sealed=box.seal(data.secret),
        description=data.description,
        active=data.active,
        created_by=actor.name,
        created_at=utcnow(),
    )
    repository.add(session, hook)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.WEBHOOK_CREATED,
        details={
            "webhook_id": hook.id,
            "url": hook.url,
            "event_types": hook.event_types,
            "model": hook.model,
            "active": hook.active,
        },
    )
    return WebhookRead.model_validate(hook)


def get_webhook(session: Session, webhook_id: int) -> WebhookRead:
    return WebhookRead.model_validate(_get(session, webhook_id))


def list_webhooks(
    session: Session, *, cursor: str | None, limit: int, include_deleted: bool
) -> Page[WebhookRead]:
    rows = repository.page_webhooks(
        session,
        after_id=pagination.after(cursor, int),
        limit=limit + 1,
        include_deleted=include_deleted,
    )
    page, next_cursor = pagination.split_page(rows, limit, lambda w: [w.id])
    return Page[WebhookRead](
        items=[WebhookRead.model_validate(w) for w in page], next_cursor=next_cursor
    )


def delete_webhook(session: Session, *, actor: Principal, webhook_id: int) -> WebhookRead:
    """Deactivate for good: no new deliveries, open ones cancelled, the rows kept (the
    database and the audit log hold them) but gone from the API (404 under its path; the
    list shows it with ``include_deleted``). Deleting a deleted webhook changes nothing."""
    hook = _get(session, webhook_id, deleted=True)
    if hook.deleted_at is None:
        hook.active = False
        hook.deleted_at = utcnow()
        hook.deleted_by = actor.name
        cancelled = repository.cancel_open_deliveries(
            session, hook.id, reason=f"webhook deleted by {actor.name}"
        )
        audit.record(
            session,
            actor=actor,
            action=AuditAction.WEBHOOK_DELETED,
            details={"webhook_id": hook.id, "url": hook.url, "cancelled_deliveries": cancelled},
        )
    return WebhookRead.model_validate(hook)


def to_delivery_read(row: WebhookDelivery, model: str | None = None) -> DeliveryRead:
    read = DeliveryRead.model_validate(row)
    read.model = model if model is not None else (row.ordering_key or None)
    if row.status not in OPEN_STATUSES:
        read.next_attempt_at = None
    return read


def list_deliveries(
    session: Session,
    *,
    webhook_id: int,
    status: DeliveryStatus | None,
    cursor: str | None,
    limit: int,
) -> Page[DeliveryRead]:
    """The delivery log of one webhook, newest first."""
    _get(session, webhook_id)
    rows = repository.page_deliveries(
        session,
        webhook_id=webhook_id,
        status=status.value if status else None,
        before_id=pagination.after(cursor, int),
        limit=limit + 1,
    )
    page, next_cursor = pagination.split_page(rows, limit, lambda d: [d.id])
    return Page[DeliveryRead](items=[to_delivery_read(d) for d in page], next_cursor=next_cursor)


def redeliver(
    session: Session, *, actor: Principal, webhook_id: int, delivery_id: int
) -> DeliveryRead:
    """Queue the delivery's event again, as a new delivery with the same event id (so a
    receiver that already has it can drop it). Works whatever the original's status."""
    hook = _get(session, webhook_id)
    original = repository.delivery(session, webhook_id, delivery_id)
    if original is None:
        raise WebhookDeliveryNotFound(f"webhook {webhook_id} has no delivery {delivery_id}")
    now = utcnow()
    again = WebhookDelivery(
        webhook_id=hook.id,
        outbox_id=original.outbox_id,
        event_id=original.event_id,
        event_type=original.event_type,
        ordering_key=original.ordering_key,
        status=DeliveryStatus.PENDING.value,
        attempts=0,
        next_attempt_at=now,
        redelivery_of=original.id,
        created_at=now,
    )
    repository.add(session, again)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.WEBHOOK_REDELIVERY_REQUESTED,
        details={
            "webhook_id": hook.id,
            "delivery_id": again.id,
            "redelivery_of": original.id,
            "event_id": original.event_id,
        },
    )
    wake_after_commit(session)
    return to_delivery_read(again)


def rekey_secrets(session: Session, *, box: SecretBox) -> int:
    """Seal every webhook secret not yet under the current key again under it (opening it
    with a previous key); returns how many changed. A secret that no key opens stops the
    whole run (nothing changes) with the reason."""
    changed = 0
    for hook in repository.all_webhooks_for_update(session):
        if box.sealed_under_current(hook.secret_sealed):
            continue
        hook.secret_sealed = box.seal(box.open(hook.secret_sealed))
        changed += 1
    return changed
