"""``modelgate import mlflow``: copy an MLflow registry into Modelgate.

Models, then their versions in MLflow's order, each with its files copied into the
content-addressed store and hashed, its description, tags, run metrics and parameters
(as lineage), and its stage (through the gates, like any promotion). Each version is
committed on its own and remembered by its origin (``<tracking uri>#<model>/<version>``),
so a second run imports nothing twice, and an interrupted run resumes where it stopped:
a version left ``PENDING_REGISTRATION`` or ``FAILED_REGISTRATION`` is copied again.
Runs server-side, with the server's ``MODELGATE_*`` settings (database and store).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from app.auth.roles import Principal, Role
from app.errors import AppError, ModelNotFound
from app.mlflow import registration, repository
from app.mlflow import service as mlflow_service
from app.mlflow.errors import MlflowApiError
from app.mlflow.models import Registration
from app.mlflow.sources import SourceUnreadable, Tracking
from app.promotion import operations, requests
from app.promotion.schemas import PromotionCreate
from app.registry import service as registry
from app.registry.models import Stage
from app.registry.schemas import ModelCreate
from app.serving import aliases as serving_aliases
from app.settings import Settings
from app.storage.base import ArtifactStore

IMPORTER = Principal(name="import:mlflow", role=Role.ADMIN)


@dataclass
class Tally:
    imported: int = 0
    resumed: int = 0
    skipped: int = 0
    failed: int = 0
    models_created: int = 0
    aliases_set: int = 0


def _pages(tracking: Tracking, path: str, key: str, params: dict[str, Any]) -> Iterator[Any]:
    token: str | None = None
    while True:
        query = dict(params, **({"page_token": token} if token else {}))
        data = tracking.get_json(path, query)
        yield from data.get(key, []) or []
        token = data.get("next_page_token")
        if not token:
            return


def _iso(ms: Any) -> str | None:
    try:
        return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).isoformat()
    except (TypeError, ValueError):
        return None


def run_import(
    *,
    settings: Settings,
    session_factory: Callable[[], Session],
    store: ArtifactStore,
    tracking_uri: str,
    model: str | None,
    echo: Callable[[str], None],
) -> Tally:
    """Import one model (``model``) or every model of the MLflow registry."""
    tracking = Tracking(tracking_uri.rstrip("/"))
    source_settings = settings.model_copy(update={"mlflow_tracking_uri": tracking.uri})
    if model is not None:
        found = tracking.get_json("/api/2.0/mlflow/registered-models/get", {"name": model})
        models = [found["registered_model"]]
    else:
        models = list(
            _pages(tracking, "/api/2.0/mlflow/registered-models/search", "registered_models",
                   {"max_results": 1000})
        )  # fmt: skip
    tally = Tally()
    echo(f"{len(models)} model(s) at {tracking.uri}")
    for index, entry in enumerate(models, 1):
        name = entry["name"]
        versions = sorted(
            _pages(tracking, "/api/2.0/mlflow/model-versions/search", "model_versions",
                   {"filter": f"name='{name}'", "max_results": 10_000}),
            key=lambda v: int(v["version"]),
        )  # fmt: skip
        echo(f"[{index}/{len(models)}] {name}: {len(versions)} version(s)")
        with session_factory() as session:
            _ensure_model(session, entry, tally, echo)
            session.commit()
            for position, mv in enumerate(versions, 1):
                label = f"  {name} v{mv['version']} ({position}/{len(versions)})"
                try:
                    _import_version(
                        session, store, source_settings, tracking, name, mv, tally, label, echo
                    )
                except (AppError, SourceUnreadable) as exc:
                    session.rollback()
                    tally.failed += 1
                    echo(f"{label}: failed: {exc}")
            _apply_aliases(session, store, tracking, name, entry, tally, echo)
    echo(
        f"done: {tally.imported} imported, {tally.resumed} resumed, "
        f"{tally.skipped} already imported (skipped), {tally.failed} failed; "
        f"{tally.models_created} model(s) created, {tally.aliases_set} alias(es) set"
    )
    return tally


def _ensure_model(
    session: Session, entry: dict[str, Any], tally: Tally, echo: Callable[[str], None]
) -> None:
    name = mlflow_service.check_name(entry["name"])
    try:
        registry.get_model(session, name)
        return
    except ModelNotFound:
        pass
    tags = {t["key"]: str(t.get("value", "")) for t in entry.get("tags", []) or []}
    registry.create_model(
        session,
        actor=IMPORTER,
        data=ModelCreate(name=name, description=entry.get("description") or "", tags=tags),
    )
    tally.models_created += 1
    echo(f"  created model {name}")


def _import_version(
    session: Session,
    store: ArtifactStore,
    settings: Settings,
    tracking: Tracking,
    name: str,
    mv: dict[str, Any],
    tally: Tally,
    label: str,
    echo: Callable[[str], None],
) -> None:
    origin = f"{tracking.uri}#{name}/{mv['version']}"
    files = 0
    size = 0

    def progress(_path: str, n: int) -> None:
        nonlocal files, size
        files += 1
        size += n

    found = repository.by_origin(session, origin)
    session.commit()
    if found is not None:
        row, number = found
        if row.status == Registration.READY.value:
            tally.skipped += 1
            echo(f"{label}: already imported as version {number}, skipped")
            return
        storage_uri, _ = registration.resolve_source(row.source, settings)
        registration.complete(
            session.commit, lambda: session, actor=IMPORTER, store=store, settings=settings,
            name=name, number=number, version_id=row.version_id, storage_uri=storage_uri,
            progress=progress,
        )  # fmt: skip
        tally.resumed += 1
        echo(f"{label}: resumed as version {number}: {_status(session, row.version_id)}")
        return
    tags = {t["key"]: str(t.get("value", "")) for t in mv.get("tags", []) or []}
    tags["mlflow.original_version"] = str(mv["version"])
    number, version_id = registration.register(
        session.commit, lambda: session, actor=IMPORTER, store=store, settings=settings,
        name=name, source=mv.get("source") or "", run_id=mv.get("run_id") or None,
        run_link=mv.get("run_link") or None, logged_model_id=mv.get("model_id") or None,
        description=mv.get("description") or "", tags=tags, origin=origin,
        imported={
            "origin": origin,
            "original_version": str(mv["version"]),
            "original_created_at": _iso(mv.get("creation_timestamp")),
            "original_creator": mv.get("user_id") or None,
            "original_stage": mv.get("current_stage"),
            "source": mv.get("source"),
            "run_id": mv.get("run_id") or None,
        },
        progress=progress,
    )  # fmt: skip
    status = _status(session, version_id)
    tally.imported += 1
    echo(f"{label}: imported as version {number}, {files} file(s), {size} bytes: {status}")
    if status == Registration.READY.value:
        _apply_stage(session, store, name, number, mv.get("current_stage"), label, echo)


def _status(session: Session, version_id: int) -> str:
    row = repository.get(session, version_id)
    session.commit()
    if row is None:
        return "missing"
    return row.status + (f" ({row.status_message})" if row.status_message else "")


def _apply_stage(
    session: Session,
    store: ArtifactStore,
    name: str,
    number: int,
    stage: Any,
    label: str,
    echo: Callable[[str], None],
) -> None:
    """The MLflow stage, reached the Modelgate way: archive, or promotion through the gates."""
    target = mlflow_service.stage_of(str(stage or "None"))
    if target in (None, Stage.CANDIDATE):
        return
    try:
        if target is Stage.ARCHIVED:
            operations.archive(
                session, actor=IMPORTER, model_name=name, number=number,
                reason="imported from MLflow as Archived",
            )  # fmt: skip
            session.commit()
            echo(f"{label}: archived, as in MLflow")
            return
        steps = [Stage.STAGING, Stage.PRODUCTION] if target is Stage.PRODUCTION else [target]
        for step in steps:
            request = requests.request_promotion(
                session, actor=IMPORTER, store=store, model_name=name,
                data=PromotionCreate(version=number, target=step,
                                     comment=f"imported from MLflow ({stage})"),
            )  # fmt: skip
            session.commit()
            if request.status.value != "applied":
                echo(
                    f"{label}: MLflow stage {stage}: promotion request {request.id} to "
                    f"{step.value} is {request.status.value}"
                    + (f" ({', '.join(request.report.failed)})" if request.report.failed else "")
                )
                return
        echo(f"{label}: promoted to {target.value}, as in MLflow")
    except AppError as exc:
        session.rollback()
        echo(f"{label}: MLflow stage {stage} not applied: {exc}")


def _apply_aliases(
    session: Session,
    store: ArtifactStore,
    tracking: Tracking,
    name: str,
    entry: dict[str, Any],
    tally: Tally,
    echo: Callable[[str], None],
) -> None:
    """The model's MLflow aliases, pointed at the imported versions through the alias
    service (audited, a serving revision each). An alias Modelgate already has is left
    as it is: after the first import, Modelgate owns it."""
    for item in entry.get("aliases") or []:
        alias, original = str(item.get("alias", "")), str(item.get("version", ""))
        label = f"  {name}@{alias} (MLflow version {original})"
        found = repository.by_origin(session, f"{tracking.uri}#{name}/{original}")
        if found is None or found[0].status != Registration.READY.value:
            session.commit()
            echo(f"{label}: not set: that version was not imported")
            continue
        number = found[1]
        try:
            mlflow_service.modelgate_alias(mlflow_service.alias_name(alias))
            existing = {a.name: a.version for a in serving_aliases.list_aliases(
                session, model_name=name)}  # fmt: skip
            if alias in existing:
                session.commit()
                echo(f"{label}: already set (version {existing[alias]}), left as it is")
                continue
            serving_aliases.set_alias(
                session, actor=IMPORTER, model_name=name, alias=alias, version=number,
                reason=f"imported from MLflow ({name}@{alias} -> version {original})",
                store=store,
            )  # fmt: skip
            session.commit()
        except (AppError, MlflowApiError) as exc:
            session.rollback()
            echo(f"{label}: not set: {exc}")
            continue
        tally.aliases_set += 1
        echo(f"{label}: set to version {number}, as in MLflow")
