"""Routes for what serving saw: observation batches, labels, and their summary."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from app.api.deps import (
    ModelPath,
    ModelReader,
    ModelSubmitter,
    SettingsDep,
    UowDep,
    VersionPath,
)
from app.api.idempotent import IdempotencyDep
from app.api.problems import responses
from app.observations import reports, service
from app.observations.schemas import (
    ABReport,
    IngestResult,
    LabelBatch,
    LabelResult,
    ObservationBatch,
    ObservationSummary,
    ShadowReport,
)
from app.rfc3339 import Rfc3339DateTime

router = APIRouter(prefix="/models/{model}", tags=["observations"])


@router.post(
    "/observations",
    status_code=202,
    response_model=IngestResult,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def post_observations(
    model: ModelPath,
    body: ObservationBatch,
    uow: UowDep,
    principal: ModelSubmitter,
    settings: SettingsDep,
    idem: IdempotencyDep,
) -> Response:
    """Fold a batch of what serving saw (per request: version, primary or shadow,
    latency, error, prediction, time) into per-window aggregates. Checked whole: one bad
    row refuses the batch, naming its index. Send an `Idempotency-Key` to retry safely."""
    return idem.run(
        principal,
        body,
        status_code=202,
        create=lambda: service.ingest(uow.session, settings=settings, model_name=model, batch=body),
    )


@router.post(
    "/labels",
    response_model=LabelResult,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def post_labels(
    model: ModelPath,
    body: LabelBatch,
    uow: UowDep,
    principal: ModelSubmitter,
    settings: SettingsDep,
    idem: IdempotencyDep,
) -> Response:
    """Add ground truth that arrived after the prediction, joined by request key; a key
    never observed refuses the batch, a key labelled before is counted and ignored."""
    return idem.run(
        principal,
        body,
        status_code=200,
        create=lambda: service.add_labels(
            uow.session, settings=settings, model_name=model, batch=body
        ),
    )


@router.get(
    "/observations",
    response_model=ObservationSummary,
    responses=responses(400, 401, 403, 404, 422, 503),
)
def get_observations(
    model: ModelPath,
    uow: UowDep,
    principal: ModelReader,
    settings: SettingsDep,
    since: Annotated[
        Rfc3339DateTime | None, Query(description="Start (default: an hour before until).")
    ] = None,
    until: Annotated[Rfc3339DateTime | None, Query(description="End (default: now).")] = None,
    version: Annotated[int | None, Query(ge=1, le=2_000_000_000)] = None,
    role: Annotated[Literal["primary", "shadow"] | None, Query()] = None,
) -> ObservationSummary:
    """Per version and role: requests, error rate, latency (mean, p50, p99 from the kept
    sample), accuracy or mean absolute error from labels, and the prediction histogram."""
    return service.summary(
        uow.session,
        settings=settings,
        model_name=model,
        since=since,
        until=until,
        version=version,
        role=role,
    )


Since = Annotated[
    Rfc3339DateTime | None,
    Query(description="Start (default: the observation retention before until)."),
]
Until = Annotated[Rfc3339DateTime | None, Query(description="End (default: now).")]


@router.get(
    "/versions/{version}/shadow-report",
    response_model=ShadowReport,
    responses=responses(400, 401, 403, 404, 422, 503),
)
def get_shadow_report(
    model: ModelPath,
    version: VersionPath,
    uow: UowDep,
    principal: ModelReader,
    settings: SettingsDep,
    since: Since = None,
    until: Until = None,
    primary: Annotated[
        int | None,
        Query(
            ge=1,
            le=2_000_000_000,
            description="The primary version compared with "
            "(default: the one that answered most paired requests, else production).",
        ),
    ] = None,
) -> ShadowReport:
    """The version in shadow against the primary over the same requests: prediction
    agreement (classes, or the side of 0.5 of scores) and mean absolute difference
    (values, scores) of the predictions paired by request key, error rate (two
    proportions), latency (Mann-Whitney) and prediction distributions (Jensen-Shannon,
    chi-square) over the windows where both were seen (a is the primary, b the shadow)."""
    return reports.shadow_report(
        uow.session,
        settings=settings,
        model_name=model,
        version=version,
        primary=primary,
        since=since,
        until=until,
    )


@router.get(
    "/ab-report",
    response_model=ABReport,
    responses=responses(400, 401, 403, 404, 422, 503),
)
def get_ab_report(
    model: ModelPath,
    uow: UowDep,
    principal: ModelReader,
    settings: SettingsDep,
    a: Annotated[int, Query(ge=1, le=2_000_000_000, description="Version of arm a.")],
    b: Annotated[int, Query(ge=1, le=2_000_000_000, description="Version of arm b.")],
    since: Since = None,
    until: Until = None,
    alpha: Annotated[float, Query(gt=0, lt=0.5, description="Level of each test.")] = 0.05,
    min_sample: Annotated[
        int, Query(ge=1, le=100_000_000, description="Observations per arm before a test.")
    ] = 200,
) -> ABReport:
    """Two versions serving side by side (role primary): per arm requests, error rate,
    accuracy, latency; per metric the effect (b - a), an always-valid p-value and
    confidence interval (valid however often the report is read), and the fixed-sample
    ones beside them. Nothing is promoted."""
    return reports.ab_report(
        uow.session,
        settings=settings,
        model_name=model,
        a=a,
        b=b,
        since=since,
        until=until,
        alpha=alpha,
        min_sample=min_sample,
    )
