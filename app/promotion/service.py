"""Promotion use cases: dry-run evaluation, requests, reviewer decisions, transitions, archive.

Every operation that can change a stage locks the model row first, so promotions,
approvals, archives and rollbacks of one model run one at a time across all server
processes; the partial unique index on production is the backstop.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.roles import Principal, Role, role_allows
from app.db.base import utcnow
from app.errors import (
    Conflict,
    Forbidden,
    ModelFrozen,
    PromotionNotFound,
    PromotionNotPending,
    TransitionNotAllowed,
    VersionNotFound,
)
from app.pagination import decode_cursor, encode_cursor
from app.promotion import repository
from app.promotion.evaluation import Evaluation, evaluate, stage_policy
from app.promotion.models import (
    ProductionPeriod,
    PromotionApproval,
    PromotionRequest,
    PromotionStatus,
)
from app.promotion.policy import PolicyInForce, in_force
from app.promotion.schemas import (
    ApprovalRead,
    GateReportRead,
    PromotionCreate,
    PromotionRead,
)
from app.registry import service as registry
from app.registry.models import ModelVersion, RegisteredModel, Stage
from app.registry.schemas import Page
from app.serving import service as serving
from app.storage.base import ArtifactStore


class _Unread(Enum):
    """Not read yet (as opposed to None: read, and there is none)."""

    UNREAD = 0


UNREAD: Literal[_Unread.UNREAD] = _Unread.UNREAD

ALLOWED_MOVES: dict[Stage, tuple[Stage, ...]] = {
    Stage.CANDIDATE: (Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED),
    Stage.STAGING: (Stage.PRODUCTION, Stage.ARCHIVED),
    Stage.PRODUCTION: (),
    Stage.ARCHIVED: (),
}


# Transitions ----------------------------------------------------------------------------


def _lock_version(
    session: Session, model_name: str, number: int
) -> tuple[RegisteredModel, ModelVersion]:
    """``registry.lock_version`` (the model row locked, then the version: the lock order
    every writer follows) without the version's metrics and evidence, which the gates read
    only when a rule needs them."""
    model = registry.lock_model(session, model_name)
    version = repository.version(session, model.id, number, for_update=True)
    if version is None:
        raise VersionNotFound(f"model {model_name!r} has no version {number}")
    return model, version


def _lock_version_and_production(
    session: Session, model_name: str, number: int
) -> tuple[RegisteredModel, ModelVersion, ModelVersion | None]:
    """:func:`_lock_version`, and the production version locked with it in the same
    statement (for a promotion that may replace it)."""
    model = registry.lock_model(session, model_name)
    version, production = repository.version_and_production(session, model.id, number)
    if version is None:
        raise VersionNotFound(f"model {model_name!r} has no version {number}")
    return model, version, production


def allowed_moves(current: Stage, policy: PolicyInForce) -> list[Stage]:
    moves = list(ALLOWED_MOVES[current])
    if current is Stage.CANDIDATE and policy.document.production.require_staging:
        moves.remove(Stage.PRODUCTION)
    return moves


def check_transition(
    model: RegisteredModel, version: ModelVersion, target: Stage, policy: PolicyInForce
) -> None:
    current = Stage(version.stage)
    moves = allowed_moves(current, policy)
    if target in moves:
        return
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
    raise TransitionNotAllowed(
        f"{detail} (allowed from {current.value}: {allowed})",
        current_stage=current.value,
        allowed=[m.value for m in moves],
    )


def _ensure_not_frozen(model: RegisteredModel) -> None:
    if model.frozen_at is not None:
        raise ModelFrozen(
            f"model {model.name!r} was frozen by {model.frozen_by} at "
            f"{model.frozen_at.isoformat()}: {model.frozen_reason}; promotions to production "
            "are refused until it is unfrozen (rollback still works)",
            frozen_by=model.frozen_by,
            frozen_reason=model.frozen_reason,
        )


def move_to_production(
    session: Session,
    *,
    actor: Principal,
    model: RegisteredModel,
    version: ModelVersion,
    via: str,
    reason: str | None,
    promotion_id: int | None = None,
    details: dict[str, Any] | None = None,
    previous: ModelVersion | _Unread | None = UNREAD,
    archived_reason: str | None = None,
) -> ModelVersion | None:
    """Make ``version`` the production version; the one it replaces is archived (with
    ``archived_reason``, by default "replaced by ...") and its production period closed.
    The caller holds the model lock, and may pass the production version it has already
    read with ``FOR UPDATE`` as ``previous``. Returns the replaced one."""
    now = utcnow()
    if previous is UNREAD:
        previous = repository.production_version(session, model.id, for_update=True)
    from_stage = version.stage
    if previous is not None:
        previous.stage = Stage.ARCHIVED.value
        previous.stage_changed_at = now
        previous.updated_at = now
        previous.archived_reason = (
            archived_reason or f"replaced by version {version.version} ({via})"
        )
        audit.record(
            session,
            actor=actor,
            action="version.stage_changed",
            model=model.name,
            version=previous.version,
            from_stage=Stage.PRODUCTION.value,
            to_stage=Stage.ARCHIVED.value,
            reason=f"replaced by version {version.version} ({via})",
            details={"replaced_by": version.version, "via": via, "promotion_id": promotion_id},
        )
        # The old production row must leave before the new one arrives: the partial
        # unique index allows one production version per model at every statement.
        # (Flushed after its audit event, which then shares the flush's statements.)
        session.flush()
    repository.close_open_period(session, model.id, ended_at=now, ended_by=via)
    version.stage = Stage.PRODUCTION.value
    version.stage_changed_at = now
    version.updated_at = now
    try:
        session.flush()
    except IntegrityError:  # pragma: no cover - the model lock makes this unreachable
        raise Conflict("another version became production concurrently; retry") from None
    repository.add(
        session,
        ProductionPeriod(
            model_id=model.id,
            version=version.version,
            started_at=now,
            via=via,
            actor=actor.name,
            reason=reason,
            promotion_id=promotion_id,
            replaced_version=previous.version if previous else None,
        ),
    )
    serving.bump_revision(session, model=model)
    audit.record(
        session,
        actor=actor,
        action="version.stage_changed",
        model=model.name,
        version=version.version,
        from_stage=from_stage,
        to_stage=Stage.PRODUCTION.value,
        reason=reason,
        details={
            "via": via,
            "promotion_id": promotion_id,
            "replaced": previous.version if previous else None,
            **(details or {}),
        },
    )
    return previous


def _apply(
    session: Session, *, actor: Principal, model: RegisteredModel, version: ModelVersion,
    request: PromotionRequest, now: datetime | None = None,
    production: ModelVersion | _Unread | None = UNREAD,
    pending: Sequence[PromotionRequest] | None = None,
) -> None:  # fmt: skip
    """Move the version and mark the request applied. ``production`` is the production
    version if the caller read it ``FOR UPDATE``, ``pending`` the version's other pending
    requests if the caller read them ``FOR UPDATE`` in this transaction."""
    target = Stage(request.target_stage)
    now = now or utcnow()
    if target is Stage.PRODUCTION:
        _ensure_not_frozen(model)
    # Set before the stage moves, so that the request's row is written once, in the flush
    # that moves the version (the order of events in the audit log is unchanged).
    request.status = PromotionStatus.APPLIED.value
    request.applied_at = now
    if target is Stage.PRODUCTION:
        move_to_production(
            session,
            actor=actor,
            model=model,
            version=version,
            via="promotion",
            reason=request.comment,
            promotion_id=request.id,
            details={"report_digest": request.report_digest},
            previous=production,
        )
    else:
        from_stage = version.stage
        version.stage = target.value
        version.stage_changed_at = now
        version.updated_at = now
        audit.record(
            session,
            actor=actor,
            action="version.stage_changed",
            model=model.name,
            version=version.version,
            from_stage=from_stage,
            to_stage=target.value,
            reason=request.comment,
            details={"via": "promotion", "promotion_id": request.id,
                     "report_digest": request.report_digest},
        )  # fmt: skip
    audit.record(
        session,
        actor=actor,
        action="promotion.applied",
        model=model.name,
        version=version.version,
        from_stage=request.from_stage,
        to_stage=target.value,
        details={"promotion_id": request.id, "report_digest": request.report_digest},
    )
    _supersede_others(
        session, actor=actor, model=model, version=version, keep=request.id, pending=pending
    )


def _supersede_others(
    session: Session, *, actor: Principal, model: RegisteredModel, version: ModelVersion,
    keep: int | None, pending: Sequence[PromotionRequest] | None = None,
) -> None:  # fmt: skip
    """Pending requests of a version that has moved on can no longer be applied as made
    (``pending``: those the caller has already read ``FOR UPDATE``, else read here)."""
    if pending is None:
        pending = repository.pending_for_version(session, version.id)
    for other in pending:
        if other.id == keep:
            continue
        other.status = PromotionStatus.SUPERSEDED.value
        other.decided_at = utcnow()
        other.decision_comment = f"version {version.version} moved to {version.stage}"
        audit.record(
            session,
            actor=actor,
            action="promotion.superseded",
            model=model.name,
            version=version.version,
            details={
                "promotion_id": other.id,
                "now_in": version.stage,
                "report_digest": other.report_digest,
            },
        )


# Evaluation -----------------------------------------------------------------------------


def _evaluate(
    session: Session, store: ArtifactStore, model: RegisteredModel, version: ModelVersion,
    target: Stage, policy: PolicyInForce, production: ModelVersion | _Unread | None = UNREAD,
) -> Evaluation:  # fmt: skip
    """The gates of ``target`` against production (read here unless the caller has)."""
    if production is UNREAD:
        production = repository.production_version(session, model.id)
    if production is not None and production.id == version.id:
        production = None
    return evaluate(
        session, store=store, model=model, version=version, target=target, policy=policy,
        production=production,
    )  # fmt: skip


def dry_run(
    session: Session, *, actor: Principal, store: ArtifactStore, model_name: str, number: int,
    target: Stage,
) -> GateReportRead:  # fmt: skip
    """The gate report a promotion would get now; changes no stage (the evaluation itself
    is recorded in the audit log)."""
    model, version = registry.get_version(session, model_name, number)
    policy = in_force(session, model)
    result = _evaluate(session, store, model, version, target, policy)
    audit.record(
        session,
        actor=actor,
        action="gates.evaluated",
        model=model.name,
        version=number,
        to_stage=target.value,
        details={"report_digest": result.report.digest, "passed": result.passed,
                 "failed": result.report.failed, "policy_revision": policy.revision},
    )  # fmt: skip
    return result.report


# Requests -------------------------------------------------------------------------------


def request_promotion(
    session: Session, *, actor: Principal, store: ArtifactStore, model_name: str,
    data: PromotionCreate,
) -> PromotionRead:  # fmt: skip
    """Run the gates and record the request: rejected when a gate fails, applied at once
    with auto-promote and no approvals required, otherwise pending a reviewer."""
    target = Stage(data.target)
    production: ModelVersion | _Unread | None = UNREAD
    if target is Stage.PRODUCTION:
        # Production is locked with the version, after the model, and the same row is
        # handed to the replacement (move_to_production) instead of being read again.
        model, version, production = _lock_version_and_production(session, model_name, data.version)
    else:
        model, version = _lock_version(session, model_name, data.version)
    policy = in_force(session, model)
    check_transition(model, version, target, policy)
    if target is Stage.PRODUCTION:
        _ensure_not_frozen(model)
    pending = repository.pending_for_version(session, version.id)
    for other in pending:
        if other.target_stage == target.value:
            raise Conflict(
                f"promotion request {other.id} for version {version.version} to "
                f"{target.value} is already pending",
                promotion_id=other.id,
            )
    if production is UNREAD:
        production = repository.production_version(session, model.id)
    result = _evaluate(session, store, model, version, target, policy, production)
    stage = stage_policy(policy, target)
    now = utcnow()
    request = PromotionRequest(
        model_id=model.id,
        version_id=version.id,
        version=version.version,
        from_stage=version.stage,
        target_stage=target.value,
        status=PromotionStatus.PENDING_APPROVAL.value,
        requested_by=actor.name,
        requested_at=now,
        comment=data.comment,
        policy_revision=policy.revision,
        approvals_required=stage.approvals_required,
        auto_apply=stage.auto_promote,
        evaluated_against=result.report.evaluated_against,
        report=result.document,
        report_digest=result.report.digest,
    )
    auto_apply = result.passed and stage.auto_promote and stage.approvals_required == 0
    # The decision is known before the request is written: written with it, the row
    # needs no UPDATE afterwards.
    if not result.passed:
        request.status = PromotionStatus.REJECTED.value
        request.decided_by = "gates"
        request.decided_at = now
        request.decision_comment = "gates failed: " + ", ".join(result.report.failed)
    elif auto_apply:
        request.decided_by = "policy:auto_promote"
        request.decided_at = now
        request.status = PromotionStatus.APPLIED.value
        request.applied_at = now
    repository.add(session, request)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="promotion.requested",
        model=model.name,
        version=version.version,
        from_stage=version.stage,
        to_stage=target.value,
        reason=data.comment,
        details={"promotion_id": request.id, "report_digest": result.report.digest,
                 "gates_passed": result.passed, "failed": result.report.failed,
                 "policy_revision": policy.revision},
    )  # fmt: skip
    if not result.passed:
        audit.record(
            session,
            actor=actor,
            action="promotion.rejected",
            model=model.name,
            version=version.version,
            to_stage=target.value,
            reason=request.decision_comment,
            details={"promotion_id": request.id, "report_digest": result.report.digest},
        )
    elif auto_apply:
        _apply(
            session, actor=actor, model=model, version=version, request=request, now=now,
            production=production, pending=pending,
        )  # fmt: skip
    # A request made just now has no approvals yet.
    return to_read(session, request, model.name, [])


def _load_pending(
    session: Session, request_id: int
) -> tuple[PromotionRequest, RegisteredModel, ModelVersion]:
    found = repository.request(session, request_id)
    if found is None:
        raise PromotionNotFound(f"no promotion request {request_id}")
    name = repository.model_name_of(session, found.model_id)
    # Lock order: model, then version, then the request (as every writer does).
    model, version = _lock_version(session, name, found.version)
    request = repository.request(session, request_id, for_update=True)
    assert request is not None
    if request.status != PromotionStatus.PENDING_APPROVAL.value:
        raise PromotionNotPending(
            f"promotion request {request_id} is {request.status}, not pending_approval",
            status_now=request.status,
        )
    return request, model, version


def _check_scope(actor: Principal, model: RegisteredModel) -> None:
    if not actor.may_touch_model(model.name):
        raise Forbidden(f"this token is limited to model {actor.model_scope!r}")


def approve(
    session: Session, *, actor: Principal, store: ArtifactStore, request_id: int,
    comment: str | None,
) -> PromotionRead:  # fmt: skip
    """Record a reviewer's approval; with enough of them (as many as the policy in force
    asks), the promotion is applied, after running the gates again if production or the
    policy changed since they were evaluated."""
    request, model, version = _load_pending(session, request_id)
    _check_scope(actor, model)
    if actor.name == request.requested_by:
        raise Forbidden("a reviewer cannot approve a promotion they requested")
    if Stage(request.target_stage) is Stage.PRODUCTION:
        _ensure_not_frozen(model)
    existing = repository.approvals(session, [request.id])[request.id]
    if any(a.reviewer == actor.name for a in existing):
        raise Conflict(f"{actor.name} has already approved promotion request {request_id}")
    approval = PromotionApproval(
        request_id=request.id, reviewer=actor.name, reviewer_role=actor.role.value,
        comment=comment, created_at=utcnow(),
    )  # fmt: skip
    repository.add(session, approval)
    count = len(existing) + 1
    policy = in_force(session, model)
    if policy.revision != request.policy_revision:
        # Approvals are part of the policy: one changed since the request was made asks
        # for its own number of them (and its gates run again before the request applies).
        stage = stage_policy(policy, Stage(request.target_stage))
        request.approvals_required = stage.approvals_required
        request.auto_apply = stage.auto_promote
    audit.record(
        session,
        actor=actor,
        action="promotion.approved",
        model=model.name,
        version=version.version,
        to_stage=request.target_stage,
        reason=comment,
        details={"promotion_id": request.id, "approvals": count,
                 "approvals_required": request.approvals_required,
                 "report_digest": request.report_digest},
    )  # fmt: skip
    # Someone has to say yes: without auto-promote one approval is needed even when the
    # policy requires none.
    needed = max(request.approvals_required, 0 if request.auto_apply else 1)
    if count >= needed:
        _decide_and_apply(session, actor=actor, store=store, model=model, version=version,
                          request=request, policy=policy)  # fmt: skip
    session.flush()
    # The approvals in id order, as repository.approvals reads them: the new one is last.
    return to_read(session, request, model.name, [*existing, approval])


def _decide_and_apply(
    session: Session, *, actor: Principal, store: ArtifactStore, model: RegisteredModel,
    version: ModelVersion, request: PromotionRequest, policy: PolicyInForce,
) -> None:  # fmt: skip
    now = utcnow()
    if version.stage != request.from_stage:
        request.status = PromotionStatus.SUPERSEDED.value
        request.decided_at = now
        request.decision_comment = f"version moved from {request.from_stage} to {version.stage}"
        audit.record(session, actor=actor, action="promotion.superseded", model=model.name,
                     version=version.version,
                     details={"promotion_id": request.id,
                              "report_digest": request.report_digest})  # fmt: skip
        return
    target = Stage(request.target_stage)
    # Read once, locked when it is about to be replaced, and handed to the replacement.
    production = repository.production_version(
        session, model.id, for_update=target is Stage.PRODUCTION
    )
    current_against = production.version if production else None
    if current_against != request.evaluated_against or policy.revision != request.policy_revision:
        result = _evaluate(session, store, model, version, target, policy, production)
        request.report = result.document
        request.report_digest = result.report.digest
        request.evaluated_against = result.report.evaluated_against
        request.policy_revision = policy.revision
        audit.record(
            session, actor=actor, action="gates.reevaluated", model=model.name,
            version=version.version, to_stage=target.value,
            reason="production or policy changed since the gates ran",
            details={"promotion_id": request.id, "report_digest": result.report.digest,
                     "passed": result.passed, "failed": result.report.failed},
        )  # fmt: skip
        if not result.passed:
            request.status = PromotionStatus.REJECTED.value
            request.decided_by = "gates"
            request.decided_at = now
            request.decision_comment = "gates failed on re-evaluation: " + ", ".join(
                result.report.failed
            )
            audit.record(session, actor=actor, action="promotion.rejected", model=model.name,
                         version=version.version, to_stage=target.value,
                         reason=request.decision_comment,
                         details={"promotion_id": request.id,
                                  "report_digest": request.report_digest})  # fmt: skip
            return
    request.status = PromotionStatus.APPROVED.value
    request.decided_by = actor.name
    request.decided_at = now
    _apply(session, actor=actor, model=model, version=version, request=request,
           production=production)  # fmt: skip


def reject(session: Session, *, actor: Principal, request_id: int, comment: str) -> PromotionRead:
    """A reviewer turns the request down, with a comment."""
    request, model, version = _load_pending(session, request_id)
    _check_scope(actor, model)
    return _close(session, actor=actor, model=model, version=version, request=request,
                  status=PromotionStatus.REJECTED, action="promotion.rejected",
                  comment=comment)  # fmt: skip


def cancel(
    session: Session, *, actor: Principal, request_id: int, comment: str | None
) -> PromotionRead:
    """The requester (or an operator) withdraws a pending request."""
    request, model, version = _load_pending(session, request_id)
    _check_scope(actor, model)
    if actor.name != request.requested_by and not role_allows(actor.role, Role.OPERATOR):
        raise Forbidden("only the requester or an operator can cancel a promotion request")
    return _close(session, actor=actor, model=model, version=version, request=request,
                  status=PromotionStatus.CANCELLED, action="promotion.cancelled",
                  comment=comment)  # fmt: skip


def _close(
    session: Session, *, actor: Principal, model: RegisteredModel, version: ModelVersion,
    request: PromotionRequest, status: PromotionStatus, action: str, comment: str | None,
) -> PromotionRead:  # fmt: skip
    """End a pending request by a person's decision (reject or cancel), audited."""
    request.status = status.value
    request.decided_by = actor.name
    request.decided_at = utcnow()
    request.decision_comment = comment
    audit.record(
        session, actor=actor, action=action, model=model.name,
        version=version.version, to_stage=request.target_stage, reason=comment,
        details={"promotion_id": request.id, "report_digest": request.report_digest},
    )  # fmt: skip
    return to_read(session, request, model.name)


def get(session: Session, *, actor: Principal, request_id: int) -> PromotionRead:
    found = repository.request(session, request_id)
    if found is None:
        raise PromotionNotFound(f"no promotion request {request_id}")
    name = repository.model_name_of(session, found.model_id)
    if not actor.may_touch_model(name):
        raise PromotionNotFound(f"no promotion request {request_id}")
    return to_read(session, found, name)


def list_requests(
    session: Session, *, actor: Principal, status: str | None, model_name: str | None,
    cursor: str | None, limit: int,
) -> Page[PromotionRead]:  # fmt: skip
    model_id = registry.get_model(session, model_name).id if model_name else None
    scope_id = registry.get_model(session, actor.model_scope).id if actor.model_scope else None
    after = decode_cursor(cursor, arity=1, kinds=(int,))
    rows = repository.page_requests(
        session, status=status, model_id=model_id, model_scope_id=scope_id,
        after_id=int(after[0]) if after else None, limit=limit + 1,
    )  # fmt: skip
    page = rows[:limit]
    approvals = repository.approvals(session, [r.id for r, _ in page])
    return Page[PromotionRead](
        items=[to_read(session, r, name, approvals[r.id]) for r, name in page],
        next_cursor=encode_cursor([page[-1][0].id]) if len(rows) > limit else None,
    )


def archive(
    session: Session, *, actor: Principal, model_name: str, number: int, reason: str | None
) -> ModelVersion:
    """Retire a candidate or staging version. Production leaves only by replacement or
    rollback, so that a model is never left without production by accident."""
    model, version = registry.lock_version(session, model_name, number)
    current = Stage(version.stage)
    if current is Stage.ARCHIVED:
        return version
    if current is Stage.PRODUCTION:
        raise TransitionNotAllowed(
            f"version {number} is in production; promote another version or roll back "
            "instead of archiving it",
            current_stage=current.value,
            allowed=[],
        )
    now = utcnow()
    version.stage = Stage.ARCHIVED.value
    version.stage_changed_at = now
    version.updated_at = now
    version.archived_reason = reason or "archived"
    audit.record(
        session, actor=actor, action="version.archived", model=model.name, version=number,
        from_stage=current.value, to_stage=Stage.ARCHIVED.value, reason=reason,
    )  # fmt: skip
    _supersede_others(session, actor=actor, model=model, version=version, keep=None)
    return version


def to_read(
    session: Session, request: PromotionRequest, model_name: str,
    approvals: list[PromotionApproval] | None = None,
) -> PromotionRead:  # fmt: skip
    if approvals is None:
        approvals = repository.approvals(session, [request.id])[request.id]
    return PromotionRead(
        id=request.id,
        model=model_name,
        version=request.version,
        from_stage=Stage(request.from_stage),
        target=Stage(request.target_stage),
        status=PromotionStatus(request.status),
        requested_by=request.requested_by,
        requested_at=request.requested_at,
        comment=request.comment,
        policy_revision=request.policy_revision,
        approvals_required=request.approvals_required,
        approvals=[
            ApprovalRead(
                reviewer=a.reviewer,
                reviewer_role=a.reviewer_role,
                comment=a.comment,
                created_at=a.created_at,
            )
            for a in approvals
        ],
        report=GateReportRead.model_validate(request.report),
        decided_by=request.decided_by,
        decided_at=request.decided_at,
        decision_comment=request.decision_comment,
        applied_at=request.applied_at,
    )
