"""Tables of the event outbox, webhook subscriptions and their deliveries."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base import Base, BigIntPK, utcnow


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # not attempted yet, or being attempted (claimed_until in the future)
    FAILED = "failed"  # the last attempt failed; retried at next_attempt_at
    DELIVERED = "delivered"
    DEAD = "dead"  # gave up after the last allowed attempt
    CANCELLED = "cancelled"  # the webhook was deleted before delivery


OPEN_STATUSES = (DeliveryStatus.PENDING.value, DeliveryStatus.FAILED.value)
DELIVERY_STATUS_CHECK = "status IN ('pending', 'failed', 'delivered', 'dead', 'cancelled')"


class OutboxEvent(Base):
    """One event, written in the transaction of the change it describes: it exists
    exactly when that change committed. ``id`` orders events; ``event_id`` is the stable
    identity receivers deduplicate by."""

    __tablename__ = "event_outbox"
    __table_args__ = (Index("ix_event_outbox_model_id", "model", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128))
    version: Mapped[int | None] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column()
    payload: Mapped[dict[str, Any]] = mapped_column()


class Webhook(Base):
    """A subscription. Its secret signs every delivery, so the server must be able to read
    it: it is kept sealed (AES-256-GCM, :mod:`app.events.secretbox`) under the configured
    key, and never returned by the API."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[list[Any]] = mapped_column()
    model: Mapped[str | None] = mapped_column(String(128))
    secret_sealed: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column()
    deleted_by: Mapped[str | None] = mapped_column(String(256))


class WebhookDelivery(Base):
    """One event to one webhook: the delivery log, and the dispatcher's work queue.

    A dispatcher claims a row by setting ``claimed_until`` (a lease) and counting the
    attempt, commits, sends, then records the result; a process that dies mid-send
    leaves a lease that expires, and the row is attempted again."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(DELIVERY_STATUS_CHECK, name="status"),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        # The per-model ordering check: earlier open deliveries of the same webhook and model.
        Index(
            "ix_webhook_deliveries_webhook_id_ordering_key_outbox_id",
            "webhook_id",
            "ordering_key",
            "outbox_id",
        ),
        Index("ix_webhook_deliveries_webhook_id_id", "webhook_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    webhook_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhooks.id", ondelete="CASCADE")
    )
    outbox_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("event_outbox.id", ondelete="CASCADE")
    )
    event_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(64))
    # The model's name ('' for registry-wide events): deliveries with the same webhook and
    # ordering key are sent one at a time, in outbox order.
    ordering_key: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()
    claimed_until: Mapped[datetime | None] = mapped_column()
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    last_attempt_at: Mapped[datetime | None] = mapped_column()
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column()
    redelivery_of: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    outbox: Mapped[OutboxEvent] = relationship(lazy="raise")
