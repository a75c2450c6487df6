"""All SQL of serving: revisions, the rows of a plan, aliases and their history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import String, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from app.db.dialect import is_postgres
from app.registry.models import ModelVersion, RegisteredModel, Stage
from app.rollouts.models import ACTIVE_STATES, Rollout
from app.serving.models import AliasMove, ModelAlias, ServingRevision

NOTIFY_CHANNEL = "modelgate_serving"


def revision_of(session: Session, model_name: str) -> tuple[int, int] | None:
    """``(model id, revision)`` of a model (revision 0 before its first change), or None
    when there is no such model: one indexed statement."""
    stmt = (
        select(RegisteredModel.id, func.coalesce(ServingRevision.revision, 0))
        .outerjoin(ServingRevision, ServingRevision.model_id == RegisteredModel.id)
        .where(RegisteredModel.name == model_name)
    )
    row = session.execute(stmt).first()
    return (int(row[0]), int(row[1])) if row is not None else None


def revisions_of(session: Session, model_names: Sequence[str]) -> dict[str, int]:
    """Revision per existing model among ``model_names`` (missing models are left out)."""
    if not model_names:
        return {}
    stmt = (
        select(RegisteredModel.name, func.coalesce(ServingRevision.revision, 0))
        .outerjoin(ServingRevision, ServingRevision.model_id == RegisteredModel.id)
        .where(RegisteredModel.name.in_(list(model_names)))
    )
    return {str(name): int(rev) for name, rev in session.execute(stmt)}


def bump(session: Session, model_id: int, model_name: str, *, now: Any) -> int:
    """Add one to the model's revision and return it; on PostgreSQL, tell every listening
    server process in the same statement (``pg_notify``, delivered when the transaction
    commits). A model's first change creates its row at revision 0 and bumps it like any
    other. The caller holds the model lock, so that insert cannot race."""
    postgres = is_postgres(session)
    statement = _BUMP_NOTIFY if postgres else _BUMP
    params = {"mid": model_id, "now": now}
    if postgres:
        params |= {"channel": NOTIFY_CHANNEL, "name": model_name}
    found = session.execute(statement, params).scalar_one_or_none()
    if found is None:
        session.execute(
            insert(ServingRevision).values(model_id=model_id, revision=0, changed_at=now)
        )
        found = session.execute(statement, params).scalar_one()
    return int(found)


_REVISIONS = ServingRevision.__table__
_BUMP = (
    update(_REVISIONS)  # type: ignore[arg-type]
    .where(_REVISIONS.c.model_id == bindparam("mid"))
    .values(revision=_REVISIONS.c.revision + 1, changed_at=bindparam("now"))
    .returning(_REVISIONS.c.revision)
)
_BUMPED = _BUMP.cte("bumped")
# The payload is "<revision> <model name>" (app/serving/hub.py reads it).
_BUMP_NOTIFY = select(
    _BUMPED.c.revision,
    func.pg_notify(
        bindparam("channel", type_=String()),
        func.concat(_BUMPED.c.revision, " ", bindparam("name", type_=String())),
    ),
)


def plan_versions(session: Session, model_id: int) -> Sequence[ModelVersion]:
    """The versions a plan names: production, every aliased one and the active
    rollout's version."""
    aliased = select(ModelAlias.version_id).where(ModelAlias.model_id == model_id)
    rolling = select(Rollout.version_id).where(
        Rollout.model_id == model_id, Rollout.state.in_(ACTIVE_STATES)
    )
    stmt = (
        select(ModelVersion)
        .where(ModelVersion.model_id == model_id)
        .where(
            or_(
                ModelVersion.stage == Stage.PRODUCTION.value,
                ModelVersion.id.in_(aliased),
                ModelVersion.id.in_(rolling),
            )
        )
        .order_by(ModelVersion.version)
    )
    return session.scalars(stmt).all()


def active_rollout(session: Session, model_id: int) -> Rollout | None:
    """The model's running or paused rollout (at most one: a partial unique index)."""
    stmt = select(Rollout).where(Rollout.model_id == model_id, Rollout.state.in_(ACTIVE_STATES))
    return session.scalars(stmt).first()


# Aliases --------------------------------------------------------------------------------


def aliases(session: Session, model_id: int) -> Sequence[ModelAlias]:
    stmt = select(ModelAlias).where(ModelAlias.model_id == model_id).order_by(ModelAlias.name)
    return session.scalars(stmt).all()


def alias(
    session: Session, model_id: int, name: str, *, for_update: bool = False
) -> ModelAlias | None:
    stmt = select(ModelAlias).where(ModelAlias.model_id == model_id, ModelAlias.name == name)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def aliases_of_versions(session: Session, version_ids: Sequence[int]) -> dict[int, list[str]]:
    """Alias names per version id (for showing aliases on versions)."""
    found: dict[int, list[str]] = {}
    if not version_ids:
        return found
    stmt = (
        select(ModelAlias.version_id, ModelAlias.name)
        .where(ModelAlias.version_id.in_(list(version_ids)))
        .order_by(ModelAlias.name)
    )
    for version_id, name in session.execute(stmt):
        found.setdefault(int(version_id), []).append(str(name))
    return found


def aliases_of_models(session: Session, model_names: Sequence[str]) -> dict[str, dict[str, int]]:
    """``{alias: version number}`` per model name (for lists of models and versions): one
    statement; models without aliases are left out."""
    found: dict[str, dict[str, int]] = {}
    if not model_names:
        return found
    stmt = (
        select(RegisteredModel.name, ModelAlias.name, ModelAlias.version)
        .join(ModelAlias, ModelAlias.model_id == RegisteredModel.id)
        .where(RegisteredModel.name.in_(list(model_names)))
        .order_by(RegisteredModel.name, ModelAlias.name)
    )
    for model, name, version in session.execute(stmt):
        found.setdefault(str(model), {})[str(name)] = int(version)
    return found


def add(session: Session, obj: Any) -> None:
    session.add(obj)


def delete(session: Session, obj: Any) -> None:
    session.delete(obj)


def history(
    session: Session, model_id: int, alias_name: str | None, *, before_id: int | None, limit: int
) -> Sequence[AliasMove]:
    """Moves, newest first."""
    stmt = select(AliasMove).where(AliasMove.model_id == model_id)
    if alias_name is not None:
        stmt = stmt.where(AliasMove.alias == alias_name)
    if before_id is not None:
        stmt = stmt.where(AliasMove.id < before_id)
    return session.scalars(stmt.order_by(AliasMove.id.desc()).limit(limit)).all()


def moves_until(session: Session, model_id: int, at: Any) -> Sequence[AliasMove]:
    """Every alias move of the model up to ``at`` (inclusive), oldest first."""
    stmt = (
        select(AliasMove)
        .where(AliasMove.model_id == model_id, AliasMove.occurred_at <= at)
        .order_by(AliasMove.id)
    )
    return session.scalars(stmt).all()


def production_spans(
    session: Session, model_id: int, *, ended_after: datetime
) -> Sequence[tuple[int, datetime, datetime | None]]:
    """``(version, started_at, ended_at)`` of the model's production periods still open or
    ended after ``ended_after``: which version served production when."""
    from app.promotion.models import ProductionPeriod

    stmt = select(
        ProductionPeriod.version, ProductionPeriod.started_at, ProductionPeriod.ended_at
    ).where(
        ProductionPeriod.model_id == model_id,
        or_(ProductionPeriod.ended_at.is_(None), ProductionPeriod.ended_at >= ended_after),
    )
    return [(v, s, e) for v, s, e in session.execute(stmt).all()]


def recent_rollout_versions(session: Session, model_id: int, *, ended_after: datetime) -> set[int]:
    """The versions of the model's active rollouts and of those that ended after
    ``ended_after`` (candidate and incumbent): observations for them are still taken."""
    stmt = select(Rollout.version, Rollout.incumbent_version).where(
        Rollout.model_id == model_id,
        (Rollout.state.in_(ACTIVE_STATES)) | (Rollout.ended_at >= ended_after),
    )
    out: set[int] = set()
    for version, incumbent in session.execute(stmt).all():
        out.add(int(version))
        if incumbent is not None:
            out.add(int(incumbent))
    return out
