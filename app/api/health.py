"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from app.api.problems import PROBLEM_MEDIA_TYPE, Problem, problem_response
from app.errors import AppError

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers. Checks nothing else."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={
        503: {
            "model": Problem,
            "description": "The database or the artifact store is unreachable",
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    },
)
async def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers a query and the artifact store is reachable."""
    checks: dict[str, Any] = {}

    def check_db() -> None:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        await run_in_threadpool(check_db)
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"; the detail says which
        checks["database"] = f"unavailable: {type(exc).__name__}"
    try:
        await run_in_threadpool(request.app.state.store.check)
        checks["artifact_store"] = "ok"
    except AppError as exc:
        checks["artifact_store"] = f"unavailable: {exc.detail}"
    except Exception as exc:
        checks["artifact_store"] = f"unavailable: {type(exc).__name__}"
    if all(v == "ok" for v in checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    failing = ", ".join(k for k, v in checks.items() if v != "ok")
    return problem_response(
        request,
        status=503,
        code="not-ready",
        title="Not ready",
        detail=f"unavailable: {failing}",
        extra={"checks": checks},
    )
