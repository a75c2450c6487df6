"""Per-request context (the request id) carried through logs, problems and audit events."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("modelgate_request_id", default=None)


def current_request_id() -> str | None:
    return request_id_var.get()
