"""Rollouts: start, the operators' actions, and the automatic look a driver takes.

Every change of a rollout happens under the model's lock, then the rollout's row lock
(:func:`_lock`), in one transaction: the lock order of the transition core, which every
weight change and the completion go through (:class:`RolloutPointer`, then
:class:`StagePointer` for production). State machine (decision record 0019)::

    running --pause--> paused --resume--> running
    running|paused --abort (operator, or a failed analysis)--> aborted
    running --advance (operator, or a passing analysis after the hold)--> next step
    last step --advance--> completed (production for canary / blue_green)

A look (:func:`look`) judges the candidate against the incumbent on everything observed
since the rollout started (the always-valid test of app.gates.canary allows any number
of looks), records it, and acts on :func:`app.gates.canary.decide`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import pagination
from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.roles import SYSTEM, Principal
from app.db.base import utcnow
from app.errors import (
    ApprovalRequired,
    Conflict,
    Forbidden,
    GatesFailed,
    NoIncumbent,
    RolloutInProgress,
    RolloutNotActive,
    RolloutNotFound,
    TransitionNotAllowed,
)
from app.gates.canary import (
    Action,
    AnalysisPlan,
    Look,
    LookStatus,
    MetricKind,
    MetricSpec,
    decide,
    judge,
)
from app.observations import service as observations
from app.promotion import transitions
from app.promotion.evaluation import evaluate
from app.promotion.requests import supersede_others
from app.promotion.transitions import Loaded, Move, RolloutPointer, StagePointer
from app.registry import service as registry
from app.registry.models import Stage
from app.registry.schemas import Page
from app.rollouts import repository, wakeup
from app.rollouts.models import ACTIVE_STATES, Rollout, RolloutState
from app.rollouts.schemas import (
    DecisionRead,
    LookRead,
    RolloutCreate,
    RolloutRead,
    StepRead,
)
from app.serving import service as serving
from app.settings import Settings
from app.storage.base import ArtifactStore

log = logging.getLogger("modelgate.rollouts")

MAX_LOOKS_KEPT = 50
PROMOTING = ("canary", "blue_green")


# Reading ------------------------------------------------------------------------------


def to_read(rollout: Rollout, model_name: str) -> RolloutRead:
    weights = final_weights(rollout)
    return RolloutRead(
        id=rollout.id,
        model=model_name,
        version=rollout.version,
        incumbent_version=rollout.incumbent_version,
        strategy=rollout.strategy,
        state=rollout.state,
        step=rollout.step,
        switched=rollout.switched,
        steps=[StepRead(**s) for s in rollout.steps],
        weights=weights,
        shadow_share=rollout.share,
        promote_on_complete=rollout.promote_on_complete,
        analysis=rollout.analysis,
        looks=[LookRead(**look) for look in rollout.looks],
        look_count=rollout.look_count,
        next_look_at=rollout.next_look_at if rollout.state == RolloutState.RUNNING else None,
        decisions=[DecisionRead(**d) for d in rollout.decisions],
        reason=rollout.reason,
        created_by=rollout.created_by,
        created_at=rollout.created_at,
        updated_at=rollout.updated_at,
        ended_at=rollout.ended_at,
        serving_revision=rollout.serving_revision,
    )


def final_weights(rollout: Rollout) -> dict[str, float]:
    """What serves: while active, the incumbent and the candidate by the current weight;
    once ended, what the rollout left serving (decision record 0022): the version alone
    when it completed into production, else the incumbent alone (an abort, or a shadow
    or A/B rollout completed without promotion)."""
    weights: dict[str, float] = {}
    if rollout.state in ACTIVE_STATES:
        if rollout.incumbent_version is not None:
            weights[str(rollout.incumbent_version)] = 100.0 - rollout.weight
        if rollout.weight > 0:
            weights[str(rollout.version)] = rollout.weight
    elif rollout.state == RolloutState.COMPLETED.value and rollout.promote_on_complete:
        weights[str(rollout.version)] = 100.0
    elif rollout.incumbent_version is not None:
        weights[str(rollout.incumbent_version)] = 100.0
    return weights


def _found(session: Session, actor: Principal, rollout_id: int) -> tuple[Rollout, str]:
    rollout = repository.get(session, rollout_id)
    if rollout is None:
        raise RolloutNotFound(f"no rollout {rollout_id}")
    name = repository.model_name_of(session, rollout.model_id)
    if not actor.may_touch_model(name):
        raise RolloutNotFound(f"no rollout {rollout_id}")
    return rollout, name


def get(session: Session, *, actor: Principal, rollout_id: int) -> RolloutRead:
    rollout, name = _found(session, actor, rollout_id)
    return to_read(rollout, name)


def list_rollouts(
    session: Session, *, model_name: str, state: str | None, cursor: str | None, limit: int
) -> Page[RolloutRead]:
    model = registry.get_model(session, model_name)
    rows = repository.page(
        session, model_id=model.id, state=state,
        after_id=pagination.after(cursor, int), limit=limit + 1,
    )  # fmt: skip
    page, next_cursor = pagination.split_page(rows, limit, lambda r: [r.id])
    return Page[RolloutRead](items=[to_read(r, model.name) for r in page], next_cursor=next_cursor)


# Helpers ------------------------------------------------------------------------------


def plan_of(rollout: Rollout) -> AnalysisPlan:
    spec = rollout.analysis
    return AnalysisPlan(
        metrics=tuple(
            MetricSpec(
                name=m["name"], kind=MetricKind(m["kind"]), tolerance=m["tolerance"],
                weight=m["weight"], min_sample=m["min_sample"], critical=m["critical"],
                tau=m.get("tau"),
            )
            for m in spec["metrics"]
        ),
        alpha=spec["alpha"],
        pass_score=spec["pass_score"],
        marginal_score=spec["marginal_score"],
        failure_limit=spec["failure_limit"],
    )  # fmt: skip


def candidate_role(rollout: Rollout) -> str:
    """The role the candidate's observations come in: a shadow scores without answering."""
    if rollout.strategy == "shadow" or (rollout.strategy == "blue_green" and not rollout.switched):
        return "shadow"
    return "primary"


def _exposure(rollout: Rollout) -> tuple[float, float]:
    """``(weight, share)`` of the current step."""
    weight = float(rollout.steps[rollout.step]["weight"])
    if rollout.strategy == "shadow":
        return 0.0, weight
    if rollout.strategy == "blue_green" and not rollout.switched:
        return 0.0, 100.0
    return weight, 0.0


def _since(rollout: Rollout, settings: Settings) -> datetime:
    return observations.window_start(rollout.created_at, settings.observation_window_seconds)


def _candidate_requests(session: Session, rollout: Rollout, settings: Settings) -> int:
    arm = observations.arm_data(
        session, model_id=rollout.model_id, version=rollout.version,
        role=candidate_role(rollout), since=_since(rollout, settings),
        until=utcnow() + timedelta(days=1),
    )  # fmt: skip
    return arm.errors.trials if arm.errors is not None else 0


def _decision(
    rollout: Rollout, action: str, actor: Principal, reason: str | None, *, automatic: bool,
    now: datetime,
) -> None:  # fmt: skip
    entry = {"at": now.isoformat(), "action": action, "step": rollout.step,
             "actor": actor.name, "automatic": automatic, "reason": reason}  # fmt: skip
    rollout.decisions = [*rollout.decisions, entry]
    rollout.updated_at = now


def _start_step(session: Session, rollout: Rollout, settings: Settings, now: datetime) -> None:
    rollout.weight, rollout.share = _exposure(rollout)
    rollout.step_started_at = now
    rollout.step_base_requests = _candidate_requests(session, rollout, settings)
    steps = [dict(s) for s in rollout.steps]
    if steps[rollout.step].get("started_at") is None or rollout.strategy == "blue_green":
        steps[rollout.step]["started_at"] = now.isoformat()
    rollout.steps = steps


def _move(
    session: Session, *, actor: Principal, loaded: Loaded, rollout: Rollout, action: AuditAction,
    reason: str | None, details: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    transitions.move(
        session, actor=actor, loaded=loaded,
        change=Move(
            pointer=RolloutPointer(rollout.id, action, rollout.weight, rollout.share),
            version=loaded.version, via="rollout", reason=reason,
            details={"strategy": rollout.strategy, "step": rollout.step, "state": rollout.state,
                     **(details or {})},
        ),
    )  # fmt: skip
    rollout.serving_revision = serving.current_revision(session, model_name=loaded.model.name)


def _lock(session: Session, actor: Principal, rollout_id: int) -> tuple[Rollout, Loaded]:
    """The model, the rollout's version and production (transitions.load_for_rollout), then
    the rollout's row: the lock order of every writer."""
    found, name = _found(session, actor, rollout_id)
    loaded = transitions.load_for_rollout(session, model_name=name, number=found.version)
    rollout = repository.get(session, rollout_id, for_update=True)
    assert rollout is not None
    return rollout, loaded


def _require_active(rollout: Rollout, *states: RolloutState) -> None:
    if rollout.state not in {s.value for s in states}:
        wanted = " or ".join(s.value for s in states)
        raise RolloutNotActive(
            f"rollout {rollout.id} is {rollout.state}; this needs it {wanted}",
            state=rollout.state,
        )


# Start --------------------------------------------------------------------------------


def start(
    session: Session, *, actor: Principal, store: ArtifactStore, settings: Settings,
    model_name: str, data: RolloutCreate,
) -> RolloutRead:  # fmt: skip
    """Check everything, then write the rollout and its first step's weight (one move)."""
    loaded = transitions.load_for_rollout(session, model_name=model_name, number=data.version)
    model, version, policy = loaded.model, loaded.version, loaded.policy
    assert policy is not None
    transitions.ensure_not_frozen(model)
    other = repository.active(session, model.id, for_update=True)
    if other is not None:
        raise RolloutInProgress(
            f"rollout {other.id} of version {other.version} is {other.state} on model "
            f"{model.name!r}; abort or finish it first",
            rollout_id=other.id,
        )
    if version.stage in (Stage.PRODUCTION, Stage.ARCHIVED):
        raise TransitionNotAllowed(
            f"version {version.version} is {version.stage.value}; a rollout takes a "
            "candidate or staging version toward production",
            current_stage=version.stage.value,
        )
    promote = (
        data.promote_on_complete
        if data.promote_on_complete is not None
        else data.strategy in PROMOTING
    )
    if promote and Stage.PRODUCTION not in transitions.allowed_moves(version.stage, policy):
        raise TransitionNotAllowed(
            f"the policy requires staging before production; promote version "
            f"{version.version} to staging before rolling it out",
            current_stage=version.stage.value,
        )
    holder = loaded.holder
    if holder is None:
        raise NoIncumbent(
            f"model {model.name!r} has no production version to roll out against; promote "
            "the first version directly"
        )
    result = evaluate(
        session, store=store, model=model, version=version, target=Stage.PRODUCTION,
        policy=policy, production=holder,
    )  # fmt: skip
    if not result.passed:
        failed = result.report.failed
        raise GatesFailed(
            f"version {version.version} does not pass the production gates: " + ", ".join(failed),
            failed=failed,
            report=result.document,
        )
    now = utcnow()
    analysis = data.analysis.model_dump(mode="json")
    rollout = Rollout(
        model_id=model.id, version_id=version.id, version=version.version,
        incumbent_version=holder.version, strategy=data.strategy,
        state=RolloutState.RUNNING.value, step=0, switched=False, weight=0.0, share=0.0,
        promote_on_complete=promote,
        steps=[{"weight": s.weight, "hold": s.hold.model_dump(mode="json"),
                "started_at": None, "approved_by": None} for s in data.steps],
        analysis=analysis, looks=[], decisions=[], look_count=0, last_look_at=None,
        next_look_at=now + timedelta(seconds=data.analysis.interval_seconds),
        step_started_at=now, step_base_requests=0, reason=None, start_reason=data.reason,
        created_by=actor.name, created_at=now, updated_at=now, ended_at=None,
        serving_revision=0,
    )  # fmt: skip
    _start_step(session, rollout, settings, now)
    session.add(rollout)
    try:
        session.flush()
    except IntegrityError:  # pragma: no cover - the model lock makes this unreachable
        raise RolloutInProgress("another rollout of this model started concurrently") from None
    _decision(rollout, "started", actor, data.reason, automatic=False, now=now)
    _move(
        session, actor=actor, loaded=loaded, rollout=rollout,
        action=AuditAction.ROLLOUT_STARTED, reason=data.reason,
        details={"incumbent_version": holder.version, "report_digest": result.report.digest},
    )  # fmt: skip
    session.flush()
    wakeup.wake_after_commit(session, model.name)  # an idle driver here ticks slowly
    return to_read(rollout, model.name)


# Operators' actions -------------------------------------------------------------------


def _advance(
    session: Session, *, actor: Principal, loaded: Loaded, rollout: Rollout, settings: Settings,
    reason: str, automatic: bool, now: datetime,
) -> None:  # fmt: skip
    """One step on: the next step's weight, the blue-green switch, or completion."""
    last = rollout.step >= len(rollout.steps) - 1
    if rollout.strategy == "blue_green" and not rollout.switched:
        rollout.switched = True
    elif not last:
        rollout.step += 1
    else:
        _complete(session, actor=actor, loaded=loaded, rollout=rollout, reason=reason,
                  automatic=automatic, now=now)  # fmt: skip
        return
    _start_step(session, rollout, settings, now)
    rollout.next_look_at = now + timedelta(seconds=rollout.analysis["interval_seconds"])
    _decision(rollout, "advanced", actor, reason, automatic=automatic, now=now)
    _move(session, actor=actor, loaded=loaded, rollout=rollout,
          action=AuditAction.ROLLOUT_ADVANCED, reason=reason,
          details={"automatic": automatic})  # fmt: skip


def _end(
    rollout: Rollout, state: RolloutState, actor: Principal, reason: str, *, automatic: bool,
    now: datetime,
) -> None:  # fmt: skip
    """The rollout ends (completed or aborted): no weight, no more looks, the decision kept."""
    rollout.state = state.value
    rollout.weight = rollout.share = 0.0
    rollout.ended_at = now
    rollout.reason = reason
    rollout.next_look_at = None
    _decision(rollout, state.value, actor, reason, automatic=automatic, now=now)


def _complete(
    session: Session, *, actor: Principal, loaded: Loaded, rollout: Rollout, reason: str,
    automatic: bool, now: datetime,
) -> None:  # fmt: skip
    _end(rollout, RolloutState.COMPLETED, actor, reason, automatic=automatic, now=now)
    if rollout.promote_on_complete:
        transitions.move(
            session, actor=actor, loaded=loaded,
            change=Move(pointer=StagePointer(Stage.PRODUCTION), version=loaded.version,
                        via="rollout", reason=f"rollout {rollout.id} completed: {reason}",
                        details={"rollout_id": rollout.id},
                        archived_reason=f"replaced by version {rollout.version} "
                        f"(rollout {rollout.id})"),
        )  # fmt: skip
        supersede_others(session, actor=actor, loaded=loaded, keep=None)
        rollout.serving_revision = serving.current_revision(session, model_name=loaded.model.name)
        audit.record(
            session, actor=actor, action=AuditAction.ROLLOUT_COMPLETED,
            model=loaded.model.name, version=rollout.version, reason=reason,
            details={"rollout_id": rollout.id, "automatic": automatic, "promoted": True,
                     "replaced": rollout.incumbent_version, "strategy": rollout.strategy},
        )  # fmt: skip
    else:
        _move(session, actor=actor, loaded=loaded, rollout=rollout,
              action=AuditAction.ROLLOUT_COMPLETED, reason=reason,
              details={"automatic": automatic, "promoted": False})  # fmt: skip


def _abort(
    session: Session, *, actor: Principal, loaded: Loaded, rollout: Rollout, reason: str,
    automatic: bool, now: datetime,
) -> None:  # fmt: skip
    _end(rollout, RolloutState.ABORTED, actor, reason, automatic=automatic, now=now)
    _move(session, actor=actor, loaded=loaded, rollout=rollout,
          action=AuditAction.ROLLOUT_ABORTED, reason=reason,
          details={"automatic": automatic})  # fmt: skip


def _approval_pending(rollout: Rollout) -> bool:
    step = rollout.steps[rollout.step]
    return bool(step["hold"].get("approval")) and step.get("approved_by") is None


def advance(
    session: Session, *, actor: Principal, settings: Settings, rollout_id: int,
    reason: str | None, from_step: int | None = None,
) -> RolloutRead:  # fmt: skip
    """An operator moves the rollout one step on now (holds other than an approval and
    the analysis are the operator's call; a freeze refuses). ``from_step``: the step the
    caller saw; if the rollout has moved on since, nothing moves (409)."""
    rollout, loaded = _lock(session, actor, rollout_id)
    _require_active(rollout, RolloutState.RUNNING)
    if from_step is not None and from_step != rollout.step:
        raise RolloutNotActive(
            f"rollout {rollout.id} is at step {rollout.step}, not {from_step}: it moved on "
            "meanwhile; read it again",
            state=rollout.state, step=rollout.step,
        )  # fmt: skip
    transitions.ensure_not_frozen(loaded.model)
    if _approval_pending(rollout):
        raise ApprovalRequired(
            f"step {rollout.step} of rollout {rollout.id} waits for a reviewer's approval "
            f"(POST /api/v1/rollouts/{rollout.id}/approve)"
        )
    _advance(session, actor=actor, loaded=loaded, rollout=rollout, settings=settings,
             reason=reason or "advanced by an operator", automatic=False,
             now=utcnow())  # fmt: skip
    session.flush()
    return to_read(rollout, loaded.model.name)


def pause(
    session: Session, *, actor: Principal, rollout_id: int, reason: str | None
) -> RolloutRead:
    """No looks and no steps while paused; the weights stay as they are."""
    return _set_paused(session, actor=actor, rollout_id=rollout_id, reason=reason, paused=True)


def resume(
    session: Session, *, actor: Principal, rollout_id: int, reason: str | None
) -> RolloutRead:
    """Running again, with a look due at once."""
    return _set_paused(session, actor=actor, rollout_id=rollout_id, reason=reason, paused=False)


def _set_paused(
    session: Session, *, actor: Principal, rollout_id: int, reason: str | None, paused: bool
) -> RolloutRead:
    rollout, loaded = _lock(session, actor, rollout_id)
    _require_active(rollout, RolloutState.RUNNING if paused else RolloutState.PAUSED)
    now = utcnow()
    rollout.state = (RolloutState.PAUSED if paused else RolloutState.RUNNING).value
    rollout.next_look_at = None if paused else now
    _decision(rollout, "paused" if paused else "resumed", actor, reason, automatic=False, now=now)
    action = AuditAction.ROLLOUT_PAUSED if paused else AuditAction.ROLLOUT_RESUMED
    audit.record(session, actor=actor, action=action,
                 model=loaded.model.name, version=rollout.version, reason=reason,
                 details={"rollout_id": rollout.id, "step": rollout.step})  # fmt: skip
    session.flush()
    if not paused:
        wakeup.wake_after_commit(session, loaded.model.name)
    return to_read(rollout, loaded.model.name)


def abort(session: Session, *, actor: Principal, rollout_id: int, reason: str) -> RolloutRead:
    """Back to the incumbent alone; stages unchanged. Works on a frozen model."""
    rollout, loaded = _lock(session, actor, rollout_id)
    _require_active(rollout, RolloutState.RUNNING, RolloutState.PAUSED)
    _abort(session, actor=actor, loaded=loaded, rollout=rollout, reason=reason,
           automatic=False, now=utcnow())  # fmt: skip
    session.flush()
    return to_read(rollout, loaded.model.name)


def approve(
    session: Session, *, actor: Principal, rollout_id: int, comment: str | None
) -> RolloutRead:
    """A reviewer (not the rollout's creator) satisfies the current step's approval hold."""
    rollout, loaded = _lock(session, actor, rollout_id)
    _require_active(rollout, RolloutState.RUNNING, RolloutState.PAUSED)
    if actor.name == rollout.created_by:
        raise Forbidden("a reviewer cannot approve a rollout they started")
    step = rollout.steps[rollout.step]
    if not step["hold"].get("approval"):
        raise Conflict(f"step {rollout.step} of rollout {rollout.id} has no approval hold")
    if step.get("approved_by") is not None:
        raise Conflict(
            f"step {rollout.step} of rollout {rollout.id} was approved by {step['approved_by']}"
        )
    now = utcnow()
    steps = [dict(s) for s in rollout.steps]
    steps[rollout.step]["approved_by"] = actor.name
    rollout.steps = steps
    if rollout.state == RolloutState.RUNNING:
        rollout.next_look_at = now
    _decision(rollout, "approved", actor, comment, automatic=False, now=now)
    audit.record(session, actor=actor, action=AuditAction.ROLLOUT_APPROVED,
                 model=loaded.model.name, version=rollout.version, reason=comment,
                 details={"rollout_id": rollout.id, "step": rollout.step})  # fmt: skip
    session.flush()
    if rollout.state == RolloutState.RUNNING:
        wakeup.wake_after_commit(session, loaded.model.name)
    return to_read(rollout, loaded.model.name)


# The automatic look -------------------------------------------------------------------


def _hold_state(rollout: Rollout, now: datetime, observed: int) -> tuple[bool, str]:
    """Whether the current step's hold is over, and what it still waits for."""
    hold = rollout.steps[rollout.step]["hold"]
    waiting: list[str] = []
    warming = rollout.strategy == "blue_green" and not rollout.switched
    duration = hold.get("duration_seconds")
    # blue_green: the warm-up (as a shadow) waits for observations and approval; the
    # duration is the hold after the switch, when switching back is one abort away.
    if duration is not None and not warming:
        elapsed = (now - rollout.step_started_at).total_seconds()
        if elapsed < duration:
            waiting.append(f"{duration - elapsed:.1f} s of the {duration} s hold")
    minimum = hold.get("min_observations")
    if minimum is not None and (warming or rollout.strategy != "blue_green"):
        seen = observed - rollout.step_base_requests
        if seen < minimum:
            waiting.append(f"{seen} of {minimum} observations")
    approved = rollout.steps[rollout.step].get("approved_by") is not None
    switched = rollout.strategy == "blue_green" and rollout.switched
    if hold.get("approval") and not approved and not switched:
        waiting.append("a reviewer's approval")
    return not waiting, "; ".join(waiting)


def _prior_looks(rollout: Rollout) -> list[Look]:
    return [
        Look(entry["number"], (), entry["score"], LookStatus(entry["status"]), False)
        for entry in rollout.looks
    ]


def hold_progress(session: Session, *, settings: Settings, rollout_id: int) -> str:
    """What the current step's hold still waits for ("" when it is over), as a look
    would say it now (read only)."""
    rollout = repository.get(session, rollout_id)
    if rollout is None or rollout.state not in ACTIVE_STATES:
        return ""
    observed = _candidate_requests(session, rollout, settings)
    _, waiting = _hold_state(rollout, utcnow(), observed)
    return waiting


def look(
    session: Session, *, settings: Settings, rollout_id: int, expected_count: int,
    now: datetime | None = None, early: bool = False,
) -> str | None:  # fmt: skip
    """Take the rollout's next look if it is still due (``next_look_at``, one
    ``interval_seconds`` after the last look) and nobody took it meanwhile
    (``expected_count``: the look count the caller read before locking). Returns what the
    look decided (``advance``, ``hold``, ``abort``, ``complete``) or None when it did not look.
    ``now``: the driver's clock (tests inject one).

    ``early``: an observation batch asks, before the look is due, whether a critical
    metric already fails. Only such a failure is acted on (the look is recorded and the
    rollout aborted at once); otherwise nothing is written and the look waits for its
    interval. The always-valid test keeps its alpha however often it is consulted
    (decision 0018), so judging harm on every batch costs no false aborts (decision 0022).
    """
    rollout = repository.get(session, rollout_id)
    if rollout is None or rollout.state != RolloutState.RUNNING.value:
        return None
    rollout, loaded = _lock(session, SYSTEM, rollout_id)
    now = now or utcnow()
    interval = float(rollout.analysis["interval_seconds"])
    if rollout.state != RolloutState.RUNNING.value or rollout.look_count != expected_count:
        return None
    due = rollout.next_look_at is not None and rollout.next_look_at <= now
    if not due and not (early and rollout.next_look_at is not None and plan_of(rollout).critical):
        return None
    model = loaded.model
    production = loaded.holder if loaded.holder is not None else (
        loaded.version if loaded.version.stage is Stage.PRODUCTION else None
    )  # fmt: skip
    if production is None or production.version != rollout.incumbent_version:
        now_serving = production.version if production is not None else "none"
        _abort(session, actor=SYSTEM, loaded=loaded, rollout=rollout, automatic=True, now=now,
               reason=f"production changed under the rollout (was version "
               f"{rollout.incumbent_version}, now {now_serving})")  # fmt: skip
        return "abort"
    plan = plan_of(rollout)
    since = _since(rollout, settings)
    until = now + timedelta(seconds=settings.observation_window_seconds)
    role = candidate_role(rollout)
    canary = observations.arm_data(session, model_id=model.id, version=rollout.version,
                                   role=role, since=since, until=until)  # fmt: skip
    incumbent = observations.arm_data(
        session, model_id=model.id, version=production.version, role="primary",
        since=since, until=until,
    )  # fmt: skip
    number = rollout.look_count + 1
    result = judge(plan, canary, incumbent, look=number)
    if not due and not result.critical_failure:
        return None  # an early look acts on a critical failure only
    observed = canary.errors.trials if canary.errors is not None else 0
    hold_over, waiting = _hold_state(rollout, now, observed)
    decision = decide(plan, [*_prior_looks(rollout), result], hold_satisfied=hold_over)
    action = decision.action.value
    reason = decision.reason
    if decision.action is Action.HOLD and waiting and "hold not over" in reason:
        reason = f"{reason}: waiting for {waiting}"
    if decision.action is Action.ADVANCE and model.frozen_at is not None:
        action, reason = "hold", f"{reason}, but the model is frozen ({model.frozen_reason})"
    entry = {
        "number": number, "at": now.isoformat(), "step": rollout.step, "score": result.score,
        "status": result.status.value, "action": action, "reason": reason,
        "results": [r.to_dict() for r in result.results],
    }  # fmt: skip
    rollout.looks = [*rollout.looks, entry][-MAX_LOOKS_KEPT:]
    rollout.look_count = number
    rollout.last_look_at = now
    rollout.next_look_at = now + timedelta(seconds=interval)
    rollout.updated_at = now
    if action == "abort":
        _abort(session, actor=SYSTEM, loaded=loaded, rollout=rollout, automatic=True, now=now,
               reason=f"look {number}: {reason}")  # fmt: skip
    elif action == "advance":
        completing = rollout.step >= len(rollout.steps) - 1 and not (
            rollout.strategy == "blue_green" and not rollout.switched
        )
        _advance(session, actor=SYSTEM, loaded=loaded, rollout=rollout, settings=settings,
                 reason=f"look {number}: {reason}", automatic=True, now=now)  # fmt: skip
        action = "complete" if completing else "advance"
    session.flush()
    return action


def due(session: Session, *, now: datetime | None = None) -> list[tuple[int, int]]:
    """``(id, look_count)`` of the running rollouts whose look is due at ``now``."""
    return repository.due(session, now=now or utcnow())


def running(session: Session, *, model_name: str) -> list[tuple[int, int]]:
    """``(id, look_count)`` of the model's running rollout (for an early look)."""
    return repository.running(session, model_name=model_name)


def any_running(session: Session) -> bool:
    """Whether any rollout runs (the driver ticks slowly while none does)."""
    return repository.any_running(session)
