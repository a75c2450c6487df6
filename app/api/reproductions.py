"""Routes for reproductions: re-runs of a version's training submitted as evidence."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import ModelPath, ModelReader, ModelSubmitter, UowDep, VersionPath
from app.api.problems import responses
from app.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.registry.schemas import Page
from app.reproductions import service
from app.reproductions.schemas import ReproductionCreate, ReproductionRead

router = APIRouter(prefix="/models/{model}/versions/{version}", tags=["reproductions"])


@router.post(
    "/reproductions",
    status_code=201,
    response_model=ReproductionRead,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def record_reproduction(
    model: ModelPath,
    version: VersionPath,
    body: ReproductionCreate,
    uow: UowDep,
    principal: ModelSubmitter,
) -> ReproductionRead:
    """Record what a re-run of the version's training produced (artifact digest, metrics)."""
    return service.record(uow.session, actor=principal, model_name=model, number=version, data=body)


@router.get(
    "/reproductions",
    response_model=Page[ReproductionRead],
    responses=responses(400, 401, 403, 404, 422, 503),
)
def list_reproductions(
    model: ModelPath,
    version: VersionPath,
    uow: UowDep,
    principal: ModelReader,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[ReproductionRead]:
    """The version's reproductions, newest first."""
    return service.list_reproductions(
        uow.session, model_name=model, number=version, cursor=cursor, limit=limit
    )
