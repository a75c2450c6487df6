"""Dependencies shared by the routers: the unit of work, the caller, the artifact store."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends, Header, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.api.uow import UnitOfWork
from app.auth import service as auth_service
from app.auth.cache import TokenCache
from app.auth.roles import Principal, Role, role_allows
from app.errors import Forbidden, Unauthenticated, ValidationFailed
from app.idempotency.service import validate_key
from app.settings import Settings
from app.storage.base import ArtifactStore

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

ModelPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="The model's name.",
    ),
]
VersionPath = Annotated[int, Path(ge=1, le=2_000_000_000, description="The version number.")]


# Dependencies that do no I/O are ``async def``: FastAPI runs a ``def`` dependency in the
# threadpool, and each such hop cost about as much CPU as a small query
# (docs/decisions/0007-concurrency-model.md). Database work stays in the threadpool.


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> ArtifactStore:
    store: ArtifactStore = request.app.state.store
    return store


async def get_uow(request: Request) -> AsyncIterator[UnitOfWork]:
    """One transaction per request: committed when the route returns, before the
    response is sent (scope="function"), rolled back on any error.

    The session opens lazily in the thread that first uses it; the commit (or rollback)
    and the return of its connection happen in one thread hop at the end, shielded from
    cancellation so that a client going away cannot leave a transaction open. That hop
    does not queue for the shared threadpool: when every pool thread is taken by a
    request waiting for a database connection, the requests holding the connections
    must still be able to commit and give them back (FastAPI's own generator
    dependencies exit the same way), or all of them wait out the pool timeout.
    """
    factory: sessionmaker[Session] = request.app.state.sessions
    read_bind: Engine | None = request.app.state.read_bind
    uow = UnitOfWork(factory, read_bind if request.method in SAFE_METHODS else None)
    try:
        yield uow
    except BaseException:
        if uow.started:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(uow.abort, limiter=anyio.CapacityLimiter(1))
        raise
    if uow.started:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(uow.finish, limiter=anyio.CapacityLimiter(1))


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
UowDep = Annotated[UnitOfWork, Depends(get_uow, scope="function")]


def _authenticate_apart(request: Request, secret: str, cache: TokenCache | None) -> Principal:
    """Look the token up in a session and transaction of its own, given back at once.

    Not in the request's unit of work: that would hold the request's connection from
    here across the hop to the route, and with every pool thread taken by requests
    waiting for a connection, the holders could not go on to use and release theirs.
    """
    factory: sessionmaker[Session] = request.app.state.sessions
    read_bind: Engine | None = request.app.state.read_bind
    with factory(bind=read_bind) if read_bind is not None else factory() as session:
        return auth_service.authenticate(session, secret, cache)


async def get_principal(request: Request) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthenticated("send Authorization: Bearer <token>")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    cache: TokenCache | None = getattr(request.app.state, "token_cache", None)
    principal = auth_service.remembered(cache, secret)
    if principal is None:  # not remembered: a query, in the threadpool
        principal = await run_in_threadpool(_authenticate_apart, request, secret, cache)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def _check_role(principal: Principal, role: Role) -> None:
    if not role_allows(principal.role, role):
        raise Forbidden(f"this needs the {role.value} role; the token has {principal.role.value}")


def require(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets through callers holding ``role`` (or a higher one)."""

    async def dependency(principal: PrincipalDep) -> Principal:
        _check_role(principal, role)
        return principal

    return dependency


def require_model(role: Role) -> Callable[[Principal, str], Awaitable[Principal]]:
    """Like :func:`require`, and also checks a model-scoped token against the path's model."""

    async def dependency(principal: PrincipalDep, model: ModelPath) -> Principal:
        _check_role(principal, role)
        if not principal.may_touch_model(model):
            raise Forbidden(f"this token is limited to model {principal.model_scope!r}")
        return principal

    return dependency


def require_unscoped(principal: Principal) -> None:
    if principal.model_scope is not None:
        raise Forbidden(f"this token is limited to model {principal.model_scope!r}")


Reader = Annotated[Principal, Depends(require(Role.READER))]
Submitter = Annotated[Principal, Depends(require(Role.SUBMITTER))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
Auditor = Annotated[Principal, Depends(require(Role.AUDITOR))]
ModelReader = Annotated[Principal, Depends(require_model(Role.READER))]
ModelSubmitter = Annotated[Principal, Depends(require_model(Role.SUBMITTER))]
ModelReviewer = Annotated[Principal, Depends(require_model(Role.REVIEWER))]
ModelOperator = Annotated[Principal, Depends(require_model(Role.OPERATOR))]
ModelAdmin = Annotated[Principal, Depends(require_model(Role.ADMIN))]


async def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Retries with the same key return the first answer and create nothing.",
        ),
    ] = None,
) -> str | None:
    return validate_key(key) if key is not None else None


IdempotencyKeyDep = Annotated[str | None, Depends(idempotency_key)]


# NUL and lone UTF-16 surrogates: JSON escapes (and Python's decoder) let them into a str,
# but PostgreSQL text cannot hold NUL and a lone surrogate has no UTF-8 form to store or
# hash. Refused up front they are a 422 naming the field, not a database error or a 500.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _escaped(text: str) -> str:
    """``text`` with NUL and lone surrogates written as ``\\uXXXX``: a problem's own text
    must hold none either (its schema says so)."""
    return _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _unstorable_path(value: Any) -> list[str | int] | None:
    """Where in a parsed JSON document the first unstorable string is (key or value)."""
    pending: list[tuple[Any, list[str | int]]] = [(value, [])]
    while pending:  # a loop, not recursion: nesting depth is the client's choice
        item, path = pending.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                if _UNSTORABLE.search(key):
                    # shown escaped: a problem's text holds no NUL nor lone surrogate either
                    return [*path, _escaped(key)]
                pending.append((child, [*path, key]))
        elif isinstance(item, list):
            pending.extend((child, [*path, i]) for i, child in enumerate(item))
    return None


async def reject_unstorable_text(request: Request) -> None:
    """Refuse NUL characters and lone surrogates in the query string and the JSON body."""
    for name, value in request.query_params.multi_items():
        if _UNSTORABLE.search(name) or _UNSTORABLE.search(value):
            raise ValidationFailed(
                f"query parameter {name!r} holds a NUL character",
                errors=[
                    {"loc": ["query", _escaped(name)], "msg": "NUL characters are not allowed"}
                ],
            )
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or route.body_field is None:
        return  # no JSON body (artifact uploads stream theirs; it must not be read here)
    raw = await request.body()  # already read and cached by FastAPI to parse the JSON
    if b"\\u" not in raw and b"\xed" not in raw:
        return  # neither an escape nor UTF-8 bytes of a surrogate: nothing to look for
    try:
        document = await request.json()
    except ValueError:
        return  # FastAPI reports a body that is not JSON
    path = _unstorable_path(document)
    if path is not None:
        loc: list[str | int] = ["body", *path]
        raise ValidationFailed(
            f"{'.'.join(str(p) for p in loc)} holds a NUL character or a lone surrogate",
            errors=[{"loc": loc, "msg": "NUL characters and lone surrogates are not allowed"}],
        )
