"""All SQL of events, webhooks and deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    String,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import BindParameter

from app.db.base import UTCDateTime
from app.db.dialect import is_postgres
from app.events.models import (
    OPEN_STATUSES,
    DeliveryStatus,
    OutboxEvent,
    Webhook,
    WebhookDelivery,
)


def add(session: Session, obj: Any) -> None:
    session.add(obj)


def publish_event(session: Session, row: dict[str, Any]) -> int:
    """Insert one outbox event and a pending delivery for every active webhook that
    subscribes to it, now, on the session's transaction; the number of deliveries.

    The subscribers are chosen in SQL (``INSERT ... SELECT`` from the webhooks), so a
    write that publishes does not read the webhook table first. On PostgreSQL the outbox
    row and its deliveries are one statement (the outbox ``INSERT`` as a CTE), and
    :func:`publishing` joins them to another statement (the audit event's own).

    ``row`` holds the outbox columns (``event_id``, ``type``, ``model``, ``version``,
    ``occurred_at``, ``payload``)."""
    connection = session.connection()
    if is_postgres(session):
        return len(connection.execute(_PUBLISH_PG, publication_params(row)).all())
    outbox_id = connection.execute(_INSERT_OUTBOX_RETURNING, row).scalar_one()
    return connection.execute(
        _FAN_OUT_SQLITE, {**publication_params(row), "outbox_id": outbox_id}
    ).rowcount


def publication_params(row: dict[str, Any]) -> dict[str, Any]:
    """The parameters of the statements that write ``row`` and its deliveries."""
    return {**row, "ordering_key": row["model"] or ""}


def publishing(statement: Insert) -> Insert:
    """PostgreSQL: ``statement`` (an ``INSERT`` whose parameters are not named like the
    outbox's) also writing an outbox row and its deliveries, as CTEs, and returning the
    number of deliveries. Its parameters are its own and :func:`publication_params`'s."""
    deliveries = (
        _fan_out(select(_NEW_OUTBOX.c.id).scalar_subquery(), "postgresql")
        .returning(_DELIVERIES.c.id)
        .cte("new_deliveries")
    )
    counted = select(func.count()).select_from(deliveries).scalar_subquery()
    return statement.add_cte(_NEW_OUTBOX).add_cte(deliveries).returning(counted)


_OUTBOX = OutboxEvent.__table__
_DELIVERIES = WebhookDelivery.__table__
_HOOKS = Webhook.__table__
_INSERT_OUTBOX_RETURNING = insert(_OUTBOX).returning(_OUTBOX.c.id)  # type: ignore[arg-type]


def _subscribed(dialect: str) -> ColumnElement[bool]:
    """An active webhook subscribed to the event type ``:type`` of model ``:model``: its
    model is unset or that one, and its ``event_types`` (a JSON array of names) hold the
    type or ``*``."""
    if dialect == "postgresql":
        types = text("CAST(webhooks.event_types AS JSONB) ?| ARRAY[CAST(:type AS TEXT), '*']")
    else:
        types = text(
            "EXISTS (SELECT 1 FROM json_each(webhooks.event_types)"
            " WHERE json_each.value IN (:type, '*'))"
        )
    return and_(
        _HOOKS.c.active.is_(True),
        or_(_HOOKS.c.model.is_(None), _HOOKS.c.model == bindparam("model")),
        types,
    )


def _fan_out(outbox_id: ColumnElement[Any], dialect: str) -> Any:
    at = bindparam("occurred_at", type_=UTCDateTime())
    chosen = select(
        _HOOKS.c.id,
        outbox_id,
        bindparam("event_id", type_=String()),
        bindparam("type", type_=String()),
        bindparam("ordering_key", type_=String()),
        literal(DeliveryStatus.PENDING.value),
        literal(0),
        at,
        at,
    ).where(_subscribed(dialect))
    columns = ["webhook_id", "outbox_id", "event_id", "event_type", "ordering_key",
               "status", "attempts", "next_attempt_at", "created_at"]  # fmt: skip
    return insert(_DELIVERIES).from_select(columns, chosen)  # type: ignore[arg-type]


_FAN_OUT_SQLITE = _fan_out(bindparam("outbox_id", type_=BigInteger()), "sqlite")
_NEW_OUTBOX = (
    insert(_OUTBOX)  # type: ignore[arg-type]
    .values(
        event_id=bindparam("event_id"),
        type=bindparam("type"),
        model=bindparam("model"),
        version=bindparam("version"),
        occurred_at=bindparam("occurred_at"),
        payload=bindparam("payload"),
    )
    .returning(_OUTBOX.c.id)
    .cte("new_outbox")
)
_PUBLISH_PG = (
    _fan_out(select(_NEW_OUTBOX.c.id).scalar_subquery(), "postgresql")
    .add_cte(_NEW_OUTBOX)
    .returning(_DELIVERIES.c.id)
)


def webhook(session: Session, webhook_id: int) -> Webhook | None:
    return session.get(Webhook, webhook_id)


def page_webhooks(
    session: Session, *, after_id: int | None, limit: int, include_deleted: bool
) -> Sequence[Webhook]:
    stmt = select(Webhook)
    if not include_deleted:
        stmt = stmt.where(Webhook.deleted_at.is_(None))
    if after_id is not None:
        stmt = stmt.where(Webhook.id > after_id)
    return session.scalars(stmt.order_by(Webhook.id).limit(limit)).all()


def delivery(session: Session, webhook_id: int, delivery_id: int) -> WebhookDelivery | None:
    stmt = select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook_id
    )
    return session.scalars(stmt).first()


def page_deliveries(
    session: Session,
    *,
    webhook_id: int,
    status: str | None,
    before_id: int | None,
    limit: int,
) -> Sequence[WebhookDelivery]:
    stmt = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    if before_id is not None:
        stmt = stmt.where(WebhookDelivery.id < before_id)
    return session.scalars(stmt.order_by(WebhookDelivery.id.desc()).limit(limit)).all()


def cancel_open_deliveries(session: Session, webhook_id: int, *, reason: str) -> int:
    stmt = (
        update(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == webhook_id, WebhookDelivery.status.in_(OPEN_STATUSES))
        .values(status=DeliveryStatus.CANCELLED.value, claimed_until=None, last_error=reason)
    )
    return session.execute(stmt, execution_options={"synchronize_session": False}).rowcount  # type: ignore[attr-defined, no-any-return]


def outbox_event(session: Session, outbox_id: int) -> OutboxEvent | None:
    return session.get(OutboxEvent, outbox_id)


# The dispatcher --------------------------------------------------------------------------


def _due_condition(now: datetime | BindParameter[datetime]) -> Any:
    earlier = aliased(WebhookDelivery)
    blocked_by_earlier = exists().where(
        earlier.webhook_id == WebhookDelivery.webhook_id,
        earlier.ordering_key == WebhookDelivery.ordering_key,
        earlier.outbox_id < WebhookDelivery.outbox_id,
        earlier.status.in_(OPEN_STATUSES),
    )
    lease_free = (WebhookDelivery.claimed_until.is_(None)) | (WebhookDelivery.claimed_until < now)
    return and_(
        WebhookDelivery.status.in_(OPEN_STATUSES),
        WebhookDelivery.next_attempt_at <= now,
        lease_free,
        ~blocked_by_earlier,
    )


# The idle dispatcher's two questions, built once (building the due condition cost more
# CPU than the database's answer: an idle registry polls them every few seconds).
_ANY_DUE = (
    select(WebhookDelivery.id)
    .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
    .where(
        _due_condition(bindparam("now", type_=WebhookDelivery.next_attempt_at.type)),
        Webhook.active.is_(True),
    )
    .limit(1)
)
_ANY_OPEN = select(WebhookDelivery.id).where(WebhookDelivery.status.in_(OPEN_STATUSES)).limit(1)


def any_due(session: Session, now: datetime) -> bool:
    """Cheap check, run on a read-only transaction before taking any write lock."""
    return session.execute(_ANY_DUE, {"now": now}).first() is not None


def any_open(session: Session) -> bool:
    """Whether any delivery is still to be made (due now or later)."""
    return session.execute(_ANY_OPEN).first() is not None


def claimable(session: Session, now: datetime, limit: int) -> Sequence[WebhookDelivery]:
    """Due deliveries, each the earliest open one of its webhook and model, locked.

    On PostgreSQL, ``FOR UPDATE SKIP LOCKED``: dispatchers of other processes skip the
    rows this one is claiming instead of waiting for them. SQLite has no row locks; its
    write transaction (BEGIN IMMEDIATE) already excludes every other writer."""
    stmt = (
        select(WebhookDelivery)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(_due_condition(now), Webhook.active.is_(True))
        .order_by(WebhookDelivery.id)
        .limit(limit)
    )
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True, of=WebhookDelivery)
    return session.scalars(stmt.execution_options(populate_existing=True)).all()


def for_update(session: Session, delivery_id: int) -> WebhookDelivery | None:
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.scalars(stmt).first()


def webhooks_by_id(session: Session, ids: Sequence[int]) -> dict[int, Webhook]:
    if not ids:
        return {}
    return {w.id: w for w in session.scalars(select(Webhook).where(Webhook.id.in_(ids)))}


def outbox_by_id(session: Session, ids: Sequence[int]) -> dict[int, OutboxEvent]:
    if not ids:
        return {}
    rows = session.scalars(select(OutboxEvent).where(OutboxEvent.id.in_(ids)))
    return {e.id: e for e in rows}


def all_webhooks_for_update(session: Session) -> Sequence[Webhook]:
    """Every webhook (deleted ones too: their secrets are stored as well), locked."""
    return session.scalars(select(Webhook).order_by(Webhook.id).with_for_update()).all()
