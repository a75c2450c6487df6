"""Running a create under an Idempotency-Key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.api.uow import UnitOfWork
from app.auth.roles import Principal
from app.idempotency import service as idempotency


def run(
    *,
    uow: UnitOfWork,
    request: Request,
    principal: Principal,
    key: str | None,
    payload: Any,
    status_code: int,
    create: Callable[[], BaseModel],
) -> JSONResponse:
    """Call ``create`` once per key; a replay answers the stored body and status."""
    if key is None:
        return JSONResponse(create().model_dump(mode="json"), status_code=status_code)
    scope = principal.token_id or principal.name
    fp = idempotency.fingerprint(request.method, request.url.path, payload)
    stored = idempotency.claim(uow.session, principal=scope, key=key, fp=fp)
    if stored is not None:
        return JSONResponse(
            stored.body, status_code=stored.status_code, headers={"Idempotent-Replayed": "true"}
        )
    body = create().model_dump(mode="json")
    idempotency.store(uow.session, principal=scope, key=key, status_code=status_code, body=body)
    return JSONResponse(body, status_code=status_code)
