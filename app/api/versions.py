"""Routes for model versions, their metrics, and the versions in a stage."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from app.api.deps import (
    ModelPath,
    ModelReader,
    ModelSubmitter,
    UowDep,
    VersionPath,
)
from app.api.idempotent import IdempotencyDep
from app.api.problems import responses
from app.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.registry import service
from app.registry.models import Stage
from app.registry.schemas import MetricsAdd, Page, StageRead, VersionCreate, VersionRead
from app.serving import aliases


def lineage_filters(
    code_commit: Annotated[
        str | None,
        Query(
            alias="lineage.code_commit",
            max_length=128,
            description="Only versions whose lineage "
            "states this code_commit. VCS commit of the training code.",
        ),
    ] = None,
    code_repository: Annotated[
        str | None,
        Query(
            alias="lineage.code_repository",
            max_length=512,
            description="Only versions whose lineage "
            "states this code_repository. Repository of the training code.",
        ),
    ] = None,
    code_dirty: Annotated[
        str | None,
        Query(
            alias="lineage.code_dirty",
            max_length=5,
            description="Only versions whose lineage states this code_dirty. `true` or `false`.",
        ),
    ] = None,
    data_version: Annotated[
        str | None,
        Query(
            alias="lineage.data_version",
            max_length=512,
            description="Only versions whose lineage states this data_version. Dataset version.",
        ),
    ] = None,
    feature_pipeline_version: Annotated[
        str | None,
        Query(
            alias="lineage.feature_pipeline_version",
            max_length=512,
            description="Only versions whose lineage "
            "states this feature_pipeline_version. Feature logic version.",
        ),
    ] = None,
    environment: Annotated[
        str | None,
        Query(
            alias="lineage.environment",
            max_length=512,
            description="Only versions whose lineage "
            "states this environment. Environment or image digest.",
        ),
    ] = None,
    seed: Annotated[
        str | None,
        Query(
            alias="lineage.seed",
            max_length=24,
            description="Only versions whose lineage states this seed. Random seed, in decimal.",
        ),
    ] = None,
    training_run_id: Annotated[
        str | None,
        Query(
            alias="lineage.training_run_id",
            max_length=512,
            description="Only versions whose lineage states this training_run_id. Training run id.",
        ),
    ] = None,
    ci_run_id: Annotated[
        str | None,
        Query(
            alias="lineage.ci_run_id",
            max_length=512,
            description="Only versions whose lineage states this ci_run_id. CI run id.",
        ),
    ] = None,
    ci_run_url: Annotated[
        str | None,
        Query(
            alias="lineage.ci_run_url",
            max_length=2048,
            description="Only versions whose lineage states this ci_run_url. CI run URL.",
        ),
    ] = None,
) -> dict[str, str | None]:
    """The ``?lineage.<field>=`` filters: each an exact match of one scalar lineage field
    (app/registry/search.py); declared one by one so that the spec lists them and any
    other ``lineage.*`` name is an unknown parameter (400)."""
    return {
        "code_commit": code_commit,
        "code_repository": code_repository,
        "code_dirty": code_dirty,
        "data_version": data_version,
        "feature_pipeline_version": feature_pipeline_version,
        "environment": environment,
        "seed": seed,
        "training_run_id": training_run_id,
        "ci_run_id": ci_run_id,
        "ci_run_url": ci_run_url,
    }


router = APIRouter(prefix="/models/{model}", tags=["versions"])


@router.post(
    "/versions",
    status_code=201,
    response_model=VersionRead,
    responses=responses(400, 401, 403, 404, 413, 422, 503),
)
def create_version(
    model: ModelPath,
    body: VersionCreate,
    uow: UowDep,
    principal: ModelSubmitter,
    idem: IdempotencyDep,
) -> Response:
    """Submit a candidate version with its lineage, signature, metrics and tags.

    Send an `Idempotency-Key` so that a retried CI job never creates two versions."""

    def create() -> VersionRead:
        m, version = service.create_version(
            uow.session, actor=principal, model_name=model, data=body
        )
        return service.to_version_read(m.name, version)

    return idem.run(
        principal,
        body,
        status_code=201,
        create=create,
    )


@router.get(
    "/versions",
    response_model=Page[VersionRead],
    responses=responses(400, 401, 403, 404, 409, 422, 503),
)
def list_versions(
    model: ModelPath,
    uow: UowDep,
    principal: ModelReader,
    stage: Stage | None = None,
    order_by: Annotated[
        str,
        Query(
            max_length=160,
            pattern=r"^-?(version|metric:[A-Za-z0-9_][A-Za-z0-9_.:/@-]*)$",
            description="`version`, `-version` (default), `metric:NAME` or `-metric:NAME`.",
        ),
    ] = "-version",
    dataset: Annotated[
        str | None,
        Query(max_length=256, description="Dataset of the metric to order by."),
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    fingerprint: Annotated[
        str | None,
        Query(
            pattern="^[0-9a-f]{64}$",
            description="Only versions with this lineage fingerprint (same training spec).",
        ),
    ] = None,
    tag: Annotated[
        list[str] | None,
        Query(
            description="Only versions with this tag, repeatable (all must hold): "
            "`KEY=VALUE`, `KEY:VALUE` (a key without `:`) or `KEY` (any value).",
            # The three forms, with a key of 1-128 of A-Z a-z 0-9 _ . : / - (decision 0025);
            # the server's own parser (app/registry/search.py) answers a 400 otherwise.
            json_schema_extra={
                "maxItems": service.MAX_TAG_FILTERS,
                "items": {"type": "string", "pattern": service.TAG_FILTER_PATTERN},
            },
        ),
    ] = None,
    lineage: Annotated[dict[str, str | None], Depends(lineage_filters)] = {},  # noqa: B006
) -> Page[VersionRead]:
    """List a model's versions, filtered by stage, tag, lineage field or lineage
    fingerprint, and ordered by number or by a metric; each with the aliases pointing
    at it."""
    page = service.list_versions(
        uow.session,
        model_name=model,
        stage=stage,
        order_by=order_by,
        dataset=dataset,
        cursor=cursor,
        limit=limit,
        fingerprint=fingerprint,
        tags=tag,
        lineage=lineage,
    )
    by_version = aliases.names_by_version(uow.session, model)
    for item in page.items:
        item.aliases = by_version.get(item.version, [])
    return page


@router.get(
    "/versions/{version}",
    response_model=VersionRead,
    responses=responses(401, 403, 404, 422, 503),
)
def read_version(
    model: ModelPath, version: VersionPath, uow: UowDep, principal: ModelReader
) -> VersionRead:
    """Read one version with its lineage, signature, metrics and artifact state."""
    m, v = service.get_version(uow.session, model, version)
    read = service.to_version_read(m.name, v)
    read.aliases = aliases.aliases_by_version(uow.session, [v.id]).get(v.id, [])
    return read


@router.post(
    "/versions/{version}/metrics",
    response_model=VersionRead,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def add_metrics(
    model: ModelPath,
    version: VersionPath,
    body: MetricsAdd,
    uow: UowDep,
    principal: ModelSubmitter,
) -> VersionRead:
    """Add evaluation results to a version. Metrics are immutable: resending one is a no-op,
    a different value for the same name, dataset and slice is a 409."""
    m, v = service.add_metrics(
        uow.session, actor=principal, model_name=model, number=version, data=body
    )
    return service.to_version_read(m.name, v)


@router.get(
    "/stages/{stage}", response_model=StageRead, responses=responses(400, 401, 403, 404, 422, 503)
)
def versions_in_stage(
    model: ModelPath,
    stage: Stage,
    uow: UowDep,
    principal: ModelReader,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> StageRead:
    """The versions now in a stage, newest first (production: at most one)."""
    page = service.versions_in_stage(
        uow.session, model_name=model, stage=stage, cursor=cursor, limit=limit
    )
    by_version = aliases.names_by_version(uow.session, model)
    for item in page.items:
        item.aliases = by_version.get(item.version, [])
    return StageRead(model=model, stage=stage, items=page.items, next_cursor=page.next_cursor)
