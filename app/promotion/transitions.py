"""The transition core: the one path by which a model's pointers move.

A *pointer* names what a version can hold: today a stage (:class:`StagePointer`); an
alias and a rollout weight plug in beside it as further members of :data:`Pointer`.
Every operation that moves a pointer (a promotion applied, an archive, a rollback, the
production version replaced) goes through three steps, in this order:

1. :func:`load` locks and reads, once and in the lock order every writer follows, all a
   move needs: the model row (locked), the version (locked), the current holder of the
   target (the production version, locked in the same statement as the version when the
   target is production), the version's pending promotion requests (locked) and the
   policy in force. It returns a frozen :class:`Loaded`.
2. A check: :func:`check_promotion` for moves asked for by a promotion request (allowed
   stage moves, the policy's ``require_staging``, a freeze), or the operation's own
   rules (archive: not from production; rollback: to an archived version with an intact
   artifact).
3. :func:`move`: the only code that changes where a pointer points. For a stage it writes
   ``stage``, ``stage_changed_at``, ``updated_at`` and ``metrics.stage`` (through
   :func:`app.promotion.repository.set_stage`, at once and in order), hands the production
   period over, makes the replaced
   production version leave before the new one arrives (*exactly one production version
   per model*: :func:`_replace_production`; the partial unique index
   ``uq_model_versions_one_production`` is the backstop), records the audit event, and
   ends with :func:`on_pointer_moved`, the named publish step: whatever follows pointers
   (the serving plan's revision) is told there, in the same transaction.

The audit events recorded by :func:`move` are published by
:func:`app.audit.service.record` (outbox row for webhooks, metrics after the commit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.roles import Principal
from app.db.base import utcnow
from app.errors import (
    Conflict,
    ModelFrozen,
    RolloutInProgress,
    RolloutRequired,
    TransitionNotAllowed,
    VersionNotFound,
)
from app.promotion import repository
from app.promotion.models import PromotionRequest
from app.promotion.policy import PolicyInForce, in_force
from app.registry import service as registry
from app.registry.models import ModelVersion, RegisteredModel, Stage
from app.rollouts import repository as rollouts_repository
from app.serving import aliases as serving_aliases
from app.serving import service as serving

ALLOWED_MOVES: dict[Stage, tuple[Stage, ...]] = {
    Stage.CANDIDATE: (Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED),
    Stage.STAGING: (Stage.PRODUCTION, Stage.ARCHIVED),
    Stage.PRODUCTION: (),
    Stage.ARCHIVED: (),
}


@dataclass(frozen=True)
class StagePointer:
    """A version's stage. Production is exclusive (one holder per model); the others
    hold any number of versions."""

    stage: Stage
    kind: Literal["stage"] = "stage"

    @property
    def exclusive(self) -> bool:
        return self.stage is Stage.PRODUCTION

    @property
    def affects_serving(self) -> bool:
        """Whether moving it changes the serving plan (only production does)."""
        return self.stage is Stage.PRODUCTION


@dataclass(frozen=True)
class AliasPointer:
    """A named alias of the model (``champion``, ``challenger``): one version at a time;
    ``remove`` takes the alias away from the version it points at."""

    name: str
    remove: bool = False
    kind: Literal["alias"] = "alias"

    @property
    def exclusive(self) -> bool:
        return False

    @property
    def affects_serving(self) -> bool:
        return True


@dataclass(frozen=True)
class RolloutPointer:
    """A rollout's share of the model's traffic: ``weight`` percent of the requests
    answered by the rollout's version (``share`` percent also scored by it as a shadow).
    The caller has written them on the rollout row; the move audits them with ``action``
    (a ``ROLLOUT_*`` member) and bumps the serving revision."""

    rollout_id: int
    action: AuditAction
    weight: float
    share: float = 0.0
    kind: Literal["rollout"] = "rollout"

    @property
    def exclusive(self) -> bool:
        return False

    @property
    def affects_serving(self) -> bool:
        return True


Pointer = StagePointer | AliasPointer | RolloutPointer
"""Everything a version can hold: a stage, an alias, a rollout's weight."""


@dataclass(frozen=True)
class Loaded:
    """What a move needs, read once under the model's lock (see :func:`load`)."""

    model: RegisteredModel
    version: ModelVersion
    holder: ModelVersion | None
    """The production version, locked, when the target is production and another version
    holds it; ``None`` otherwise."""
    pending: Sequence[PromotionRequest]
    """The version's pending promotion requests, locked."""
    policy: PolicyInForce | None
    """The policy in force (``None`` when the operation does not consult it)."""


@dataclass(frozen=True)
class Move:
    """One move of ``pointer`` to ``version``, and what its audit event says."""

    pointer: Pointer
    version: ModelVersion
    via: Literal["promotion", "rollback", "archive", "alias", "rollout"]
    reason: str | None
    promotion_id: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    archived_reason: str | None = None
    """Why the replaced production version was archived (default: "replaced by ...")."""


@dataclass(frozen=True)
class Moved:
    """What a move changed."""

    move: Move
    model: RegisteredModel
    from_stage: Stage
    replaced: ModelVersion | None
    at: datetime
    from_version: int | None = None
    """For an alias: the version it pointed at before (None: it did not exist)."""


# 1. Load ------------------------------------------------------------------------------


def load(
    session: Session,
    *,
    model_name: str,
    number: int,
    target: Stage,
    with_pending: bool = True,
    with_policy: bool = True,
    with_metrics: bool = False,
) -> Loaded:
    """Lock the model, then the version (with production in the same statement when the
    target is production), then the version's pending requests; read the policy in force.

    ``with_metrics`` loads the version's metrics and evidence for its representation
    (an archive answers with the version)."""
    model = registry.lock_model(session, model_name)
    holder: ModelVersion | None = None
    version: ModelVersion | None
    if target is Stage.PRODUCTION:
        version, holder = repository.version_and_production(session, model.id, number)
    elif with_metrics:
        version = registry.version_for_update(session, model.id, number)
    else:
        version = repository.version(session, model.id, number, for_update=True)
    if version is None:
        raise VersionNotFound(f"model {model_name!r} has no version {number}")
    if holder is not None and holder.id == version.id:
        holder = None
    pending = repository.pending_for_version(session, version.id) if with_pending else ()
    policy = in_force(session, model) if with_policy else None
    return Loaded(model=model, version=version, holder=holder, pending=pending, policy=policy)


def load_for_alias(session: Session, *, model_name: str, number: int) -> Loaded:
    """Lock the model, then the version an alias is to point at; read the policy in force
    (an alias may have gates and approvals of its own)."""
    model = registry.lock_model(session, model_name)
    version = repository.version(session, model.id, number, for_update=True)
    if version is None:
        raise VersionNotFound(f"model {model_name!r} has no version {number}")
    return Loaded(model=model, version=version, holder=None, pending=(),
                  policy=in_force(session, model))  # fmt: skip


def load_for_rollout(session: Session, *, model_name: str, number: int) -> Loaded:
    """Lock the model, then the rollout's version and the production version (one
    statement), then the version's pending requests; read the policy in force. A rollout's
    every move (a weight, completion to production) starts here."""
    return load(session, model_name=model_name, number=number, target=Stage.PRODUCTION)


def load_production(
    session: Session, *, model_name: str
) -> tuple[RegisteredModel, ModelVersion | None]:
    """The model locked, then its production version locked (a rollback's first reads)."""
    model = registry.lock_model(session, model_name)
    return model, repository.production_version(session, model.id, for_update=True)


# 2. Check -----------------------------------------------------------------------------


def allowed_moves(current: Stage, policy: PolicyInForce) -> list[Stage]:
    moves = list(ALLOWED_MOVES[current])
    if current is Stage.CANDIDATE and policy.document.production.require_staging:
        moves.remove(Stage.PRODUCTION)
    return moves


def check_promotion(loaded: Loaded, target: Stage) -> None:
    """Whether a promotion request may move the version to ``target`` now: an allowed
    stage move under the policy in force, and no freeze when the target is production."""
    model, version = loaded.model, loaded.version
    assert loaded.policy is not None
    current = version.stage
    moves = allowed_moves(current, loaded.policy)
    if target not in moves:
        raise _not_allowed(model, version, current, target, moves)
    if target is Stage.PRODUCTION:
        ensure_not_frozen(model)
        if loaded.policy.document.production.require_rollout:
            raise RolloutRequired(
                f"the policy of model {model.name!r} requires a rollout for production: "
                f"POST /api/v1/models/{model.name}/rollouts with "
                f'{{"version": {version.version}, "strategy": "canary", "steps": [...]}}'
            )


def ensure_no_rollout(session: Session, model: RegisteredModel) -> None:
    """Production moves by promotion wait while a rollout of the model is running or
    paused (its completion is the move); rollback still works (the rollout then aborts)."""
    active = rollouts_repository.active(session, model.id)
    if active is not None:
        raise RolloutInProgress(
            f"rollout {active.id} of version {active.version} is {active.state} on model "
            f"{model.name!r}: production changes by its completion, or abort it first",
            rollout_id=active.id,
        )


def _not_allowed(
    model: RegisteredModel, version: ModelVersion, current: Stage, target: Stage,
    moves: list[Stage],
) -> TransitionNotAllowed:  # fmt: skip
    allowed = ", ".join(m.value for m in moves) or "none"
    if current is target:
        detail = f"version {version.version} is already in {target.value}"
    elif current is Stage.ARCHIVED:
        detail = (
            f"version {version.version} is archived; an archived version returns to "
            f"production only by rollback (POST /api/v1/models/{model.name}/rollback "
            f'with {{"to_version": {version.version}}})'
        )
    elif current is Stage.PRODUCTION:
        detail = (
            f"version {version.version} is in production; it leaves production when another "
            "version is promoted or by rollback"
        )
    elif current is Stage.CANDIDATE and target is Stage.PRODUCTION:
        detail = (
            f"the policy requires staging before production; promote version "
            f"{version.version} to staging first"
        )
    else:
        detail = f"{current.value} -> {target.value} is not allowed"
    return TransitionNotAllowed(
        f"{detail} (allowed from {current.value}: {allowed})",
        current_stage=current.value,
        allowed=[m.value for m in moves],
    )


def ensure_not_frozen(model: RegisteredModel) -> None:
    """A frozen model refuses promotions to production (rollback still works)."""
    if model.frozen_at is not None:
        raise ModelFrozen(frozen_message(model), frozen_by=model.frozen_by,
                          frozen_reason=model.frozen_reason)  # fmt: skip


def frozen_message(model: RegisteredModel) -> str:
    assert model.frozen_at is not None
    return (
        f"model {model.name!r} was frozen by {model.frozen_by} at "
        f"{model.frozen_at.isoformat()}: {model.frozen_reason}; promotions to production "
        "are refused until it is unfrozen (rollback still works)"
    )


# 3. Move ------------------------------------------------------------------------------


def move(session: Session, *, actor: Principal, loaded: Loaded, change: Move) -> Moved:
    """Point ``change.pointer`` at ``change.version``: the only code that does.

    The caller holds what :func:`load` locked and has checked the move. Records the
    audit event(s) and ends with :func:`on_pointer_moved`."""
    if isinstance(change.pointer, AliasPointer):
        return _move_alias(
            session, actor=actor, loaded=loaded, change=change, pointer=change.pointer
        )
    if isinstance(change.pointer, RolloutPointer):
        return _move_rollout(
            session, actor=actor, loaded=loaded, change=change, pointer=change.pointer
        )
    model, version = loaded.model, change.version
    target = change.pointer.stage
    from_stage = version.stage
    now = utcnow()
    replaced: ModelVersion | None = None
    if change.pointer.exclusive:
        replaced = _replace_production(session, actor=actor, loaded=loaded, change=change, now=now)
    else:
        why = (change.reason or "archived") if target is Stage.ARCHIVED else version.archived_reason
        repository.set_stage(session, version, target, at=now, archived_reason=why)
    if change.via == "archive":
        audit.record(
            session, actor=actor, action=AuditAction.VERSION_ARCHIVED, model=model.name,
            version=version.version, from_stage=from_stage.value, to_stage=target.value,
            reason=change.reason, at=now,
        )  # fmt: skip
    else:
        details: dict[str, Any] = {"via": change.via, "promotion_id": change.promotion_id}
        if change.pointer.exclusive:
            details["replaced"] = replaced.version if replaced else None
        audit.record(
            session, actor=actor, action=AuditAction.VERSION_STAGE_CHANGED, model=model.name,
            version=version.version, from_stage=from_stage.value, to_stage=target.value,
            reason=change.reason, details={**details, **change.details}, at=now,
        )  # fmt: skip
    moved = Moved(move=change, model=model, from_stage=from_stage, replaced=replaced, at=now)
    on_pointer_moved(session, moved)
    return moved


def _move_alias(
    session: Session, *, actor: Principal, loaded: Loaded, change: Move, pointer: AliasPointer
) -> Moved:
    """Point an alias at ``change.version`` (or remove it), record the move in the audit
    log and the alias history, and publish it."""
    model, version = loaded.model, change.version
    now = utcnow()
    target = None if pointer.remove else version
    from_version = serving_aliases.point(
        session, actor=actor, model=model, name=pointer.name, version=target, now=now
    )
    action = AuditAction.ALIAS_REMOVED if pointer.remove else AuditAction.ALIAS_MOVED
    audit.record(
        session, actor=actor, action=action, model=model.name,
        version=None if target is None else target.version, reason=change.reason,
        details={"alias": pointer.name, "from_version": from_version,
                 "to_version": None if target is None else target.version,
                 "promotion_id": change.promotion_id, **change.details},
        at=now,
    )  # fmt: skip
    moved = Moved(
        move=change, model=model, from_stage=Stage(version.stage), replaced=None, at=now,
        from_version=from_version,
    )  # fmt: skip
    revision = on_pointer_moved(session, moved)
    serving_aliases.record_move(session, actor=actor, moved=moved, name=pointer.name,
                                to_version=None if target is None else target.version,
                                revision=revision or 0)  # fmt: skip
    return moved


def _move_rollout(
    session: Session, *, actor: Principal, loaded: Loaded, change: Move, pointer: RolloutPointer
) -> Moved:
    """A rollout's weight or shadow share changed (the rollout row holds them): audit the
    change with the rollout's action and publish it (a new serving revision)."""
    model, version = loaded.model, change.version
    audit.record(
        session, actor=actor, action=pointer.action, model=model.name,
        version=version.version, reason=change.reason,
        details={"rollout_id": pointer.rollout_id, "weight": pointer.weight,
                 "shadow_share": pointer.share, **change.details},
    )  # fmt: skip
    moved = Moved(move=change, model=model, from_stage=Stage(version.stage), replaced=None,
                  at=utcnow())  # fmt: skip
    on_pointer_moved(session, moved)
    return moved


def _replace_production(
    session: Session, *, actor: Principal, loaded: Loaded, change: Move, now: datetime
) -> ModelVersion | None:
    """Exactly one production version per model, enforced here: the holder (locked by
    :func:`load`) leaves production, its period closes, and only then does the new one
    arrive and open its period. Returns the version replaced."""
    model, version, holder = loaded.model, change.version, loaded.holder
    if holder is not None:
        why = change.archived_reason or f"replaced by version {version.version} ({change.via})"
        repository.set_stage(session, holder, Stage.ARCHIVED, at=now, archived_reason=why)
        audit.record(
            session, actor=actor, action=AuditAction.VERSION_STAGE_CHANGED, model=model.name,
            version=holder.version, from_stage=Stage.PRODUCTION.value,
            to_stage=Stage.ARCHIVED.value,
            reason=f"replaced by version {version.version} ({change.via})",
            details={"replaced_by": version.version, "via": change.via,
                     "promotion_id": change.promotion_id},
            at=now,
        )  # fmt: skip
    # The holder has left (its row is written): the partial unique index allows one
    # production version per model at every statement.
    try:
        repository.set_stage(
            session, version, Stage.PRODUCTION, at=now, archived_reason=version.archived_reason
        )
    except IntegrityError:  # pragma: no cover - the model lock makes this unreachable
        raise Conflict("another version became production concurrently; retry") from None
    repository.hand_over_period(
        session, model_id=model.id, at=now, via=change.via, version=version.version,
        actor=actor.name, reason=change.reason, promotion_id=change.promotion_id,
        replaced_version=holder.version if holder else None,
    )  # fmt: skip
    return holder


def on_pointer_moved(session: Session, moved: Moved) -> int | None:
    """The publish step every move ends with, in the move's transaction.

    The audit events are already recorded (and thereby written to the outbox). This is
    where whatever follows pointers is told, by name: a move that changes what serves
    (production, an alias) bumps the model's serving revision, announced to watchers
    when the transaction commits."""
    if moved.move.pointer.affects_serving:
        return serving.bump_revision(session, model=moved.model)
    return None
