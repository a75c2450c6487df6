"""Routes for drift monitoring: reference profiles, drift reports, drift settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse

from app.api.deps import (
    ModelAdmin,
    ModelPath,
    ModelReader,
    ModelSubmitter,
    SettingsDep,
    UowDep,
    VersionPath,
)
from app.api.idempotent import IdempotencyDep
from app.api.problems import responses
from app.drift import service
from app.drift.schemas import (
    DriftReportCreate,
    DriftReportRead,
    DriftSettingsRead,
    DriftSettingsUpdate,
    ReferenceProfileCreate,
    ReferenceProfileRead,
)
from app.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.registry.schemas import Page

router = APIRouter(prefix="/models/{model}", tags=["drift"])

ReportId = Annotated[int, Path(ge=1, le=2**62, description="The drift report's id.")]


@router.post(
    "/versions/{version}/reference-profile",
    status_code=201,
    response_model=ReferenceProfileRead,
    responses={
        200: {"model": ReferenceProfileRead, "description": "The same profile was already stored"},
        **responses(400, 401, 403, 404, 409, 413, 422, 503),
    },
)
def create_reference_profile(
    model: ModelPath,
    version: VersionPath,
    body: ReferenceProfileCreate,
    uow: UowDep,
    principal: ModelSubmitter,
    settings: SettingsDep,
) -> JSONResponse:
    """Store the training-data profile drift reports compare against: per-feature bins or
    category counts (and the prediction's), or a raw sample the service profiles itself.
    Immutable; sending the same profile again answers 200 with the stored one."""
    read, created = service.create_reference_profile(
        uow.session,
        actor=principal,
        settings=settings,
        model_name=model,
        number=version,
        data=body,
    )
    return JSONResponse(read.model_dump(mode="json"), status_code=201 if created else 200)


@router.get(
    "/versions/{version}/reference-profile",
    response_model=ReferenceProfileRead,
    responses=responses(401, 403, 404, 422, 503),
)
def get_reference_profile(
    model: ModelPath,
    version: VersionPath,
    uow: UowDep,
    principal: ModelReader,
    include_sample: Annotated[
        bool, Query(description="Include the kept raw values of numeric features.")
    ] = False,
) -> ReferenceProfileRead:
    """The version's reference profile: bin edges and counts, category counts."""
    return service.get_reference_profile(
        uow.session, model_name=model, number=version, include_sample=include_sample
    )


@router.post(
    "/drift-reports",
    status_code=201,
    response_model=DriftReportRead,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def create_drift_report(
    model: ModelPath,
    body: DriftReportCreate,
    uow: UowDep,
    principal: ModelSubmitter,
    settings: SettingsDep,
    idem: IdempotencyDep,
) -> Response:
    """Check a production window (profile or raw sample) against the reference profile of
    the production version. When the drift score exceeds tau, `drift.detected` and
    `retrain.requested` events are emitted."""
    return idem.run(
        principal,
        body,
        status_code=201,
        create=lambda: service.create_drift_report(
            uow.session, actor=principal, settings=settings, model_name=model, data=body
        ),
    )


@router.get(
    "/drift-reports",
    response_model=Page[DriftReportRead],
    responses=responses(400, 401, 403, 404, 422, 503),
)
def list_drift_reports(
    model: ModelPath,
    uow: UowDep,
    principal: ModelReader,
    drifted: bool | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[DriftReportRead]:
    """Drift history, newest first."""
    return service.list_drift_reports(
        uow.session, model_name=model, drifted=drifted, cursor=cursor, limit=limit
    )


@router.get(
    "/drift-reports/{report_id}",
    response_model=DriftReportRead,
    responses=responses(401, 403, 404, 422, 503),
)
def get_drift_report(
    model: ModelPath, report_id: ReportId, uow: UowDep, principal: ModelReader
) -> DriftReportRead:
    """One drift report."""
    return service.get_drift_report(uow.session, model_name=model, report_id=report_id)


@router.get(
    "/drift-settings",
    response_model=DriftSettingsRead,
    responses=responses(401, 403, 404, 422, 503),
)
def get_drift_settings(model: ModelPath, uow: UowDep, principal: ModelAdmin) -> DriftSettingsRead:
    """The model's drift thresholds (the defaults until set)."""
    return service.get_settings(uow.session, model_name=model)


@router.put(
    "/drift-settings",
    response_model=DriftSettingsRead,
    responses=responses(400, 401, 403, 404, 413, 422, 503),
)
def put_drift_settings(
    model: ModelPath, body: DriftSettingsUpdate, uow: UowDep, principal: ModelAdmin
) -> DriftSettingsRead:
    """Replace the model's drift thresholds: tau, the null-rate bound, alpha."""
    return service.put_settings(uow.session, actor=principal, model_name=model, data=body)
