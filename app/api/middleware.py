"""Pure ASGI middleware: request ids and access logs, and request body limits.

Pure ASGI (not BaseHTTPMiddleware) so that streaming bodies stay streaming and the
overhead per request stays small.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import type_base
from app.context import request_id_var
from app.errors import PayloadTooLarge

access_log = logging.getLogger("modelgate.access")
error_log = logging.getLogger("modelgate.errors")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestContextMiddleware:
    """Gives every request an id (or adopts a sane X-Request-ID) and logs one line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if incoming and _SAFE_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if response_started:
                raise
            # An error no handler knows: the traceback goes to the log with the request id,
            # the client gets a problem that says nothing internal. Caught here, inside the
            # request id's context, rather than by Starlette's outermost 500 page.
            error_log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            await _send_problem(
                send_with_id,
                scope,
                status=500,
                code="internal-error",
                title="Internal server error",
                detail=f"an unexpected error occurred; quote request id {request_id}",
            )
        finally:
            route = scope.get("route")
            access_log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "http_method": scope["method"],
                    "path": scope["path"],
                    "route": getattr(route, "path", None),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            request_id_var.reset(token)


class BodyLimitMiddleware:
    """Refuses bodies over a limit with 413, from Content-Length or while streaming.

    Artifact uploads get their own (much larger) limit; everything else is JSON.
    """

    def __init__(self, app: ASGIApp, *, json_limit: int, artifact_limit: int) -> None:
        self.app = app
        self.json_limit = json_limit
        self.artifact_limit = artifact_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        is_artifact = scope["method"] == "PUT" and scope["path"].endswith("/artifact")
        limit = self.artifact_limit if is_artifact else self.json_limit
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _too_large(send, scope, "Content-Length is not a number", status=400)
                    return
                if declared > limit:
                    await _too_large(send, scope, f"the body exceeds the limit of {limit} bytes")
                    return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"the body exceeds the limit of {limit} bytes")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except PayloadTooLarge as exc:
            if not response_started:
                await _too_large(send, scope, exc.detail)


async def _too_large(send: Send, scope: Scope, detail: str, status: int = 413) -> None:
    code, title = ("payload-too-large", "Payload too large")
    if status != 413:
        code, title = ("bad-request", "Bad request")
    await _send_problem(
        send, scope, status=status, code=code, title=title, detail=detail, close=True
    )


async def _send_problem(
    send: Send,
    scope: Scope,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    close: bool = False,
) -> None:
    body: dict[str, Any] = {
        "type": type_base(Request(scope)) + code,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": scope["path"],
        "code": code,
        "request_id": request_id_var.get(),
    }
    raw = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(raw)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})
