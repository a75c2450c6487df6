"""Prometheus metrics, at ``/metrics`` and ``/api/v1/metrics`` (no authentication, like
the health probes: expose it only where scrapers can reach it)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from sqlalchemy.exc import SQLAlchemyError

from app.api.deps import UowDep
from app.observability.metrics import render
from app.observability.service import observe_registry_state

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(uow: UowDep) -> Response:
    """Metrics in the Prometheus text format: request latency, promotions, gate failures,
    rollbacks, webhook deliveries, drift scores; and, read from the database on each
    scrape, pending promotions, frozen models, the webhook backlog and the production
    version of each model."""
    try:
        observe_registry_state(uow.session)
    except SQLAlchemyError as exc:  # the counters are still worth serving
        log.warning("metrics: cannot read the registry state: %s", exc)
        uow.session.rollback()
    body, content_type = render()
    return Response(content=body, media_type=content_type)
