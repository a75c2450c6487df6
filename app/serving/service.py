"""The serving plan: its revision, bumped in the transaction of every change that affects
serving, and the plan itself as serving code reads it.

A change calls :func:`bump_revision` while it holds the model's row lock; the new
revision is announced to the server processes when (and only if) the transaction
commits: by ``NOTIFY`` on PostgreSQL, by the local hubs' after-commit wake-up and the
other processes' short poll on SQLite (``app/serving/hub.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.errors import ModelNotFound
from app.registry.models import ModelVersion, RegisteredModel, Stage
from app.serving import hub, repository
from app.serving.models import ModelAlias
from app.serving.schemas import (
    PlanAlias,
    PlanArtifact,
    PlanRoute,
    PlanShadow,
    PlanVersion,
    ServingPlan,
)


def bump_revision(session: Session, *, model: RegisteredModel) -> int:
    """Add one to the model's serving revision and announce it after the commit. The
    caller holds the model's row lock (every pointer move does)."""
    revision = repository.bump(session, model.id, now=utcnow())
    if session.get_bind().dialect.name == "postgresql":
        repository.notify(session, model.name, revision)
    hub.announce_after_commit(session, model.name, revision)
    return revision


def current_revision(session: Session, *, model_name: str) -> int:
    """The model's serving revision (0 before its first change): one indexed read."""
    found = repository.revision_of(session, model_name)
    if found is None:
        raise ModelNotFound(f"no model named {model_name!r}")
    return found[1]


def current_revisions(session: Session, *, model_names: Sequence[str]) -> dict[str, int]:
    """Revisions of several models; ModelNotFound names the first that does not exist."""
    found = repository.revisions_of(session, model_names)
    for name in model_names:
        if name not in found:
            raise ModelNotFound(f"no model named {name!r}")
    return found


def _artifact(model_name: str, version: ModelVersion) -> PlanArtifact:
    return PlanArtifact(
        sha256=version.artifact_sha256,
        size=version.artifact_size,
        media_type=version.artifact_media_type,
        download_path=f"/api/v1/models/{model_name}/versions/{version.version}/artifact",
    )


def _plan_version(model_name: str, version: ModelVersion) -> PlanVersion:
    return PlanVersion(
        version=version.version, stage=Stage(version.stage), artifact=_artifact(model_name, version)
    )


def get_plan(session: Session, *, model_name: str) -> ServingPlan:
    """The model's plan now. The revision is read before the rows: a change committed in
    between shows in the rows under the older revision, so a watcher sees the newer
    revision again later (never an older plan under a newer revision)."""
    found = repository.revision_of(session, model_name)
    if found is None:
        raise ModelNotFound(f"no model named {model_name!r}")
    model_id, revision = found
    versions = {v.id: v for v in repository.plan_versions(session, model_id)}
    production = next((v for v in versions.values() if v.stage == Stage.PRODUCTION.value), None)
    routes: list[PlanRoute] = []
    shadows: list[PlanShadow] = []
    rollout = repository.active_rollout(session, model_id)
    candidate = versions.get(rollout.version_id) if rollout is not None else None
    if production is not None:
        base = _plan_version(model_name, production)
        weight = rollout.weight if rollout is not None and candidate is not None else 0.0
        if weight < 100:
            routes.append(PlanRoute(**base.model_dump(), weight=100.0 - weight))
        if candidate is not None and weight > 0:
            routes.append(
                PlanRoute(**_plan_version(model_name, candidate).model_dump(), weight=weight)
            )
        if rollout is not None and candidate is not None and rollout.share > 0:
            shadows.append(
                PlanShadow(**_plan_version(model_name, candidate).model_dump(), share=rollout.share)
            )
    aliases = [
        PlanAlias(name=a.name, **_plan_version(model_name, versions[a.version_id]).model_dump())
        for a in repository.aliases(session, model_id)
        if a.version_id in versions
    ]
    return ServingPlan(
        model=model_name,
        revision=revision,
        production=_plan_version(model_name, production) if production is not None else None,
        routes=routes,
        shadows=shadows,
        aliases=aliases,
    )


def plan_version_numbers(session: Session, *, model_id: int) -> set[int]:
    """The version numbers the model's plan names now (production, alias targets, the
    active rollout's version)."""
    return {v.version for v in repository.plan_versions(session, model_id)}


def production_spans(
    session: Session, *, model_id: int, ended_after: datetime
) -> Sequence[tuple[int, datetime, datetime | None]]:
    """Which version held production when: periods open or ended after ``ended_after``."""
    return repository.production_spans(session, model_id, ended_after=ended_after)


def locked_alias(session: Session, *, model_id: int, name: str) -> ModelAlias | None:
    """The alias row, locked (None: the alias is not set)."""
    return repository.alias(session, model_id, name, for_update=True)
