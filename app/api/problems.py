"""RFC 9457 problem details for every non-2xx answer."""

from __future__ import annotations

import inspect
import logging
from functools import cache
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from app.context import current_request_id
from app.errors import (
    PROBLEM_TYPE_BASE,
    AppError,
    Conflict,
    DatabaseUnavailable,
    MalformedBody,
    ValidationFailed,
)

log = logging.getLogger("modelgate.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"
CATALOGUE_PATH = PROBLEM_TYPE_BASE

# Codes answered without an AppError subclass (framework errors), for the catalogue.
_OTHER_CODES = (
    ("not-found", 404, "Not found", "No such endpoint, or no such resource."),
    ("method-not-allowed", 405, "Method not allowed", "The endpoint has no such method."),
    ("http-error", 400, "HTTP error", "Another HTTP-level error."),
    ("client-disconnected", 400, "Client disconnected", "The connection closed mid-body."),
    ("not-ready", 503, "Not ready", "The database or the artifact store is unreachable."),
)


def type_base(request: Request | None) -> str:
    """The base of problem ``type`` URIs: the ``problem_type_base_url`` setting, else this
    server's own catalogue (``/api/v1/problems/``), so the link works where it runs."""
    settings = getattr(request.app.state, "settings", None) if request is not None else None
    configured = getattr(settings, "problem_type_base_url", None)
    if isinstance(configured, str) and configured:
        return configured if configured.endswith(("/", "#")) else configured + "/"
    if request is None:
        return CATALOGUE_PATH
    return str(request.base_url).rstrip("/") + CATALOGUE_PATH


def _subclasses(cls: type[AppError]) -> list[type[AppError]]:
    found: list[type[AppError]] = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


@cache
def catalogue() -> list[dict[str, Any]]:
    """Every problem code, generated from the AppError hierarchy (and the framework's
    few): ``code``, ``status``, ``title`` and ``description``, sorted by code."""
    entries: dict[str, dict[str, Any]] = {}
    classes: list[type[AppError]] = [AppError, *_subclasses(AppError)]
    for cls in classes:
        doc = inspect.getdoc(cls) if cls.__doc__ else None
        entries.setdefault(
            cls.code,
            {
                "code": cls.code,
                "status": cls.status,
                "title": cls.title,
                "description": " ".join((doc or cls.title).split()),
            },
        )
    for code, status, title, description in _OTHER_CODES:
        entries.setdefault(
            code, {"code": code, "status": status, "title": title, "description": description}
        )
    return sorted(entries.values(), key=lambda e: str(e["code"]))


class ProblemError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str | None = None


class Problem(BaseModel):
    """An error, as RFC 9457 problem details. Branch on ``code``; ``detail`` is for people."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=[PROBLEM_TYPE_BASE + "model-not-found"])
    title: str
    status: int
    detail: str
    instance: str | None = None
    code: str
    request_id: str | None = None
    errors: list[ProblemError] | None = None


def problem_response(
    request: Request | None,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": type_base(request) + code,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path if request is not None else None,
        "code": code,
        "request_id": current_request_id(),
    }
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def from_app_error(request: Request | None, exc: AppError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="modelgate"'} if exc.status == 401 else None
    if exc.status >= 500:
        log.warning("%s: %s", exc.code, exc.detail)
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        extra=exc.extra,
        headers=headers,
    )


def _loc(loc: tuple[Any, ...] | list[Any]) -> list[str | int]:
    return [p if isinstance(p, int) else str(p) for p in loc]


def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        first = next(e for e in errors if e.get("type") == "json_invalid")
        reason = (first.get("ctx") or {}).get("error", "")
        return from_app_error(
            request, MalformedBody(f"the request body is not valid JSON: {reason}".rstrip(": "))
        )
    items = [
        {"loc": _loc(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
        for e in errors[:50]
    ]
    fields = ", ".join(".".join(str(p) for p in item["loc"]) for item in items[:5])
    return from_app_error(
        request, ValidationFailed(f"{len(errors)} invalid field(s): {fields}", errors=items)
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this request's path.

    Starlette's 405 names the methods of the first route whose path matched, but FastAPI
    makes one route per method: ``GET`` and ``POST /models`` are two routes, and the
    ``Allow`` header must list both (RFC 9110, section 15.5.6). Each method is asked of
    the router as a request of that method would be.
    """
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]


def install(app: FastAPI) -> None:
    async def on_app_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return from_app_error(request, exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _validation(request, exc)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if isinstance(exc.__cause__, AppError):
            # FastAPI wraps errors raised while reading the body (our size limit) in a 400.
            return from_app_error(request, exc.__cause__)
        if exc.status_code == 400 and isinstance(exc.__cause__, ValueError | RecursionError):
            # The JSON parser gave up on a body other than by a syntax error: nested too
            # deeply, not UTF-8, an integer with thousands of digits.
            cause = exc.__cause__
            reason = "nested too deeply" if isinstance(cause, RecursionError) else str(cause)[:200]
            return from_app_error(
                request, MalformedBody(f"the request body cannot be parsed as JSON: {reason}")
            )
        codes = {404: ("not-found", "Not found"), 405: ("method-not-allowed", "Method not allowed")}
        code, title = codes.get(exc.status_code, ("http-error", "HTTP error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint: {request.method} {request.url.path}"
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 405:
            allowed = allowed_methods(request)
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
            detail = f"{request.method} is not served here; this path serves {', '.join(allowed)}"
        return problem_response(
            request, status=exc.status_code, code=code, title=title, detail=detail,
            headers=headers,
        )  # fmt: skip

    async def on_integrity(request: Request, exc: Exception) -> JSONResponse:
        log.warning("integrity error reached the edge: %s", exc)
        return from_app_error(
            request, Conflict("the change conflicts with a concurrent one; retry the request")
        )

    async def on_db(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database error: %s", exc)
        return from_app_error(
            request, DatabaseUnavailable("the database is unreachable or did not answer in time")
        )

    async def on_data(request: Request, exc: Exception) -> JSONResponse:
        # The database refused a value (out of range, too long, NUL in text): the request
        # is at fault, and the database is up. Validation should have caught it first.
        log.warning("database refused a value: %s", exc)
        return from_app_error(
            request,
            ValidationFailed("a value in the request cannot be stored (out of range or too long)"),
        )

    async def on_disconnect(request: Request, exc: Exception) -> JSONResponse:
        # The client went away mid-body (an upload cut off): nothing failed on our side,
        # so no 500 and no traceback. The answer is for the log; nobody is left to read it.
        log.info("client disconnected before the request body was complete")
        return problem_response(
            request,
            status=400,
            code="client-disconnected",
            title="Client disconnected",
            detail="the connection closed before the request body was complete",
        )

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(ClientDisconnect, on_disconnect)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(IntegrityError, on_integrity)
    app.add_exception_handler(OperationalError, on_db)
    app.add_exception_handler(PoolTimeoutError, on_db)
    app.add_exception_handler(DBAPIError, on_db)
    app.add_exception_handler(DataError, on_data)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI declarations of the problem answers a route can give."""
    titles = {
        400: "Malformed request",
        401: "Missing, invalid, revoked or expired token",
        403: "The token's role or model scope does not allow this",
        404: "Not found",
        409: "Conflicts with the current state",
        412: "Precondition failed",
        413: "Payload too large",
        422: "Invalid request",
        503: "Database or artifact store unavailable",
        507: "Artifact store full or not writable",
    }
    return {
        s: {
            "model": Problem,
            "description": titles.get(s, "Problem"),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for s in statuses
    }
