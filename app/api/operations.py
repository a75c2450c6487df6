"""On-call routes: rollback, freeze and unfreeze, and the production history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.api.deps import ModelOperator, ModelPath, ModelReader, StoreDep, UowDep
from app.api.idempotent import IdempotencyDep
from app.api.problems import responses
from app.errors import BadRequest
from app.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.promotion import operations
from app.promotion.schemas import (
    FreezeCreate,
    FreezeRead,
    HistoryEntry,
    PointersAt,
    RollbackCreate,
    RollbackRead,
)
from app.registry.schemas import Page
from app.rfc3339 import parse_rfc3339

router = APIRouter(prefix="/models/{model}", tags=["operations"])


@router.post(
    "/rollback",
    response_model=RollbackRead,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def rollback(
    model: ModelPath,
    body: RollbackCreate,
    uow: UowDep,
    principal: ModelOperator,
    store: StoreDep,
    idem: IdempotencyDep,
) -> Response:
    """Put the previous stable version (or `to_version`) back into production, after
    checking its artifact is intact. Works while the model is frozen."""
    return idem.run(
        principal,
        body,
        status_code=200,
        create=lambda: operations.rollback(
            uow.session,
            actor=principal,
            store=store,
            model_name=model,
            to_version=body.to_version,
            reason=body.reason,
            deep_check=body.deep_check,
        ),
    )


@router.post(
    "/freeze", response_model=FreezeRead, responses=responses(400, 401, 403, 404, 413, 422, 503)
)
def freeze(
    model: ModelPath, body: FreezeCreate, uow: UowDep, principal: ModelOperator
) -> FreezeRead:
    """Refuse promotions to production during an incident (rollback still works)."""
    return operations.freeze(uow.session, actor=principal, model_name=model, reason=body.reason)


@router.post(
    "/unfreeze",
    response_model=FreezeRead,
    responses=responses(400, 401, 403, 404, 413, 422, 503),
)
def unfreeze(
    model: ModelPath, body: FreezeCreate, uow: UowDep, principal: ModelOperator
) -> FreezeRead:
    """Allow promotions to production again."""
    return operations.unfreeze(uow.session, actor=principal, model_name=model, reason=body.reason)


@router.get(
    "/history",
    response_model=Page[HistoryEntry] | PointersAt,
    responses=responses(400, 401, 403, 404, 422, 503),
)
def history(
    request: Request,
    model: ModelPath,
    uow: UowDep,
    principal: ModelReader,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    at: Annotated[
        str | None,
        Query(
            max_length=64,
            description="An RFC 3339 date-time (e.g. `2026-11-26T08:00:00Z`): instead of "
            "the timeline, what the pointers held then (a `PointersAt`: the production "
            "period, every version's stage, every alias); `cursor` and `limit` are then "
            "ignored. A future time is answered as of now (the answer's `at` says when); a "
            "malformed one is a 400.",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
) -> Page[HistoryEntry] | PointersAt:
    """The production timeline, newest first: version, from, until, how and why; with
    `at`, what served (and where every pointer was) at that time."""
    if at is None:
        return operations.history(uow.session, model_name=model, cursor=cursor, limit=limit)
    try:
        when = parse_rfc3339(at)
    except ValueError as exc:
        raise BadRequest(
            f"at={at!r}: {exc}",
            errors=[{"loc": ["query", "at"], "msg": str(exc), "type": "value_error"}],
        ) from None
    return operations.pointers_at(uow.session, model_name=model, at=when)
