"""Routes for data checks: a dataset checked against a version's data contract."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import ModelPath, ModelReader, ModelSubmitter, UowDep, VersionPath
from app.api.problems import responses
from app.datachecks import service
from app.datachecks.schemas import DataCheckCreate, DataCheckRead
from app.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.registry.schemas import Page

router = APIRouter(prefix="/models/{model}/versions/{version}", tags=["data-checks"])


@router.post(
    "/data-checks",
    status_code=201,
    response_model=DataCheckRead,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def record_data_check(
    model: ModelPath,
    version: VersionPath,
    body: DataCheckCreate,
    uow: UowDep,
    principal: ModelSubmitter,
) -> DataCheckRead:
    """Check a dataset against the version's signature and reference profile; store the report."""
    return service.record(uow.session, actor=principal, model_name=model, number=version, data=body)


@router.get(
    "/data-checks",
    response_model=Page[DataCheckRead],
    responses=responses(400, 401, 403, 404, 422, 503),
)
def list_data_checks(
    model: ModelPath,
    version: VersionPath,
    uow: UowDep,
    principal: ModelReader,
    dataset: Annotated[str | None, Query(max_length=256)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[DataCheckRead]:
    """The version's data checks, newest first (of one dataset with ``?dataset=``)."""
    return service.list_data_checks(
        uow.session, model_name=model, number=version, dataset=dataset, cursor=cursor, limit=limit
    )
