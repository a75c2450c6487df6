"""Audit payloads as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    stream: str
    seq: int
    occurred_at: datetime
    actor: str
    actor_role: str
    token_id: str | None
    action: str
    model: str | None
    version: int | None
    from_stage: str | None
    to_stage: str | None
    reason: str | None
    request_id: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class ChainProblem(BaseModel):
    stream: str
    seq: int
    event_id: int | None
    kind: Literal["altered", "broken_link", "missing", "inserted", "truncated"]
    detail: str


class AuditVerification(BaseModel):
    ok: bool
    events_checked: int
    streams_checked: int
    first_problem: ChainProblem | None
    problems: list[ChainProblem]
