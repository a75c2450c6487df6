"""Transitions outside promotion requests: archive a version, roll production back,
freeze promotions; and the production timeline.

Archive and rollback move a stage through the transition core
(:mod:`app.promotion.transitions`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy.orm import Session

from app import pagination
from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.roles import Principal
from app.db.base import utcnow
from app.errors import RollbackNotPossible, TransitionNotAllowed, VersionNotFound
from app.promotion import repository, transitions
from app.promotion.models import ProductionPeriod
from app.promotion.requests import supersede_others
from app.promotion.schemas import (
    FreezeRead,
    HistoryEntry,
    PointersAt,
    RollbackRead,
    StagesAt,
)
from app.promotion.transitions import Loaded, Move, StagePointer
from app.registry import artifacts
from app.registry import service as registry
from app.registry.models import ModelVersion, RegisteredModel, Stage
from app.registry.schemas import Page
from app.serving import aliases as serving_aliases
from app.storage.base import ArtifactStore


def _previous_stable(
    session: Session, model: RegisteredModel, current: ModelVersion
) -> ModelVersion | None:
    """``M_{t-1}``: the latest version that served before the current one and was not
    itself rolled back (one statement: the newest production period of an archived
    version, other than the current one, that was not rolled back)."""
    return repository.previous_stable(session, model.id, current.version)


def rollback(
    session: Session,
    *,
    actor: Principal,
    store: ArtifactStore,
    model_name: str,
    to_version: int | None,
    reason: str,
    deep_check: bool = False,
) -> RollbackRead:
    """Put the previous stable version (or ``to_version``) back into production.

    Nothing changes unless the target's artifact is present and intact in the store. The
    version rolled back from is archived, flagged ``rolled_back`` and never again picked
    as an automatic rollback target. Works while the model is frozen."""
    model, current = transitions.load_production(session, model_name=model_name)
    if current is None:
        raise RollbackNotPossible(f"model {model.name!r} has no production version to roll back")
    if to_version is not None:
        target = repository.version(session, model.id, to_version, for_update=True)
        if target is None:
            raise VersionNotFound(f"model {model.name!r} has no version {to_version}")
        if target.id == current.id:
            raise RollbackNotPossible(f"version {to_version} is already in production")
        if target.stage is not Stage.ARCHIVED:
            raise RollbackNotPossible(
                f"version {to_version} is in {target.stage}; rollback restores an archived "
                "version that served before (promote candidates and staging versions instead)"
            )
    else:
        found = _previous_stable(session, model, current)
        if found is None:
            raise RollbackNotPossible(
                f"model {model.name!r} has no earlier production version to roll back to "
                f"(version {current.version} is the first, or every earlier one was rolled back)"
            )
        target = found
    if target.artifact_key is None or target.artifact_sha256 is None:
        raise RollbackNotPossible(
            f"version {target.version} has no artifact; nothing changed",
            target_version=target.version,
        )
    check = artifacts.verify_version(
        session,
        actor=actor,
        store=store,
        model=model,
        version=target,
        rehash=deep_check,
        via="rollback",
    )
    assert check is not None
    if not check.intact:
        raise RollbackNotPossible(
            f"the artifact of version {target.version} is not intact in storage "
            f"({check.detail}); nothing changed",
            target_version=target.version,
            artifact_check=check.detail,
        )
    # Flagged before it is archived, so that its row is written once.
    current.rolled_back = True
    # An archived version has no pending requests (they were superseded when it moved).
    loaded = Loaded(model=model, version=target, holder=current, pending=(), policy=None)
    moved = transitions.move(
        session,
        actor=actor,
        loaded=loaded,
        change=Move(
            pointer=StagePointer(Stage.PRODUCTION),
            version=target,
            via="rollback",
            reason=reason,
            details={"rolled_back_version": current.version, "artifact_check": check.detail},
            archived_reason=f"rolled back to version {target.version}: {reason}",
        ),
    )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.MODEL_ROLLED_BACK,
        model=model.name,
        version=target.version,
        from_stage=Stage.ARCHIVED.value,
        to_stage=Stage.PRODUCTION.value,
        reason=reason,
        details={
            "from_version": current.version,
            "to_version": target.version,
            "automatic_target": to_version is None,
            "artifact_check": check.detail,
        },
    )
    return RollbackRead(
        model=model.name,
        serving_version=target.version,
        replaced_version=current.version,
        reason=reason,
        rolled_back_by=actor.name,
        rolled_back_at=moved.at,
        artifact_check=check.detail,
    )


def archive(
    session: Session, *, actor: Principal, model_name: str, number: int, reason: str | None
) -> ModelVersion:
    """Retire a candidate or staging version. Production leaves only by replacement or
    rollback, so that a model is never left without production by accident."""
    loaded = transitions.load(
        session, model_name=model_name, number=number, target=Stage.ARCHIVED,
        with_pending=False, with_policy=False, with_metrics=True,
    )  # fmt: skip
    version = loaded.version
    current = version.stage
    if current is Stage.ARCHIVED:
        return version
    if current is Stage.PRODUCTION:
        raise TransitionNotAllowed(
            f"version {number} is in production; promote another version or roll back "
            "instead of archiving it",
            current_stage=current.value,
            allowed=[],
        )
    # Its pending requests are read (and locked) only once it is known to move.
    loaded = replace(loaded, pending=repository.pending_for_version(session, version.id))
    transitions.move(
        session,
        actor=actor,
        loaded=loaded,
        change=Move(pointer=StagePointer(Stage.ARCHIVED), version=version, via="archive",
                    reason=reason),
    )  # fmt: skip
    supersede_others(session, actor=actor, loaded=loaded, keep=None)
    return version


def freeze(session: Session, *, actor: Principal, model_name: str, reason: str) -> FreezeRead:
    """Refuse promotions to production until unfrozen.

    Freezing a frozen model again with the same reason changes nothing; with another
    reason it keeps the freeze (and when it began) and records the new reason and who gave
    it, audited as ``model.freeze_updated`` with the previous ones."""
    model = registry.lock_model(session, model_name)
    if model.frozen_at is None:
        model.frozen_at = utcnow()
        model.frozen_by = actor.name
        model.frozen_reason = reason
        audit.record(
            session, actor=actor, action=AuditAction.MODEL_FROZEN, model=model.name, reason=reason
        )
    elif model.frozen_reason != reason:
        audit.record(
            session,
            actor=actor,
            action=AuditAction.MODEL_FREEZE_UPDATED,
            model=model.name,
            reason=reason,
            details={"previous_reason": model.frozen_reason,
                     "previous_frozen_by": model.frozen_by,
                     "frozen_at": model.frozen_at.isoformat()},
        )  # fmt: skip
        model.frozen_by = actor.name
        model.frozen_reason = reason
    return freeze_state(model)


def unfreeze(session: Session, *, actor: Principal, model_name: str, reason: str) -> FreezeRead:
    model = registry.lock_model(session, model_name)
    if model.frozen_at is not None:
        audit.record(
            session,
            actor=actor,
            action=AuditAction.MODEL_UNFROZEN,
            model=model.name,
            reason=reason,
            details={"frozen_by": model.frozen_by, "frozen_reason": model.frozen_reason,
                     "frozen_at": model.frozen_at.isoformat()},
        )  # fmt: skip
        model.frozen_at = None
        model.frozen_by = None
        model.frozen_reason = None
    return freeze_state(model)


def freeze_state(model: RegisteredModel) -> FreezeRead:
    return FreezeRead(
        model=model.name,
        frozen=model.frozen_at is not None,
        frozen_at=model.frozen_at,
        frozen_by=model.frozen_by,
        reason=model.frozen_reason,
    )


def history(
    session: Session, *, model_name: str, cursor: str | None, limit: int
) -> Page[HistoryEntry]:
    """The production timeline, newest first: which version served when, and why."""
    model = registry.get_model(session, model_name)
    rows = repository.periods(
        session, model.id, before_id=pagination.after(cursor, int), limit=limit + 1
    )
    page, next_cursor = pagination.split_page(rows, limit, lambda p: [p.id])
    return Page[HistoryEntry](items=[_entry(p) for p in page], next_cursor=next_cursor)


def _entry(p: ProductionPeriod) -> HistoryEntry:
    return HistoryEntry(
        version=p.version,
        started_at=p.started_at,
        ended_at=p.ended_at,
        via=p.via,
        actor=p.actor,
        reason=p.reason,
        promotion_id=p.promotion_id,
        replaced_version=p.replaced_version,
        ended_by=p.ended_by,
    )


def pointers_at(session: Session, *, model_name: str, at: datetime) -> PointersAt:
    """What the model's pointers held at ``at``: the production period that covered it
    (the production timeline), each version's stage (the stage moves in the audit log,
    which every move records with its time) and each alias (the alias history).

    A time after now is answered as of now (what will serve then is not known yet): the
    answer's ``at`` is the server's time, the latest the history can tell (decision 0025)."""
    at = min(at, utcnow())
    model = registry.get_model(session, model_name)
    period = repository.period_at(session, model.id, at)
    moved = audit.stages_at(session, model=model.name, at=at)
    stages: dict[str, list[int]] = {s.value: [] for s in Stage}
    for number in repository.versions_created_by(session, model.id, at):
        stages[moved.get(number, Stage.CANDIDATE.value)].append(number)
    return PointersAt(
        model=model.name,
        at=at,
        production=_entry(period) if period is not None else None,
        stages=StagesAt(**stages),
        aliases=serving_aliases.aliases_at(session, model=model, at=at),
    )
