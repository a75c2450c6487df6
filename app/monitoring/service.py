"""Watching production after release (decision record 0020).

Production's observations since it became production (its open production period) are
compared with the previous version's observations while *that* version was production
(the last ``baseline_hours`` of its period), with the canary analysis's always-valid
test (:func:`app.gates.canary.judge`, the baseline as the incumbent arm): every scalar
metric keeps its share of ``alpha`` for the whole period however many checks are made.
Each check is classified as a rollout's look is: the weighted score of passing metrics
against the policy's ``pass_score`` and ``marginal_score`` gives pass, marginal or fail.
``failure_limit`` failed checks in a row mark the period degraded (the defaults, 100, 100
and 1, degrade on the first check that fails any metric): ``production.degraded`` is
audited and published once per period, and with ``on_degraded: rollback`` production is
rolled back through the rollback operation (the transition core), with the reason.

Every check runs in one transaction that first locks the model (as every write to a
model does), then reads or creates the period's :class:`ProductionWatch` row and checks
it is due: two server processes never both take a look nor both raise the event. A
period entered by a rollback has no baseline (the version it replaced is the one that
was taken back): it is not judged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.roles import Principal, Role
from app.errors import AppError
from app.gates.canary import (
    AnalysisPlan,
    LookStatus,
    MetricKind,
    MetricSpec,
    Verdict,
    judge,
)
from app.monitoring.models import ProductionWatch
from app.monitoring.schemas import Degradation, MonitoringRead
from app.observations.service import arm_data, window_start
from app.promotion import operations
from app.promotion.models import ProductionPeriod
from app.promotion.policy import in_force
from app.promotion.schemas import MonitoringPolicy
from app.registry import service as registry
from app.registry.models import RegisteredModel
from app.settings import Settings
from app.storage.base import ArtifactStore

log = logging.getLogger("modelgate.monitoring")

MONITOR = Principal(name="system:monitoring", role=Role.ADMIN, kind="service")


class Status:
    PENDING = "pending"
    WATCHING = "watching"
    DEGRADED = "degraded"
    NO_BASELINE = "no_baseline"
    DISABLED = "disabled"


def plan_of(policy: MonitoringPolicy) -> AnalysisPlan:
    return AnalysisPlan(
        metrics=tuple(
            MetricSpec(
                name=m.name,
                kind=MetricKind(m.kind),
                tolerance=m.tolerance,
                weight=m.weight,
                min_sample=m.min_sample,
            )
            for m in policy.metrics
        ),
        alpha=policy.alpha,
        pass_score=policy.pass_score,
        marginal_score=policy.marginal_score,
        failure_limit=policy.failure_limit,
    )


@dataclass(frozen=True)
class Baseline:
    version: int
    since: datetime
    until: datetime


def _open_period(session: Session, model_id: int) -> ProductionPeriod | None:
    return session.scalars(
        select(ProductionPeriod)
        .where(ProductionPeriod.model_id == model_id, ProductionPeriod.ended_at.is_(None))
        .order_by(ProductionPeriod.id.desc())
        .limit(1)
    ).first()


def baseline_of(
    session: Session, period: ProductionPeriod, policy: MonitoringPolicy
) -> Baseline | None:
    """The previous version's last ``baseline_hours`` as production, when the period was
    entered by a promotion that replaced it."""
    if period.via != "promotion" or period.replaced_version is None:
        return None
    previous = session.scalars(
        select(ProductionPeriod)
        .where(
            ProductionPeriod.model_id == period.model_id,
            ProductionPeriod.version == period.replaced_version,
            ProductionPeriod.id < period.id,
            ProductionPeriod.ended_at.is_not(None),
        )
        .order_by(ProductionPeriod.id.desc())
        .limit(1)
    ).first()
    if previous is None or previous.ended_at is None:
        return None
    since = max(previous.started_at, previous.ended_at - timedelta(hours=policy.baseline_hours))
    return Baseline(previous.version, since, previous.ended_at)


def _watch(session: Session, model: RegisteredModel, period: ProductionPeriod) -> ProductionWatch:
    row = session.scalars(
        select(ProductionWatch).where(ProductionWatch.period_id == period.id)
    ).first()
    if row is None:
        row = ProductionWatch(
            model_id=model.id,
            period_id=period.id,
            version=period.version,
            status=Status.PENDING,
            looks=0,
        )
        session.add(row)
        session.flush()
    return row


def check(
    session: Session,
    *,
    settings: Settings,
    store: ArtifactStore,
    model_name: str,
    now: datetime | None = None,
    force: bool = False,
) -> ProductionWatch | None:
    """One check of the model's production, if due (or ``force``); in the caller's
    transaction. Returns the period's watch row (``None``: no production)."""
    now = now or datetime.now(UTC)
    model = registry.lock_model(session, model_name)
    period = _open_period(session, model.id)
    if period is None:
        return None
    watch = _watch(session, model, period)
    policy = in_force(session, model).document.monitoring_in_force
    if watch.status == Status.DEGRADED:
        return watch  # raised once per period; nothing more to decide
    if (
        not force
        and watch.last_checked_at is not None
        and now - watch.last_checked_at < timedelta(seconds=policy.interval_seconds)
    ):
        return watch
    watch.last_checked_at = now
    if not policy.enabled:
        watch.status = Status.DISABLED
        return watch
    baseline = baseline_of(session, period, policy)
    if baseline is None:
        watch.status = Status.NO_BASELINE
        return watch
    watch.baseline_version = baseline.version
    # Windows are the store's grain: a window is read when it starts in the range, so the
    # range starts at the start of the window the period (or baseline) began in.
    seconds = settings.observation_window_seconds
    incumbent = arm_data(
        session, model_id=model.id, version=baseline.version, role="primary",
        since=window_start(baseline.since, seconds), until=baseline.until,
    )  # fmt: skip
    current = arm_data(
        session, model_id=model.id, version=period.version, role="primary",
        since=window_start(period.started_at, seconds),
        until=now + timedelta(seconds=seconds),
    )  # fmt: skip
    plan = plan_of(policy)
    previous = watch.last_look or {}
    watch.looks += 1
    look = judge(plan, current, incumbent, look=watch.looks)
    # A check is classified as a rollout's look is (pass, marginal, fail by the score);
    # production is degraded after failure_limit failed checks in a row.
    streak = int(previous.get("failed_in_a_row", 0)) + 1 if look.status is LookStatus.FAIL else 0
    watch.last_look = {**look.to_dict(), "failed_in_a_row": streak}
    failed = [r for r in look.results if r.verdict is Verdict.FAIL]
    if streak < policy.failure_limit:
        watch.status = Status.WATCHING
        return watch
    reason = (
        f"production version {period.version} degraded against version {baseline.version}'s "
        "baseline: " + "; ".join(f"{r.metric}: {r.reason}" for r in failed)
    )
    if policy.failure_limit > 1 or policy.marginal_score < 100:
        reason += (
            f" (score {look.score}, {streak} failed check(s) in a row, failure_limit "
            f"{policy.failure_limit})"
        )
    watch.status = Status.DEGRADED
    watch.degraded_at = now
    watch.degraded_reason = reason
    _raise(session, store, model, period, watch, policy, baseline, reason, failed)
    return watch


def _raise(
    session: Session,
    store: ArtifactStore,
    model: RegisteredModel,
    period: ProductionPeriod,
    watch: ProductionWatch,
    policy: MonitoringPolicy,
    baseline: Baseline,
    reason: str,
    failed: list[Any],
) -> None:
    details: dict[str, Any] = {
        "period_started_at": period.started_at.isoformat(),
        "baseline_version": baseline.version,
        "baseline_since": baseline.since.isoformat(),
        "baseline_until": baseline.until.isoformat(),
        "look": watch.looks,
        "failed": [r.metric for r in failed],
        "score": (watch.last_look or {}).get("score"),
        "failed_in_a_row": (watch.last_look or {}).get("failed_in_a_row"),
        "failure_limit": policy.failure_limit,
        "results": (watch.last_look or {}).get("metrics", []),
        "alpha": policy.alpha,
        "on_degraded": policy.on_degraded,
    }

    def record(extra: dict[str, Any]) -> None:
        audit.record(
            session, actor=MONITOR, action=AuditAction.PRODUCTION_DEGRADED, model=model.name,
            version=period.version, reason=reason, details={**details, **extra},
        )  # fmt: skip

    if policy.on_degraded != "rollback":
        watch.action = "alert"
        record({"action": "alert"})
        return
    savepoint = session.begin_nested()
    try:
        record({"action": "rollback"})
        done = operations.rollback(
            session, actor=MONITOR, store=store, model_name=model.name, to_version=None,
            reason=f"automatic rollback: {reason}",
        )  # fmt: skip
        savepoint.commit()
    except AppError as exc:
        savepoint.rollback()
        watch.action = "rollback_failed"
        watch.action_detail = str(exc)
        log.warning("monitoring of %s: the automatic rollback failed: %s", model.name, exc)
        record({"action": "rollback_failed", "rollback_error": str(exc)})
        return
    watch.action = "rollback"
    watch.action_detail = (
        f"rolled back from version {done.replaced_version} to version {done.serving_version}"
    )


def models_in_production(session: Session) -> list[str]:
    return list(
        session.scalars(
            select(RegisteredModel.name)
            .join(ProductionPeriod, ProductionPeriod.model_id == RegisteredModel.id)
            .where(ProductionPeriod.ended_at.is_(None))
            .distinct()
            .order_by(RegisteredModel.name)
        ).all()
    )


def status(session: Session, *, model_name: str) -> MonitoringRead:
    model = registry.get_model(session, model_name)
    policy = in_force(session, model).document.monitoring_in_force
    period = _open_period(session, model.id)
    watch = (
        session.scalars(
            select(ProductionWatch).where(ProductionWatch.period_id == period.id)
        ).first()
        if period is not None
        else None
    )
    baseline = baseline_of(session, period, policy) if period is not None else None
    newest = session.scalars(
        select(ProductionWatch)
        .where(ProductionWatch.model_id == model.id, ProductionWatch.degraded_at.is_not(None))
        .order_by(ProductionWatch.id.desc())
        .limit(1)
    ).first()
    last_degradation = (
        Degradation(
            version=newest.version,
            baseline_version=newest.baseline_version,
            degraded_at=newest.degraded_at,
            reason=newest.degraded_reason,
            action=newest.action,
            action_detail=newest.action_detail,
        )
        if newest is not None and newest.degraded_at is not None
        else None
    )
    return MonitoringRead(
        last_degradation=last_degradation,
        model=model.name,
        production_version=period.version if period is not None else None,
        period_started_at=period.started_at if period is not None else None,
        baseline_version=baseline.version if baseline else None,
        baseline_since=baseline.since if baseline else None,
        baseline_until=baseline.until if baseline else None,
        status=(
            watch.status
            if watch is not None
            else (Status.PENDING if period is not None else "no_production")
        ),
        looks=watch.looks if watch is not None else 0,
        last_checked_at=watch.last_checked_at if watch is not None else None,
        degraded_at=watch.degraded_at if watch is not None else None,
        reason=watch.degraded_reason if watch is not None else None,
        action=watch.action if watch is not None else None,
        action_detail=watch.action_detail if watch is not None else None,
        last_look=watch.last_look if watch is not None else None,
        failed_in_a_row=int((watch.last_look or {}).get("failed_in_a_row", 0))
        if watch is not None
        else 0,
        policy=policy,
    )
