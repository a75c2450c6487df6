"""Domain counters from the audit log, counted only once the change is committed.

Every state change writes an audit event in its transaction, and
:func:`app.audit.service.record` calls :func:`count` by name for each one, so
promotions, gate failures, rollbacks and drift reports are counted in one place. The
increments wait for the commit of the unit of work (:mod:`app.observability.aftercommit`):
a request that rolls back leaves the counters alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.observability import metrics
from app.observability.aftercommit import defer
from app.promotion.models import PromotionRequest


def _failed_rule_kinds(session: Session, details: dict[str, Any]) -> list[str]:
    """Kinds of the rules that failed. The audit details name the rules; their kinds are
    in the request's stored gate report (already in the session, so no query)."""
    failed = details.get("failed") or []
    if not failed:
        return []
    if isinstance(details.get("failed_kinds"), list):
        return [str(kind) for kind in details["failed_kinds"]]
    promotion_id = details.get("promotion_id")
    request = session.get(PromotionRequest, promotion_id) if promotion_id is not None else None
    kinds_by_rule: dict[str, str] = {}
    if request is not None:
        for rule in (request.report or {}).get("rules", []):
            if isinstance(rule, dict) and "rule" in rule and "kind" in rule:
                kinds_by_rule[str(rule["rule"])] = str(rule["kind"])
    return [kinds_by_rule.get(str(name), "unknown") for name in failed]


def count(session: Session, event: AuditEvent) -> None:
    """Count ``event`` on the counters its action feeds, after the commit."""
    action = AuditAction(event.action)
    details = event.details or {}
    updates: list[Callable[[], None]] = []
    outcome = action.promotion_outcome
    if outcome is not None:
        target = event.to_stage or "unknown"
        updates.append(metrics.PROMOTIONS.labels(outcome=outcome, target=target).inc)
    if action in (AuditAction.PROMOTION_REQUESTED, AuditAction.GATES_REEVALUATED):
        for kind in _failed_rule_kinds(session, details):
            updates.append(metrics.GATE_FAILURES.labels(rule_kind=kind).inc)
    elif action is AuditAction.MODEL_ROLLED_BACK and event.model is not None:
        updates.append(metrics.ROLLBACKS.labels(model=event.model).inc)
    elif action is AuditAction.MODEL_FROZEN and event.model is not None:
        updates.append(metrics.FREEZES.labels(model=event.model).inc)
    elif action is AuditAction.DRIFT_REPORTED and event.model is not None:
        score = details.get("score")
        drifted = "true" if details.get("drifted") else "false"
        updates.append(metrics.DRIFT_REPORTS.labels(model=event.model, drifted=drifted).inc)
        if isinstance(score, int | float):
            gauge = metrics.DRIFT_SCORE.labels(model=event.model)
            updates.append(lambda: gauge.set(float(score)))
    for update in updates:
        defer(session, update)
