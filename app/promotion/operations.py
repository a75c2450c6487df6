"""On-call operations: roll production back, freeze promotions, read the production timeline."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.roles import Principal
from app.db.base import utcnow
from app.errors import RollbackNotPossible, VersionNotFound
from app.pagination import decode_cursor, encode_cursor
from app.promotion import repository
from app.promotion.schemas import FreezeRead, HistoryEntry, RollbackRead
from app.promotion.service import move_to_production
from app.registry import artifacts
from app.registry import service as registry
from app.registry.models import ModelVersion, RegisteredModel, Stage
from app.registry.schemas import Page
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
    model = registry.lock_model(session, model_name)
    current = repository.production_version(session, model.id, for_update=True)
    if current is None:
        raise RollbackNotPossible(f"model {model.name!r} has no production version to roll back")
    if to_version is not None:
        target = repository.version(session, model.id, to_version, for_update=True)
        if target is None:
            raise VersionNotFound(f"model {model.name!r} has no version {to_version}")
        if target.id == current.id:
            raise RollbackNotPossible(f"version {to_version} is already in production")
        if target.stage != Stage.ARCHIVED.value:
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
    now = utcnow()
    # Flagged before it is archived, so that its row is written once.
    current.rolled_back = True
    replaced = move_to_production(
        session,
        actor=actor,
        model=model,
        version=target,
        via="rollback",
        reason=reason,
        details={"rolled_back_version": current.version, "artifact_check": check.detail},
        previous=current,
        archived_reason=f"rolled back to version {target.version}: {reason}",
    )
    assert replaced is not None
    assert replaced.id == current.id
    audit.record(
        session,
        actor=actor,
        action="model.rolled_back",
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
        rolled_back_at=now,
        artifact_check=check.detail,
    )


def freeze(session: Session, *, actor: Principal, model_name: str, reason: str) -> FreezeRead:
    """Refuse promotions to production until unfrozen. Freezing a frozen model changes nothing."""
    model = registry.lock_model(session, model_name)
    if model.frozen_at is None:
        model.frozen_at = utcnow()
        model.frozen_by = actor.name
        model.frozen_reason = reason
        audit.record(session, actor=actor, action="model.frozen", model=model.name, reason=reason)
    return freeze_state(model)


def unfreeze(session: Session, *, actor: Principal, model_name: str, reason: str) -> FreezeRead:
    model = registry.lock_model(session, model_name)
    if model.frozen_at is not None:
        audit.record(
            session,
            actor=actor,
            action="model.unfrozen",
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
    after = decode_cursor(cursor, arity=1, kinds=(int,))
    rows = repository.periods(
        session, model.id, before_id=int(after[0]) if after else None, limit=limit + 1
    )
    page = rows[:limit]
    return Page[HistoryEntry](
        items=[
            HistoryEntry(
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
            for p in page
        ],
        next_cursor=encode_cursor([page[-1].id]) if len(rows) > limit else None,
    )
