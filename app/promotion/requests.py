"""Promotion requests: dry-run evaluation, request, approve, reject, cancel, and the gates
run again when production or the policy changed before a request applies.

A request that applies moves its version through the transition core
(:mod:`app.promotion.transitions`): its :func:`~app.promotion.transitions.load` takes the
locks, :func:`~app.promotion.transitions.check_promotion` the checks and
:func:`~app.promotion.transitions.move` the stage change.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from app import pagination
from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.roles import Principal, Role, role_allows
from app.db.base import utcnow
from app.errors import Conflict, Forbidden, PromotionNotFound, PromotionNotPending
from app.gates.result import RuleResult
from app.promotion import repository, transitions
from app.promotion.evaluation import Evaluation, evaluate, stage_policy
from app.promotion.models import PromotionApproval, PromotionRequest, PromotionStatus
from app.promotion.policy import PolicyInForce, in_force
from app.promotion.schemas import (
    ApprovalRead,
    GateReportRead,
    PromotionCreate,
    PromotionRead,
    StagePolicy,
)
from app.promotion.transitions import AliasPointer, Loaded, Move, StagePointer
from app.registry import service as registry
from app.registry.models import ModelVersion, RegisteredModel, Stage
from app.registry.schemas import Page
from app.serving import service as serving
from app.storage.base import ArtifactStore

FREEZE_CHECK = "model_not_frozen"
"""The name of the check a dry run to production reports for a model's freeze."""


# Evaluation -----------------------------------------------------------------------------


def _evaluate(
    session: Session, store: ArtifactStore, model: RegisteredModel, version: ModelVersion,
    target: Stage, policy: PolicyInForce, production: ModelVersion | None,
    preconditions: Sequence[RuleResult] = (), stage: StagePolicy | None = None,
) -> Evaluation:  # fmt: skip
    """The gates of ``target`` (or of ``stage``, an alias's) against ``production``
    (which may be the version itself)."""
    if production is not None and production.id == version.id:
        production = None
    return evaluate(
        session, store=store, model=model, version=version, target=target, policy=policy,
        production=production, preconditions=preconditions, stage=stage,
    )  # fmt: skip


def request_policy(policy: PolicyInForce, request: PromotionRequest) -> StagePolicy:
    """The part of ``policy`` a request answers to: its alias's entry (an alias the
    policy no longer protects asks for nothing), else its target stage's."""
    if request.target_alias is not None:
        protected = policy.document.aliases.get(request.target_alias)
        return protected if protected is not None else StagePolicy(auto_promote=True)
    return stage_policy(policy, request.target_stage)


def _production_for_gates(session: Session, loaded: Loaded, target: Stage) -> ModelVersion | None:
    """What the gates compare with: production as :func:`transitions.load` locked it for a
    move to production, else read here (a move to staging does not lock production)."""
    if target is Stage.PRODUCTION:
        return loaded.holder
    return repository.production_version(session, loaded.model.id)


def _freeze_checks(model: RegisteredModel, target: Stage) -> list[RuleResult]:
    """A model's freeze as a failing check of a dry run to production (nothing else)."""
    if target is not Stage.PRODUCTION or model.frozen_at is None:
        return []
    return [RuleResult(
        FREEZE_CHECK, "freeze", False, transitions.frozen_message(model),
        observed={"frozen_by": model.frozen_by, "frozen_at": model.frozen_at.isoformat(),
                  "reason": model.frozen_reason},
    )]  # fmt: skip


def dry_run(
    session: Session, *, actor: Principal, store: ArtifactStore, model_name: str, number: int,
    target: Stage,
) -> GateReportRead:  # fmt: skip
    """The gate report a promotion would get now; changes no stage (the evaluation itself
    is recorded in the audit log). To production, the model's freeze is a check too."""
    model, version = registry.get_version(session, model_name, number)
    policy = in_force(session, model)
    production = repository.production_version(session, model.id)
    freeze = _freeze_checks(model, target)
    result = _evaluate(session, store, model, version, target, policy, production, freeze)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.GATES_EVALUATED,
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
    loaded = transitions.load(session, model_name=model_name, number=data.version, target=target)
    transitions.check_promotion(loaded, target)
    if target is Stage.PRODUCTION:
        transitions.ensure_no_rollout(session, loaded.model)
    model, version, policy = loaded.model, loaded.version, loaded.policy
    assert policy is not None
    for other in loaded.pending:
        if other.target_alias is None and other.target_stage is target:
            raise Conflict(
                f"promotion request {other.id} for version {version.version} to "
                f"{target.value} is already pending",
                promotion_id=other.id,
            )
    production = _production_for_gates(session, loaded, target)
    result = _evaluate(session, store, model, version, target, policy, production)
    stage = stage_policy(policy, target)
    now = utcnow()
    request = PromotionRequest(
        model_id=model.id,
        version_id=version.id,
        version=version.version,
        from_stage=version.stage,
        target_stage=target,
        status=PromotionStatus.PENDING_APPROVAL,
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
        _rejected_by_gates(request, result, now, again=False)
    elif auto_apply:
        request.decided_by = "policy:auto_promote"
        request.decided_at = now
        request.status = PromotionStatus.APPLIED
        request.applied_at = now
    repository.insert_request(session, request)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.PROMOTION_REQUESTED,
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
        _record_decision(session, actor=actor, model=model, request=request,
                         action=AuditAction.PROMOTION_REJECTED)  # fmt: skip
    elif auto_apply:
        # Freeze and rollouts were checked above, in this transaction, under the model's lock.
        _apply(session, actor=actor, loaded=loaded, request=request, now=now, checked=True)
    # A request made just now has no approvals yet.
    return to_read(session, request, model.name, [])


def pending_alias_request(
    session: Session, *, version: ModelVersion, alias: str
) -> PromotionRequest | None:
    """The version's pending request to move ``alias`` to it, if there is one (locked)."""
    pending = repository.pending_for_version(session, version.id)
    return next((r for r in pending if r.target_alias == alias), None)


def request_alias_move(
    session: Session, *, actor: Principal, loaded: Loaded, alias: str, result: Evaluation,
    comment: str | None,
) -> PromotionRequest:  # fmt: skip
    """Record a pending request to point the protected ``alias`` at the version, whose
    gates (``result``) passed; reviewers approve it as any promotion request, and the
    alias moves through the transition core when enough of them have."""
    model, version, policy = loaded.model, loaded.version, loaded.policy
    assert policy is not None
    stage = policy.document.aliases[alias]
    now = utcnow()
    request = PromotionRequest(
        model_id=model.id, version_id=version.id, version=version.version,
        from_stage=version.stage, target_stage=Stage.PRODUCTION, target_alias=alias,
        status=PromotionStatus.PENDING_APPROVAL, requested_by=actor.name, requested_at=now,
        comment=comment, policy_revision=policy.revision,
        approvals_required=stage.approvals_required, auto_apply=stage.auto_promote,
        evaluated_against=result.report.evaluated_against, report=result.document,
        report_digest=result.report.digest,
    )  # fmt: skip
    repository.insert_request(session, request)
    audit.record(
        session, actor=actor, action=AuditAction.PROMOTION_REQUESTED, model=model.name,
        version=version.version, from_stage=version.stage, reason=comment,
        details={"promotion_id": request.id, "alias": alias,
                 "report_digest": result.report.digest, "gates_passed": True, "failed": [],
                 "policy_revision": policy.revision},
    )  # fmt: skip
    return request


def _rejected_by_gates(
    request: PromotionRequest, result: Evaluation, now: datetime, *, again: bool
) -> None:
    """A request the gates turned down (when made, or ``again`` before it applied)."""
    request.status = PromotionStatus.REJECTED
    request.decided_by = "gates"
    request.decided_at = now
    when = " on re-evaluation" if again else ""
    request.decision_comment = f"gates failed{when}: " + ", ".join(result.report.failed)


def _record_decision(
    session: Session, *, actor: Principal, model: RegisteredModel, request: PromotionRequest,
    action: AuditAction,
) -> None:  # fmt: skip
    """The audit event of a request's end other than applied (rejected, cancelled)."""
    audit.record(
        session, actor=actor, action=action, model=model.name, version=request.version,
        to_stage=request.target_stage, reason=request.decision_comment,
        details={"promotion_id": request.id, "report_digest": request.report_digest,
                 **_alias_detail(request)},
    )  # fmt: skip


def _alias_detail(request: PromotionRequest) -> dict[str, str]:
    return {"alias": request.target_alias} if request.target_alias is not None else {}


def _apply(
    session: Session, *, actor: Principal, loaded: Loaded, request: PromotionRequest,
    now: datetime | None = None, checked: bool = False,
) -> None:  # fmt: skip
    """Move the version through the transition core and mark the request applied
    (``checked``: the caller has checked the freeze and rollouts under the same lock)."""
    model, version = loaded.model, loaded.version
    if request.target_alias is not None:
        _apply_alias(session, actor=actor, loaded=loaded, request=request, now=now)
        return
    target = request.target_stage
    if target is Stage.PRODUCTION and not checked:
        transitions.ensure_not_frozen(model)
        transitions.ensure_no_rollout(session, model)
    # Set before the stage moves, so that the request's row is written once, in the flush
    # that moves the version (the order of events in the audit log is unchanged).
    request.status = PromotionStatus.APPLIED
    request.applied_at = now or utcnow()
    transitions.move(
        session,
        actor=actor,
        loaded=loaded,
        change=Move(
            pointer=StagePointer(target),
            version=version,
            via="promotion",
            reason=request.comment,
            promotion_id=request.id,
            details={"report_digest": request.report_digest},
        ),
    )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.PROMOTION_APPLIED,
        model=model.name,
        version=version.version,
        from_stage=request.from_stage,
        to_stage=target.value,
        details={"promotion_id": request.id, "report_digest": request.report_digest},
    )
    supersede_others(session, actor=actor, loaded=loaded, keep=request.id)


def _apply_alias(
    session: Session, *, actor: Principal, loaded: Loaded, request: PromotionRequest,
    now: datetime | None,
) -> None:  # fmt: skip
    """Point the request's alias at its version through the transition core (unless it
    already points there) and mark the request applied. The version's stage stays, and
    so do its other pending requests."""
    model, version = loaded.model, loaded.version
    alias = request.target_alias
    assert alias is not None
    request.status = PromotionStatus.APPLIED
    request.applied_at = now or utcnow()
    current = serving.locked_alias(session, model_id=model.id, name=alias)
    if current is None or current.version_id != version.id:
        transitions.move(
            session, actor=actor, loaded=loaded,
            change=Move(pointer=AliasPointer(alias), version=version, via="alias",
                        reason=request.comment, promotion_id=request.id,
                        details={"report_digest": request.report_digest}),
        )  # fmt: skip
    audit.record(
        session, actor=actor, action=AuditAction.PROMOTION_APPLIED, model=model.name,
        version=version.version, from_stage=request.from_stage,
        details={"promotion_id": request.id, "alias": alias,
                 "report_digest": request.report_digest},
    )  # fmt: skip


def supersede_others(
    session: Session, *, actor: Principal, loaded: Loaded, keep: int | None
) -> None:
    """Pending requests of a version that has moved on can no longer be applied as made
    (``loaded.pending``, locked by :func:`transitions.load`)."""
    model, version = loaded.model, loaded.version
    for other in loaded.pending:
        if other.id == keep or other.target_alias is not None:
            continue  # an alias may point at a version of any stage
        other.status = PromotionStatus.SUPERSEDED
        other.decided_at = utcnow()
        other.decision_comment = f"version {version.version} moved to {version.stage}"
        audit.record(
            session,
            actor=actor,
            action=AuditAction.PROMOTION_SUPERSEDED,
            model=model.name,
            version=version.version,
            details={
                "promotion_id": other.id,
                "now_in": version.stage,
                "report_digest": other.report_digest,
            },
        )


def _load_pending(
    session: Session, request_id: int, *, with_policy: bool
) -> tuple[PromotionRequest, Loaded]:
    """The request, locked with what a move of its version needs (:func:`transitions.load`:
    model, version, production for a production target, the version's pending requests)."""
    found = repository.request(session, request_id)
    if found is None:
        raise PromotionNotFound(f"no promotion request {request_id}")
    name = repository.model_name_of(session, found.model_id)
    loaded = transitions.load(
        session, model_name=name, number=found.version, target=found.target_stage,
        with_policy=with_policy,
    )  # fmt: skip
    request = next((r for r in loaded.pending if r.id == request_id), None)
    if request is None:
        now = repository.request(session, request_id, for_update=True)
        assert now is not None
        raise PromotionNotPending(
            f"promotion request {request_id} is {now.status}, not pending_approval",
            status_now=now.status,
        )
    return request, loaded


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
    request, loaded = _load_pending(session, request_id, with_policy=True)
    model, version, policy = loaded.model, loaded.version, loaded.policy
    assert policy is not None
    _check_scope(actor, model)
    if actor.name == request.requested_by:
        raise Forbidden("a reviewer cannot approve a promotion they requested")
    if request.target_stage is Stage.PRODUCTION and request.target_alias is None:
        transitions.ensure_not_frozen(model)
    existing = repository.approvals(session, [request.id])[request.id]
    if any(a.reviewer == actor.name for a in existing):
        raise Conflict(f"{actor.name} has already approved promotion request {request_id}")
    approval = PromotionApproval(
        request_id=request.id, reviewer=actor.name, reviewer_role=actor.role.value,
        comment=comment, created_at=utcnow(),
    )  # fmt: skip
    repository.add(session, approval)
    count = len(existing) + 1
    if policy.revision != request.policy_revision:
        # Approvals are part of the policy: one changed since the request was made asks
        # for its own number of them (and its gates run again before the request applies).
        stage = request_policy(policy, request)
        request.approvals_required = stage.approvals_required
        request.auto_apply = stage.auto_promote
    audit.record(
        session,
        actor=actor,
        action=AuditAction.PROMOTION_APPROVED,
        model=model.name,
        version=version.version,
        to_stage=request.target_stage,
        reason=comment,
        details={"promotion_id": request.id, "approvals": count,
                 "approvals_required": request.approvals_required,
                 "report_digest": request.report_digest, **_alias_detail(request)},
    )  # fmt: skip
    # Someone has to say yes: without auto-promote one approval is needed even when the
    # policy requires none.
    needed = max(request.approvals_required, 0 if request.auto_apply else 1)
    if count >= needed:
        _decide_and_apply(session, actor=actor, store=store, loaded=loaded, request=request)
    session.flush()
    # The approvals in id order, as repository.approvals reads them: the new one is last.
    return to_read(session, request, model.name, [*existing, approval])


def _decide_and_apply(
    session: Session, *, actor: Principal, store: ArtifactStore, loaded: Loaded,
    request: PromotionRequest,
) -> None:  # fmt: skip
    model, version = loaded.model, loaded.version
    now = utcnow()
    if request.target_alias is None and version.stage != request.from_stage:
        request.status = PromotionStatus.SUPERSEDED
        request.decided_at = now
        request.decision_comment = f"version moved from {request.from_stage} to {version.stage}"
        audit.record(session, actor=actor, action=AuditAction.PROMOTION_SUPERSEDED,
                     model=model.name, version=version.version,
                     details={"promotion_id": request.id,
                              "report_digest": request.report_digest})  # fmt: skip
        return
    if not reevaluate(session, actor=actor, store=store, loaded=loaded, request=request, now=now):
        return
    request.status = PromotionStatus.APPROVED
    request.decided_by = actor.name
    request.decided_at = now
    _apply(session, actor=actor, loaded=loaded, request=request)


def reevaluate(
    session: Session, *, actor: Principal, store: ArtifactStore, loaded: Loaded,
    request: PromotionRequest, now: datetime,
) -> bool:  # fmt: skip
    """Run the request's gates again if production or the policy changed since they ran;
    a failure rejects the request. Returns whether the request may still apply."""
    model, version, policy = loaded.model, loaded.version, loaded.policy
    assert policy is not None
    target = request.target_stage
    production = _production_for_gates(session, loaded, target)
    current_against = production.version if production else None
    if current_against == request.evaluated_against and policy.revision == request.policy_revision:
        return True
    result = _evaluate(session, store, model, version, target, policy, production,
                       stage=request_policy(policy, request))  # fmt: skip
    request.report = result.document
    request.report_digest = result.report.digest
    request.evaluated_against = result.report.evaluated_against
    request.policy_revision = policy.revision
    audit.record(
        session, actor=actor, action=AuditAction.GATES_REEVALUATED, model=model.name,
        version=version.version, to_stage=target.value,
        reason="production or policy changed since the gates ran",
        details={"promotion_id": request.id, "report_digest": result.report.digest,
                 "passed": result.passed, "failed": result.report.failed},
    )  # fmt: skip
    if result.passed:
        return True
    _rejected_by_gates(request, result, now, again=True)
    _record_decision(session, actor=actor, model=model, request=request,
                     action=AuditAction.PROMOTION_REJECTED)  # fmt: skip
    return False


def reject(session: Session, *, actor: Principal, request_id: int, comment: str) -> PromotionRead:
    """A reviewer turns the request down, with a comment."""
    request, loaded = _load_pending(session, request_id, with_policy=False)
    _check_scope(actor, loaded.model)
    return _close(session, actor=actor, model=loaded.model, request=request,
                  status=PromotionStatus.REJECTED, action=AuditAction.PROMOTION_REJECTED,
                  comment=comment)  # fmt: skip


def cancel(
    session: Session, *, actor: Principal, request_id: int, comment: str | None
) -> PromotionRead:
    """The requester (or an operator) withdraws a pending request."""
    request, loaded = _load_pending(session, request_id, with_policy=False)
    _check_scope(actor, loaded.model)
    if actor.name != request.requested_by and not role_allows(actor.role, Role.OPERATOR):
        raise Forbidden("only the requester or an operator can cancel a promotion request")
    return _close(session, actor=actor, model=loaded.model, request=request,
                  status=PromotionStatus.CANCELLED, action=AuditAction.PROMOTION_CANCELLED,
                  comment=comment)  # fmt: skip


def _close(
    session: Session, *, actor: Principal, model: RegisteredModel, request: PromotionRequest,
    status: PromotionStatus, action: AuditAction, comment: str | None,
) -> PromotionRead:  # fmt: skip
    """End a pending request by a person's decision (reject or cancel), audited."""
    request.status = status
    request.decided_by = actor.name
    request.decided_at = utcnow()
    request.decision_comment = comment
    _record_decision(session, actor=actor, model=model, request=request, action=action)
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
    rows = repository.page_requests(
        session, status=status, model_id=model_id, model_scope_id=scope_id,
        after_id=pagination.after(cursor, int), limit=limit + 1,
    )  # fmt: skip
    page, next_cursor = pagination.split_page(rows, limit, lambda row: [row[0].id])
    approvals = repository.approvals(session, [r.id for r, _ in page])
    return Page[PromotionRead](
        items=[to_read(session, r, name, approvals[r.id]) for r, name in page],
        next_cursor=next_cursor,
    )


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
        from_stage=request.from_stage,
        target=request.target_stage,
        alias=request.target_alias,
        status=request.status,
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
