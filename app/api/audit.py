"""Routes for the audit log (auditors and admins)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator

from app import pagination
from app.api.deps import Auditor, UowDep, require_unscoped
from app.api.problems import responses
from app.audit import service
from app.audit.schemas import AuditEventRead, AuditVerification
from app.registry.schemas import Page
from app.rfc3339 import Rfc3339DateTime

router = APIRouter(prefix="/audit", tags=["audit"])


def _as_utc(value: datetime | None) -> datetime | None:
    try:
        return value.astimezone(UTC) if value is not None else None
    except OverflowError:
        raise ValueError("the time is out of range once converted to UTC") from None


# Event times are UTC: a time without an offset would be a guess, so it is a 422.
UtcTime = Annotated[
    Rfc3339DateTime | None,
    AfterValidator(_as_utc),
    Query(description="RFC 3339 with a time zone offset, e.g. 2026-11-26T08:00:00Z."),
]


@router.get("", response_model=Page[AuditEventRead], responses=responses(400, 401, 403, 422, 503))
def query_audit(
    uow: UowDep,
    principal: Auditor,
    model: Annotated[str | None, Query(max_length=128)] = None,
    actor: Annotated[str | None, Query(max_length=256)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    since: UtcTime = None,
    until: UtcTime = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[AuditEventRead]:
    """Audit events, oldest first, filtered by model, actor, action and time."""
    require_unscoped(principal)
    rows = service.query(
        uow.session,
        model=model,
        actor=actor,
        action=action,
        since=since,
        until=until,
        after_id=pagination.after(cursor, int),
        limit=limit + 1,
    )
    page, next_cursor = pagination.split_page(rows, limit, lambda e: [e.id])
    return Page[AuditEventRead](
        items=[AuditEventRead.model_validate(e) for e in page], next_cursor=next_cursor
    )


@router.get("/verify", response_model=AuditVerification, responses=responses(401, 403, 503))
def verify_audit(request: Request, principal: Auditor) -> AuditVerification:
    """Recompute every hash chain and report the first altered, inserted or deleted event."""
    require_unscoped(principal)
    # One snapshot for the heads, the events and the models: otherwise an event committed
    # while the walk runs would look like an insertion or a truncation.
    engine = request.app.state.engine
    if engine.dialect.name == "postgresql":
        bind = engine.execution_options(isolation_level="REPEATABLE READ")
    else:
        bind = request.app.state.read_bind or engine
    with request.app.state.sessions(bind=bind) as session, session.begin():
        return service.verify(session)


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
    since: UtcTime = None,
    until: UtcTime = None,
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
