"""What an operator watches, read at scrape time: the gauges of ``/metrics``.

Read-only queries over other features' tables (counts and minimums on indexed columns),
kept here so that the metrics endpoint asks one function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.events.models import WebhookDelivery
from app.promotion.models import PromotionRequest
from app.registry.models import ModelVersion, RegisteredModel

UNDELIVERED = ("pending", "failed")


@dataclass(frozen=True)
class OperationalState:
    pending_promotions: int
    oldest_pending_promotion_at: datetime | None
    frozen_models: int
    outbox_backlog: int
    """Webhook deliveries not yet delivered (pending, or failed and to be retried)."""
    oldest_undelivered_at: datetime | None
    production_versions: dict[str, int] = field(default_factory=dict)


def operational_state(session: Session) -> OperationalState:
    pending, oldest_pending = session.execute(
        select(func.count(), func.min(PromotionRequest.requested_at)).where(
            PromotionRequest.status == "pending_approval"
        )
    ).one()
    frozen = session.execute(
        select(func.count()).where(RegisteredModel.frozen_at.is_not(None))
    ).scalar_one()
    backlog, oldest_undelivered = session.execute(
        select(func.count(), func.min(WebhookDelivery.created_at)).where(
            WebhookDelivery.status.in_(UNDELIVERED)
        )
    ).one()
    production = session.execute(
        select(RegisteredModel.name, ModelVersion.version)
        .join(ModelVersion, ModelVersion.model_id == RegisteredModel.id)
        .where(ModelVersion.stage == "production")
    ).all()
    return OperationalState(
        pending_promotions=int(pending),
        oldest_pending_promotion_at=oldest_pending,
        frozen_models=int(frozen),
        outbox_backlog=int(backlog),
        oldest_undelivered_at=oldest_undelivered,
        production_versions={name: int(version) for name, version in production},
    )
