"""Prometheus metrics, at ``/metrics`` and ``/api/v1/metrics`` (no authentication, like
the health probes: expose it only where scrapers can reach it)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from app.observability.metrics import render

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics() -> Response:
    """Metrics in the Prometheus text format: request latency, promotions, gate failures,
    rollbacks, webhook deliveries, drift scores."""
    body, content_type = await run_in_threadpool(render)
    return Response(content=body, media_type=content_type)
