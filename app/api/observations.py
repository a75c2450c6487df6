"""Routes for what serving saw: observation batches, labels, and their summary."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from app.api.deps import ModelPath, ModelReader, ModelSubmitter, SettingsDep, UowDep
from app.api.idempotent import IdempotencyDep
from app.api.problems import responses
from app.observations import service
from app.observations.schemas import (
    IngestResult,
    LabelBatch,
    LabelResult,
    ObservationBatch,
    ObservationSummary,
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
