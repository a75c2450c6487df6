"""Routes of rollouts: start, list, read, and the operators' and reviewers' actions."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response

from app.api.deps import (
    ModelOperator,
    ModelPath,
    ModelReader,
    SettingsDep,
    StoreDep,
    UowDep,
    require,
)
from app.api.idempotent import IdempotencyDep
from app.api.problems import responses
from app.api.uow import UnitOfWork
from app.auth.roles import Principal, Role
from app.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.registry.schemas import Page
from app.rollouts import service
from app.rollouts.schemas import (
    AbortBody,
    ActionBody,
    AdvanceBody,
    ApproveBody,
    RolloutCreate,
    RolloutRead,
)

router = APIRouter(tags=["rollouts"])

RolloutId = Annotated[int, Path(ge=1, le=2**62, description="The rollout's id.")]
Reader = Annotated[Principal, Depends(require(Role.READER))]
Reviewer = Annotated[Principal, Depends(require(Role.REVIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]


def _hide_other_models(uow: UnitOfWork, principal: Principal, rollout_id: int) -> None:
    """A model-scoped token gets 404 for another model's rollout, before any action."""
    if principal.model_scope is not None:
        service.get(uow.session, actor=principal, rollout_id=rollout_id)


@router.post(
    "/models/{model}/rollouts",
    status_code=201,
    response_model=RolloutRead,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def start_rollout(
    model: ModelPath, body: RolloutCreate, uow: UowDep, principal: ModelOperator,
    store: StoreDep, settings: SettingsDep, idem: IdempotencyDep,
) -> Response:  # fmt: skip
    """Start rolling a version out against production: canary (increasing weights),
    blue_green (a warm-up as a shadow, then the whole share), shadow (shares scored, never
    answered) or ab (a fixed split). The version must pass the production gates; one
    rollout per model at a time; a frozen model refuses. Audited as `rollout.started`."""
    return idem.run(
        principal,
        body,
        status_code=201,
        create=lambda: service.start(
            uow.session, actor=principal, store=store, settings=settings, model_name=model,
            data=body,
        ),
    )  # fmt: skip


@router.get(
    "/models/{model}/rollouts",
    response_model=Page[RolloutRead],
    responses=responses(400, 401, 403, 404, 422, 503),
)
def list_rollouts(
    model: ModelPath, uow: UowDep, principal: ModelReader,
    state: Literal["running", "paused", "completed", "aborted"] | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[RolloutRead]:  # fmt: skip
    """The model's rollouts, newest first."""
    return service.list_rollouts(
        uow.session, model_name=model, state=state, cursor=cursor, limit=limit
    )


@router.get(
    "/rollouts/{rollout_id}",
    response_model=RolloutRead,
    responses=responses(401, 403, 404, 422, 503),
)
def read_rollout(rollout_id: RolloutId, uow: UowDep, principal: Reader) -> RolloutRead:
    """The rollout: its step, weights, looks (the analysis so far) and every decision
    with its reason."""
    return service.get(uow.session, actor=principal, rollout_id=rollout_id)


@router.post(
    "/rollouts/{rollout_id}/advance",
    response_model=RolloutRead,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def advance_rollout(
    rollout_id: RolloutId, body: AdvanceBody, uow: UowDep, principal: Operator,
    settings: SettingsDep,
) -> RolloutRead:  # fmt: skip
    """Move to the next step now (the last step completes the rollout). Refused while the
    step waits for an approval, or when the model is frozen."""
    _hide_other_models(uow, principal, rollout_id)
    return service.advance(
        uow.session, actor=principal, settings=settings, rollout_id=rollout_id,
        reason=body.reason, from_step=body.step,
    )  # fmt: skip


@router.post(
    "/rollouts/{rollout_id}/approve",
    response_model=RolloutRead,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def approve_rollout(
    rollout_id: RolloutId, body: ApproveBody, uow: UowDep, principal: Reviewer
) -> RolloutRead:
    """Satisfy the current step's approval hold (a reviewer other than the starter)."""
    _hide_other_models(uow, principal, rollout_id)
    return service.approve(
        uow.session, actor=principal, rollout_id=rollout_id, comment=body.comment
    )


@router.post(
    "/rollouts/{rollout_id}/pause",
    response_model=RolloutRead,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def pause_rollout(
    rollout_id: RolloutId, body: ActionBody, uow: UowDep, principal: Operator
) -> RolloutRead:
    """Stop looking and stepping; the weights stay."""
    _hide_other_models(uow, principal, rollout_id)
    return service.pause(uow.session, actor=principal, rollout_id=rollout_id, reason=body.reason)


@router.post(
    "/rollouts/{rollout_id}/resume",
    response_model=RolloutRead,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def resume_rollout(
    rollout_id: RolloutId, body: ActionBody, uow: UowDep, principal: Operator
) -> RolloutRead:
    """Look and step again."""
    _hide_other_models(uow, principal, rollout_id)
    return service.resume(uow.session, actor=principal, rollout_id=rollout_id, reason=body.reason)


@router.post(
    "/rollouts/{rollout_id}/abort",
    response_model=RolloutRead,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def abort_rollout(
    rollout_id: RolloutId, body: AbortBody, uow: UowDep, principal: Operator
) -> RolloutRead:
    """Back to the incumbent alone, stages unchanged; the reason is required. Works on a
    frozen model."""
    _hide_other_models(uow, principal, rollout_id)
    return service.abort(uow.session, actor=principal, rollout_id=rollout_id, reason=body.reason)
