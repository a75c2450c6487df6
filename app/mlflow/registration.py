"""Registering a version from an MLflow source: copy the model directory into the
content-addressed store, hash it, and turn the run into metrics and lineage.

Three steps so that no transaction stays open while bytes move: the version is created
``PENDING_REGISTRATION`` and committed; the files are copied (no database); then the
manifest is recorded as the version's artifact and the version turns ``READY``, or
``FAILED_REGISTRATION`` with the reason. A version that is not READY has no artifact,
so nothing half-registered can be downloaded or promoted (the artifact gate fails).
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.roles import Principal
from app.errors import AppError
from app.mlflow import repository
from app.mlflow.errors import invalid
from app.mlflow.models import MlflowVersion, Registration
from app.mlflow.service import validation_message
from app.mlflow.sources import (
    RunData,
    S3Access,
    SourceUnreadable,
    Tracking,
    get_run,
    iter_files,
    list_files,
    resolve,
)
from app.registry import artifacts
from app.registry import service as registry
from app.registry.models import ModelVersion
from app.registry.schemas import VersionCreate
from app.settings import Settings
from app.storage.base import ArtifactStore, StoredObject
from app.storage.streaming import store_file

log = logging.getLogger("modelgate.mlflow")

MANIFEST_MEDIA_TYPE = "application/vnd.modelgate.mlflow-model+json"
DEFAULT_METRIC_DATASET = "mlflow"
_METRIC_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/@-]{0,127}$")
_TAG_KEY = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")

# Run tags that name lineage fields (MLflow's own first, then Modelgate's).
LINEAGE_TAGS = {
    "mlflow.source.git.commit": "code_commit",
    "mlflow.source.git.repoURL": "code_repository",
    "mlflow.gitRepoURL": "code_repository",
    "mlflow.docker.image.id": "environment",
}
LINEAGE_FIELDS = (
    "code_commit", "code_repository", "data_version", "feature_pipeline_version",
    "environment", "ci_run_id", "ci_run_url",
)  # fmt: skip


@dataclass
class Prepared:
    """What the create call needs, gathered before any transaction."""

    storage_uri: str
    run: RunData | None
    lineage: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)


def tracking_of(settings: Settings) -> Tracking | None:
    if not settings.mlflow_tracking_uri:
        return None
    token = settings.mlflow_tracking_token
    return Tracking(settings.mlflow_tracking_uri, token.get_secret_value() if token else None)


def s3_of(settings: Settings) -> S3Access:
    return S3Access(endpoint_url=settings.s3_endpoint_url, region=settings.s3_region)


def lineage_from_run(run: RunData) -> dict[str, Any]:
    """Lineage from a run: ``mlflow.source.git.commit`` is the code commit; a tag
    ``modelgate.<field>`` (or a parameter of that field's name) sets any other field;
    parameters are the hyperparameters; ``seed`` (or ``random_state``) the seed; the run's
    logged datasets the data version when nothing else names it."""
    lineage: dict[str, Any] = {"training_run_id": run.run_id}
    for tag, target in LINEAGE_TAGS.items():
        if run.tags.get(tag):
            lineage.setdefault(target, run.tags[tag][:512])
    for name in LINEAGE_FIELDS:
        for value in (run.tags.get(f"modelgate.{name}"), run.params.get(name)):
            if value:
                lineage[name] = value[: 2048 if name == "ci_run_url" else 512]
                break
    if "data_version" not in lineage and run.datasets:
        lineage["data_version"] = ",".join(run.datasets)[:512]
    hyper = {k: _number_or_text(v) for k, v in run.params.items() if k not in LINEAGE_FIELDS}
    if hyper:
        lineage["hyperparameters"] = hyper
    for key in ("seed", "random_state", "random_seed"):
        raw = run.params.get(key) or run.tags.get(f"modelgate.{key}")
        if raw is not None and re.fullmatch(r"-?\d{1,18}", raw.strip()):
            lineage["seed"] = int(raw)
            break
    if run.tags.get("modelgate.code_dirty") in ("true", "false"):
        lineage["code_dirty"] = run.tags["modelgate.code_dirty"] == "true"
    return lineage


def _number_or_text(value: str) -> Any:
    try:
        number = float(value)
    except ValueError:
        return value
    if number != number or number in (float("inf"), float("-inf")):
        return value
    return int(number) if re.fullmatch(r"-?\d+", value.strip()) else number


def metrics_from_run(run: RunData, dataset: str) -> list[dict[str, Any]]:
    return [
        {"name": k, "value": v, "dataset": dataset}
        for k, v in sorted(run.metrics.items())
        if _METRIC_NAME.match(k) and v == v and v not in (float("inf"), float("-inf"))
    ]


def prepare(
    *, source: str, run_id: str | None, settings: Settings, metric_dataset: str | None
) -> Prepared:
    """Resolve the source and read its run; SourceUnreadable when it cannot be read."""
    tracking = tracking_of(settings)
    storage_uri, source_run = resolve(source, tracking)
    run_id = run_id or source_run
    run = get_run(tracking, run_id) if tracking is not None and run_id else None
    prepared = Prepared(storage_uri=storage_uri, run=run)
    if run is not None:
        prepared.lineage = lineage_from_run(run)
        prepared.metrics = metrics_from_run(run, metric_dataset or DEFAULT_METRIC_DATASET)
    return prepared


def resolve_source(source: str, settings: Settings) -> tuple[str, str | None]:
    """The storage URI of a source (and the run behind it), through the tracking server."""
    return resolve(source, tracking_of(settings))


def create_pending(
    session: Session,
    *,
    actor: Principal,
    name: str,
    source: str,
    run_id: str | None,
    run_link: str | None,
    logged_model_id: str | None,
    description: str,
    tags: dict[str, str],
    prepared: Prepared | None,
    failure: str | None,
    origin: str | None = None,
    imported: dict[str, Any] | None = None,
) -> ModelVersion:
    """The new version, ``PENDING_REGISTRATION`` (or ``FAILED_REGISTRATION`` when the
    source could not even be resolved)."""
    bad = [k for k in tags if not _TAG_KEY.match(k)]
    if bad:
        raise invalid(f"tag keys must be 1-128 letters, digits or _.:/-; not {bad[0]!r}")
    try:
        data = VersionCreate.model_validate(
            {
                "description": description,
                "tags": tags,
                "lineage": prepared.lineage if prepared else {},
                "metrics": prepared.metrics if prepared else [],
            }
        )
    except ValidationError as exc:
        raise invalid(validation_message(exc)) from None
    _, version = registry.create_version(session, actor=actor, model_name=name, data=data)
    repository.add(
        session,
        MlflowVersion(
            version_id=version.id,
            source=source,
            run_id=run_id or (prepared.run.run_id if prepared and prepared.run else None),
            run_link=run_link,
            logged_model_id=logged_model_id,
            status=(Registration.FAILED if failure else Registration.PENDING).value,
            status_message=failure,
            origin=origin,
        ),
    )
    session.flush()
    if imported is not None:
        # In the transaction that creates the version: an import is never recorded
        # without its event, whenever it is interrupted.
        audit.record(
            session, actor=actor, action=AuditAction.VERSION_IMPORTED, model=name,
            version=version.version, details=imported,
        )  # fmt: skip
    return version


def copy_files(
    store: ArtifactStore,
    storage_uri: str,
    settings: Settings,
    progress: Callable[[str, int], None] | None = None,
) -> tuple[StoredObject, list[dict[str, Any]]]:
    """Every file of the model directory into the store; then the manifest (path, sha256,
    size of each file), which becomes the version's artifact."""
    files = list_files(storage_uri, tracking_of(settings), s3_of(settings))
    manifest: list[dict[str, Any]] = []
    for source_file in iter_files(files):
        fileobj = source_file.opener()
        try:
            stored = store_file(store, fileobj, max_bytes=settings.max_artifact_bytes)
        finally:
            fileobj.close()
        manifest.append({"path": source_file.path, "sha256": stored.sha256, "size": stored.size})
        if progress is not None:
            progress(source_file.path, stored.size)
    document = json.dumps({"files": manifest}, sort_keys=True, separators=(",", ":")).encode()
    return store_file(store, io.BytesIO(document)), manifest


def finish(
    session: Session,
    *,
    actor: Principal,
    name: str,
    number: int,
    version_id: int,
    stored: StoredObject | None,
    files: list[dict[str, Any]] | None,
    failure: str | None,
) -> None:
    row = repository.get(session, version_id, for_update=True)
    assert row is not None
    if failure is not None or stored is None:
        row.status = Registration.FAILED.value
        row.status_message = failure or "registration failed"
        return
    artifacts.record_upload(
        session, actor=actor, model_name=name, number=number, stored=stored,
        media_type=MANIFEST_MEDIA_TYPE,
    )  # fmt: skip
    row.files = files
    row.status = Registration.READY.value
    row.status_message = None


def register(
    commit: Callable[[], None],
    session_of: Callable[[], Session],
    *,
    actor: Principal,
    store: ArtifactStore,
    settings: Settings,
    name: str,
    source: str,
    run_id: str | None,
    run_link: str | None,
    logged_model_id: str | None,
    description: str,
    tags: dict[str, str],
    origin: str | None = None,
    imported: dict[str, Any] | None = None,
    metric_dataset: str | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> tuple[int, int]:
    """The whole registration; returns (version number, version row id). ``commit``
    ends the current transaction, ``session_of`` gives the session for the next step."""
    prepared: Prepared | None = None
    failure: str | None = None
    registry.get_model(session_of(), name)  # a missing model fails before any network call
    try:
        prepared = prepare(
            source=source, run_id=run_id, settings=settings, metric_dataset=metric_dataset
        )
    except SourceUnreadable as exc:
        failure = str(exc)
    version = create_pending(
        session_of(), actor=actor, name=name, source=source, run_id=run_id, run_link=run_link,
        logged_model_id=logged_model_id, description=description, tags=tags,
        prepared=prepared, failure=failure, origin=origin, imported=imported,
    )  # fmt: skip
    number, version_id = version.version, version.id
    commit()
    if failure is None and prepared is not None:
        complete(
            commit, session_of, actor=actor, store=store, settings=settings, name=name,
            number=number, version_id=version_id, storage_uri=prepared.storage_uri,
            progress=progress,
        )  # fmt: skip
    return number, version_id


def complete(
    commit: Callable[[], None],
    session_of: Callable[[], Session],
    *,
    actor: Principal,
    store: ArtifactStore,
    settings: Settings,
    name: str,
    number: int,
    version_id: int,
    storage_uri: str,
    progress: Callable[[str, int], None] | None = None,
) -> None:
    """Copy and record a pending version's files (also what a resumed import runs)."""
    stored: StoredObject | None = None
    files: list[dict[str, Any]] | None = None
    failure: str | None = None
    try:
        stored, files = copy_files(store, storage_uri, settings, progress)
    except SourceUnreadable as exc:
        failure = str(exc)
    except AppError as exc:
        failure = f"copying {storage_uri} failed: {exc}"
    except OSError as exc:
        log.warning("copying %s failed", storage_uri, exc_info=True)
        failure = f"copying {storage_uri} failed: {exc}"
    finish(
        session_of(), actor=actor, name=name, number=number, version_id=version_id,
        stored=stored, files=files, failure=failure,
    )  # fmt: skip
    commit()
