"""The Prometheus metrics of one server process, and their text exposition.

With several server processes (gunicorn), set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory shared by the workers before they start: prometheus_client then keeps each
process's values in files there, and :func:`render` merges them, so any worker's
``/metrics`` answers for the whole server. (The directory must be emptied when the
server starts; dead workers' gauges are dropped by ``multiprocess.mark_process_dead``
in gunicorn's ``child_exit`` hook.)
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

if TYPE_CHECKING:
    from app.observability.repository import OperationalState

# A `_created` series beside every counter doubles the series count and helps no query.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUEST_DURATION = Histogram(
    "modelgate_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status class.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
PROMOTIONS = Counter(
    "modelgate_promotions",
    "Promotion requests by outcome (requested, approved, rejected, applied, cancelled, "
    "superseded) and target stage; counted when the transaction commits.",
    ["outcome", "target"],
)
GATE_FAILURES = Counter(
    "modelgate_gate_failures",
    "Failed gate rules of promotion requests (and re-evaluations), by rule kind.",
    ["rule_kind"],
)
ROLLBACKS = Counter("modelgate_rollbacks", "Production rollbacks, by model.", ["model"])
FREEZES = Counter("modelgate_freezes", "Models frozen for promotions to production.", ["model"])
EVENTS = Counter("modelgate_events", "Events written to the outbox, by event type.", ["type"])
WEBHOOK_DELIVERIES = Counter(
    "modelgate_webhook_deliveries",
    "Webhook delivery attempts by outcome: delivered, failed (to be retried), dead (given up).",
    ["outcome"],
)
WEBHOOK_DELIVERY_DURATION = Histogram(
    "modelgate_webhook_delivery_duration_seconds",
    "Time of one webhook delivery attempt, whatever its outcome.",
    buckets=LATENCY_BUCKETS,
)
DRIFT_SCORE = Gauge(
    "modelgate_drift_score",
    "Overall drift score (Delta) of the model's latest drift report.",
    ["model"],
    multiprocess_mode="mostrecent",
)
DRIFT_REPORTS = Counter(
    "modelgate_drift_reports", "Drift reports, by model and result.", ["model", "drifted"]
)


# Gauges of the registry's state, set from the database on every scrape (see
# app/observability/repository.py); "mostrecent" keeps one value across processes.
PENDING_PROMOTIONS = Gauge(
    "modelgate_pending_promotions",
    "Promotion requests waiting for approval.",
    multiprocess_mode="mostrecent",
)
OLDEST_PENDING_PROMOTION_AGE = Gauge(
    "modelgate_oldest_pending_promotion_age_seconds",
    "Age of the oldest promotion request waiting for approval (0 when none waits).",
    multiprocess_mode="mostrecent",
)
FROZEN_MODELS = Gauge(
    "modelgate_frozen_models",
    "Models frozen for promotions to production.",
    multiprocess_mode="mostrecent",
)
OUTBOX_BACKLOG = Gauge(
    "modelgate_webhook_outbox_backlog",
    "Webhook deliveries not delivered yet (pending, or failed and to be retried).",
    multiprocess_mode="mostrecent",
)
OLDEST_UNDELIVERED_AGE = Gauge(
    "modelgate_webhook_oldest_undelivered_age_seconds",
    "Age of the oldest webhook delivery not delivered yet (0 when none).",
    multiprocess_mode="mostrecent",
)
PRODUCTION_VERSION = Gauge(
    "modelgate_production_version",
    "The version number in production, by model (absent: no production version).",
    ["model"],
    multiprocess_mode="mostrecent",
)


def _age(since: datetime | None, now: datetime) -> float:
    if since is None:
        return 0.0
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return max(0.0, (now - since).total_seconds())


def observe_state(state: OperationalState, now: datetime | None = None) -> None:
    """Set the state gauges from one reading of the database."""
    at = now or datetime.now(UTC)
    PENDING_PROMOTIONS.set(state.pending_promotions)
    OLDEST_PENDING_PROMOTION_AGE.set(_age(state.oldest_pending_promotion_at, at))
    FROZEN_MODELS.set(state.frozen_models)
    OUTBOX_BACKLOG.set(state.outbox_backlog)
    OLDEST_UNDELIVERED_AGE.set(_age(state.oldest_undelivered_at, at))
    PRODUCTION_VERSION.clear()
    for model, version in state.production_versions.items():
        PRODUCTION_VERSION.labels(model=model).set(version)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
