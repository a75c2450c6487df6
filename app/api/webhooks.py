"""Routes for webhook subscriptions and their delivery log (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.api.deps import Admin, SettingsDep, UowDep, require_unscoped
from app.api.idempotent import IdempotencyDep
from app.api.problems import responses
from app.events import service
from app.events.models import DeliveryStatus
from app.events.schemas import DeliveryRead, WebhookCreate, WebhookRead
from app.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.registry.schemas import Page

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

WebhookId = Annotated[int, Path(ge=1, le=2**62, description="The webhook's id.")]
DeliveryId = Annotated[int, Path(ge=1, le=2**62, description="The delivery's id.")]


@router.post(
    "",
    status_code=201,
    response_model=WebhookRead,
    responses=responses(400, 401, 403, 409, 413, 422, 503),
)
def create_webhook(
    body: WebhookCreate,
    uow: UowDep,
    principal: Admin,
    settings: SettingsDep,
    idem: IdempotencyDep,
) -> Response:
    """Subscribe a URL to events. Deliveries are signed with the secret, which is never
    shown again."""
    require_unscoped(principal)
    return idem.run(
        principal,
        body,
        status_code=201,
        create=lambda: service.create_webhook(
            uow.session, actor=principal, settings=settings, data=body
        ),
    )


@router.get("", response_model=Page[WebhookRead], responses=responses(400, 401, 403, 422, 503))
def list_webhooks(
    uow: UowDep,
    principal: Admin,
    include_deleted: bool = False,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[WebhookRead]:
    """List webhooks (never their secrets)."""
    require_unscoped(principal)
    return service.list_webhooks(
        uow.session, cursor=cursor, limit=limit, include_deleted=include_deleted
    )


@router.get(
    "/{webhook_id}", response_model=WebhookRead, responses=responses(401, 403, 404, 422, 503)
)
def get_webhook(webhook_id: WebhookId, uow: UowDep, principal: Admin) -> WebhookRead:
    """One webhook."""
    require_unscoped(principal)
    return service.get_webhook(uow.session, webhook_id)


@router.delete(
    "/{webhook_id}", response_model=WebhookRead, responses=responses(401, 403, 404, 422, 503)
)
def delete_webhook(webhook_id: WebhookId, uow: UowDep, principal: Admin) -> WebhookRead:
    """Delete a webhook: nothing more is sent to it and its pending deliveries are
    cancelled; it and its delivery log are gone from the API (404), listed only with
    `include_deleted=true`. The audit log records how many deliveries were cancelled."""
    require_unscoped(principal)
    return service.delete_webhook(uow.session, actor=principal, webhook_id=webhook_id)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=Page[DeliveryRead],
    responses=responses(400, 401, 403, 404, 422, 503),
)
def list_deliveries(
    webhook_id: WebhookId,
    uow: UowDep,
    principal: Admin,
    status: DeliveryStatus | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[DeliveryRead]:
    """The delivery log, newest first: status, attempts, last answer, next attempt."""
    require_unscoped(principal)
    return service.list_deliveries(
        uow.session, webhook_id=webhook_id, status=status, cursor=cursor, limit=limit
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryRead,
    responses=responses(401, 403, 404, 409, 413, 422, 503),
)
def redeliver(
    webhook_id: WebhookId, delivery_id: DeliveryId, uow: UowDep, principal: Admin
) -> DeliveryRead:
    """Send the delivery's event again, as a new delivery with the same event id."""
    require_unscoped(principal)
    return service.redeliver(
        uow.session, actor=principal, webhook_id=webhook_id, delivery_id=delivery_id
    )
