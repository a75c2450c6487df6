"""Routes for gate policies, dry-run evaluation, promotion requests and reviewer decisions."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from app.api.deps import (
    ModelAdmin,
    ModelPath,
    ModelReader,
    ModelSubmitter,
    Reader,
    StoreDep,
    Submitter,
    UowDep,
    VersionPath,
    require,
)
from app.api.idempotent import IdempotencyDep
from app.api.problems import responses
from app.api.uow import UnitOfWork
from app.auth.roles import Principal, Role
from app.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.promotion import operations, requests
from app.promotion import policy as policy_service
from app.promotion.models import PromotionStatus
from app.promotion.schemas import (
    ArchiveRequest,
    Decision,
    GatePolicyDocument,
    GatePolicyRead,
    GateReportRead,
    PromotionCreate,
    PromotionRead,
    RejectDecision,
)
from app.registry import service as registry
from app.registry.models import Stage
from app.registry.schemas import Page, VersionRead

router = APIRouter(tags=["promotions"])

PromotionId = Annotated[int, Path(ge=1, le=2**62, description="The promotion request's id.")]
ReviewerDep = Annotated[Principal, Depends(require(Role.REVIEWER))]


def _hide_other_models(uow: UnitOfWork, principal: Principal, promotion_id: int) -> None:
    """A model-scoped token gets 404 for another model's request, as GET gives it, before
    any decision: not a 403 or a 409 that would tell the request exists and its state."""
    if principal.model_scope is not None:
        requests.get(uow.session, actor=principal, request_id=promotion_id)


def _policy_read(model: str, p: policy_service.PolicyInForce) -> GatePolicyRead:
    return GatePolicyRead(
        model=model,
        revision=p.revision,
        is_default=p.is_default,
        policy=p.document,
        digest=p.digest,
        created_by=p.created_by,
        created_at=p.created_at,
    )


@router.get(
    "/models/{model}/policy",
    response_model=GatePolicyRead,
    responses=responses(401, 403, 404, 422, 503),
)
def read_policy(model: ModelPath, uow: UowDep, principal: ModelReader) -> GatePolicyRead:
    """The gate policy in force (the documented default until one is set)."""
    m = registry.get_model(uow.session, model)
    return _policy_read(m.name, policy_service.in_force(uow.session, m))


@router.put(
    "/models/{model}/policy",
    response_model=GatePolicyRead,
    responses=responses(400, 401, 403, 404, 413, 422, 503),
)
def replace_policy(
    model: ModelPath, body: GatePolicyDocument, uow: UowDep, principal: ModelAdmin
) -> GatePolicyRead:
    """Replace the gate policy; each change is a new, audited revision."""
    return _policy_read(
        model, policy_service.replace(uow.session, actor=principal, model_name=model, document=body)
    )


@router.post(
    "/models/{model}/versions/{version}/evaluate",
    response_model=GateReportRead,
    responses=responses(401, 403, 404, 413, 422, 503),
)
def evaluate(
    model: ModelPath,
    version: VersionPath,
    target: Annotated[Literal["staging", "production"], Query(description="staging or production")],
    uow: UowDep,
    principal: ModelReader,
    store: StoreDep,
) -> GateReportRead:
    """Dry-run the gates of a target stage for a version; no stage changes."""
    return requests.dry_run(
        uow.session, actor=principal, store=store, model_name=model, number=version,
        target=Stage(target),
    )  # fmt: skip


@router.post(
    "/models/{model}/promotions",
    status_code=201,
    response_model=PromotionRead,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def request_promotion(
    model: ModelPath,
    body: PromotionCreate,
    request: Request,
    uow: UowDep,
    principal: ModelSubmitter,
    store: StoreDep,
    idem: IdempotencyDep,
) -> Response:
    """Ask to move a version to staging or production. The gates run now: the answer is
    `rejected` (with the failing rules), `pending_approval`, or `applied`."""
    return idem.run(
        principal,
        body,
        status_code=201,
        create=lambda: requests.request_promotion(
            uow.session, actor=principal, store=store, model_name=model, data=body
        ),
    )


@router.get(
    "/promotions",
    response_model=Page[PromotionRead],
    responses=responses(400, 401, 403, 404, 422, 503),
)
def list_promotions(
    uow: UowDep,
    principal: Reader,
    status: PromotionStatus | None = None,
    model: Annotated[str | None, Query(max_length=128)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[PromotionRead]:
    """The review queue (`?status=pending_approval`), oldest first."""
    return requests.list_requests(
        uow.session,
        actor=principal,
        status=status.value if status else None,
        model_name=model,
        cursor=cursor,
        limit=limit,
    )


@router.get(
    "/promotions/{promotion_id}",
    response_model=PromotionRead,
    responses=responses(401, 403, 404, 422, 503),
)
def read_promotion(promotion_id: PromotionId, uow: UowDep, principal: Reader) -> PromotionRead:
    """One promotion request with its gate report and approvals."""
    return requests.get(uow.session, actor=principal, request_id=promotion_id)


@router.post(
    "/promotions/{promotion_id}/approve",
    response_model=PromotionRead,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def approve_promotion(
    promotion_id: PromotionId,
    uow: UowDep,
    principal: ReviewerDep,
    store: StoreDep,
    body: Decision | None = None,
) -> PromotionRead:
    """Approve a pending request (never one you requested). With enough approvals it is
    applied, after the gates run again if production changed meanwhile."""
    _hide_other_models(uow, principal, promotion_id)
    return requests.approve(
        uow.session,
        actor=principal,
        store=store,
        request_id=promotion_id,
        comment=body.comment if body else None,
    )


@router.post(
    "/promotions/{promotion_id}/reject",
    response_model=PromotionRead,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def reject_promotion(
    promotion_id: PromotionId, body: RejectDecision, uow: UowDep, principal: ReviewerDep
) -> PromotionRead:
    """Reject a pending request, saying why."""
    _hide_other_models(uow, principal, promotion_id)
    return requests.reject(
        uow.session, actor=principal, request_id=promotion_id, comment=body.comment
    )


@router.post(
    "/promotions/{promotion_id}/cancel",
    response_model=PromotionRead,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def cancel_promotion(
    promotion_id: PromotionId, uow: UowDep, principal: Submitter, body: Decision | None = None
) -> PromotionRead:
    """Withdraw a pending request (its requester, or an operator)."""
    _hide_other_models(uow, principal, promotion_id)
    return requests.cancel(
        uow.session,
        actor=principal,
        request_id=promotion_id,
        comment=body.comment if body else None,
    )


@router.post(
    "/models/{model}/versions/{version}/archive",
    response_model=VersionRead,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def archive_version(
    model: ModelPath,
    version: VersionPath,
    uow: UowDep,
    principal: ModelSubmitter,
    body: ArchiveRequest | None = None,
) -> VersionRead:
    """Retire a candidate or staging version (its artifact is kept for rollback)."""
    v = operations.archive(
        uow.session,
        actor=principal,
        model_name=model,
        number=version,
        reason=body.reason if body else None,
    )
    return registry.to_version_read(model, v)
