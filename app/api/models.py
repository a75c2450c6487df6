"""Routes for registered models."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.deps import (
    ModelPath,
    ModelReader,
    ModelSubmitter,
    Reader,
    Submitter,
    UowDep,
)
from app.api.idempotent import IdempotencyDep
from app.api.problems import responses
from app.errors import Forbidden
from app.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.registry import service
from app.registry.schemas import ModelCreate, ModelRead, ModelUpdate, Page
from app.serving import aliases

router = APIRouter(prefix="/models", tags=["models"])


@router.post(
    "",
    status_code=201,
    response_model=ModelRead,
    responses=responses(400, 401, 403, 409, 413, 422, 503),
)
def create_model(
    body: ModelCreate,
    uow: UowDep,
    principal: Submitter,
    idem: IdempotencyDep,
) -> Response:
    """Register a model under a unique name."""
    if principal.model_scope is not None and principal.model_scope != body.name:
        raise Forbidden(f"this token is limited to model {principal.model_scope!r}")

    def create() -> ModelRead:
        model = service.create_model(uow.session, actor=principal, data=body)
        return service.to_model_read(model, None)

    return idem.run(
        principal,
        body,
        status_code=201,
        create=create,
    )


@router.get("", response_model=Page[ModelRead], responses=responses(400, 401, 403, 422, 503))
def list_models(
    uow: UowDep,
    principal: Reader,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    owner: Annotated[str | None, Query(max_length=512)] = None,
    name_prefix: Annotated[str | None, Query(max_length=128)] = None,
) -> Page[ModelRead]:
    """List models by name, one page at a time, each with its aliases."""
    page = service.list_models(
        uow.session,
        cursor=cursor,
        limit=limit,
        owner=owner,
        name_prefix=name_prefix,
        only_name=principal.model_scope,
    )
    found = aliases.of_models(uow.session, [m.name for m in page.items])
    for item in page.items:
        item.aliases = found.get(item.name, {})
    return page


def _with_aliases(uow: UowDep, read: ModelRead) -> ModelRead:
    read.aliases = aliases.of_models(uow.session, [read.name]).get(read.name, {})
    return read


@router.get("/{model}", response_model=ModelRead, responses=responses(401, 403, 404, 422, 503))
def read_model(model: ModelPath, uow: UowDep, principal: ModelReader) -> ModelRead:
    """Read one model, with its latest and production version numbers and its aliases."""
    return _with_aliases(uow, service.read_model(uow.session, model))


@router.patch(
    "/{model}", response_model=ModelRead, responses=responses(400, 401, 403, 404, 413, 422, 503)
)
def update_model(
    model: ModelPath, body: ModelUpdate, uow: UowDep, principal: ModelSubmitter
) -> ModelRead:
    """Edit a model's description, owner, tags or primary metric; only the fields sent change.

    The primary metric and dataset are what the default production gate compares: changing
    them needs the rights to change the gate policy (admin)."""
    service.update_model(uow.session, actor=principal, name=model, data=body)
    return _with_aliases(uow, service.read_model(uow.session, model))
