"""Routes for the audit log (auditors and admins)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from app.api.deps import Auditor, UowDep, require_unscoped
from app.api.problems import responses
from app.audit import service
from app.audit.schemas import AuditEventRead, AuditVerification
from app.pagination import decode_cursor, encode_cursor
from app.registry.schemas import Page

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=Page[AuditEventRead], responses=responses(400, 401, 403, 422, 503))
def query_audit(
    uow: UowDep,
    principal: Auditor,
    model: Annotated[str | None, Query(max_length=128)] = None,
    actor: Annotated[str | None, Query(max_length=256)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[AuditEventRead]:
    """Audit events, oldest first, filtered by model, actor, action and time."""
    require_unscoped(principal)
    after = decode_cursor(cursor, arity=1)
    rows = service.query(
        uow.session,
        model=model,
        actor=actor,
        action=action,
        since=since,
        until=until,
        after_id=int(after[0]) if after else None,
        limit=limit + 1,
    )
    page = rows[:limit]
    return Page[AuditEventRead](
        items=[AuditEventRead.model_validate(e) for e in page],
        next_cursor=encode_cursor([page[-1].id]) if len(rows) > limit else None,
    )


@router.get("/verify", response_model=AuditVerification, responses=responses(401, 403, 503))
def verify_audit(uow: UowDep, principal: Auditor) -> AuditVerification:
    """Recompute every hash chain and report the first altered, inserted or deleted event."""
    require_unscoped(principal)
    return service.verify(uow.session)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
        **responses(401, 403, 422, 503),
    },
)
def export_audit(
    request: Request,
    principal: Auditor,
    model: Annotated[str | None, Query(max_length=128)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> StreamingResponse:
    """Every matching event as JSON lines, streamed (with the hashes, for offline checking)."""
    require_unscoped(principal)
    sessions = request.app.state.sessions
    read_bind = request.app.state.read_bind

    # The export outlives the request's unit of work, so it reads in a session of its own.
    def lines() -> Iterator[bytes]:
        with sessions(bind=read_bind) if read_bind else sessions() as session:
            for event in service.export(session, model=model, since=since, until=until):
                row = AuditEventRead.model_validate(event).model_dump(mode="json")
                yield (json.dumps(row, separators=(",", ":")) + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson")
