"""The serving plan: its revision, bumped in the transaction of every change that affects
serving, and the plan itself as serving code reads it.

A change calls :func:`bump_revision` while it holds the model's row lock; the new
revision is announced to the server processes when (and only if) the transaction
commits: by ``NOTIFY`` on PostgreSQL, by the local hubs' after-commit wake-up and the
other processes' short poll on SQLite (``app/serving/hub.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

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
    revision = repository.bump(session, model.id, model.name, now=utcnow())
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


@dataclass(frozen=True)
class Reportable:
    """Which versions serving may report observations on, read once per batch: those the
    plan names now (production, alias targets, the active rollout's version), those of a
    rollout that ended within ``grace`` (routers still on the previous plan), and, for an
    observation's own time, the version that held production then (until ``grace`` after
    it left: routers drain their batches after a plan changes, backfills arrive late)."""

    named: frozenset[int]
    spans: Sequence[tuple[int, datetime, datetime | None]]
    grace: timedelta
    rollout_active: bool

    def covers(self, version: int, at: datetime) -> bool:
        if version in self.named:
            return True
        return any(
            number == version and started <= at and (ended is None or at <= ended + self.grace)
            for number, started, ended in self.spans
        )


def reportable_versions(
    session: Session, *, model_id: int, now: datetime, grace: timedelta, oldest: datetime
) -> Reportable:
    """The versions observations may name (see :class:`Reportable`); production periods
    are read back to ``oldest``, the oldest observation time the caller accepts."""
    named = {v.version for v in repository.plan_versions(session, model_id)}
    named |= repository.recent_rollout_versions(session, model_id, ended_after=now - grace)
    spans = repository.production_spans(session, model_id, ended_after=oldest)
    return Reportable(
        named=frozenset(named),
        spans=spans,
        grace=grace,
        rollout_active=repository.active_rollout(session, model_id) is not None,
    )


def locked_alias(session: Session, *, model_id: int, name: str) -> ModelAlias | None:
    """The alias row, locked (None: the alias is not set)."""
    return repository.alias(session, model_id, name, for_update=True)
