"""Serving routes: the serving plan of a model, and the long-poll watch of one or many.

These routes are ``async``: a watcher waiting for a newer revision is a future on the
event loop (``app/serving/hub.py``), holding no thread and no database connection;
the short reads they make run in the threadpool, each on a session of its own.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import StringConstraints
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.deps import ModelPath, ModelReader, Reader
from app.api.problems import responses
from app.auth import service as auth_service
from app.auth.cache import TokenCache
from app.auth.roles import Role, role_allows
from app.errors import Forbidden, RevisionFromFuture, Unauthenticated, ValidationFailed
from app.serving import service
from app.serving.hub import ServingHub, Woken
from app.serving.schemas import ServingPlan, ServingPlans

router = APIRouter(tags=["serving"])

T = TypeVar("T")

MAX_WAIT_SECONDS = 60.0
MAX_WATCHED_MODELS = 200
REVISION_LIMIT = 2_000_000_000
AFTER_ITEM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}:0*([0-9]{1,9}|1[0-9]{9}|2000000000)$")
"""``MODEL:REVISION`` of ``?after=``: a model name and a revision up to REVISION_LIMIT."""

NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: no newer revision (ETag holds the current one)."}
}

AfterQuery = Annotated[
    int | None,
    Query(
        ge=0,
        le=REVISION_LIMIT,
        description="The revision the caller has: answer only with a newer one.",
    ),
]
WaitQuery = Annotated[
    float,
    Query(
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="With `after`: hold the request up to this many seconds for a newer "
        "revision, then answer 304. Without `after`, ignored: the plan is answered at once.",
    ),
]
IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match")]


def etag(revision: int) -> str:
    return f'"{revision}"'


def _matches(if_none_match: str | None, revision: int) -> bool:
    if if_none_match is None:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag.strip('"') == str(revision):
            return True
    return False


def _not_modified(revision: int) -> Response:
    return Response(status_code=304, headers={"ETag": etag(revision)})


def _hub(request: Request) -> ServingHub:
    hub: ServingHub = request.app.state.serving_hub
    return hub


async def _read(request: Request, fn: Callable[[Session], T]) -> T:
    """Run ``fn`` in the threadpool on a short read-only session of its own."""
    factory: sessionmaker[Session] = request.app.state.sessions
    read_bind: Engine | None = request.app.state.read_bind

    def run() -> T:
        with factory(bind=read_bind) if read_bind is not None else factory() as session:
            return fn(session)

    return await run_in_threadpool(run)


async def _plan(request: Request, model: str, at_least: int) -> tuple[int, bytes]:
    async def load() -> tuple[int, bytes]:
        plan = await _read(request, lambda s: service.get_plan(s, model_name=model))
        return plan.revision, plan.model_dump_json().encode()

    return await _hub(request).plan(model, at_least, load)


async def _wait(
    hub: ServingHub, wanted: dict[str, int], known: dict[str, int], generation: int,
    wait: float, reread: Callable[[], Awaitable[dict[str, int]]],
) -> bool:  # fmt: skip
    """Hold until a model in ``wanted`` is known past its revision (``known``, read under
    the hub's ``generation``, is updated in place) or ``wait`` seconds passed. Returns
    whether one is newer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while not any(known[m] > after for m, after in wanted.items()):
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        # A change between the read and this registration is caught by the hub (it
        # remembers the latest revision announced, and its generation).
        future = hub.watch(wanted, generation)
        try:
            done, _ = await asyncio.wait({future}, timeout=remaining)
        finally:
            hub.unwatch(future, wanted)
        if not done:
            return False
        woken: Woken = future.result()
        if woken is None:
            generation = hub.generation
            known.update(await reread())
        else:
            model, revision = woken
            known[model] = max(known[model], revision)
    return True


@router.get(
    "/models/-/serving",
    response_model=ServingPlans,
    responses={**NOT_MODIFIED, **responses(401, 403, 404, 409, 422, 503)},
)
async def watch_many(
    request: Request,
    principal: Reader,
    after: Annotated[
        list[Annotated[str, StringConstraints(pattern=AFTER_ITEM.pattern)]],
        Query(
            min_length=1,
            max_length=MAX_WATCHED_MODELS,
            description="`MODEL:REVISION`, repeated: the models followed and the revision "
            "the caller has of each (a model given twice counts at the older revision).",
        ),
    ],
    wait: WaitQuery = 0,
) -> Response:
    """The plans of the given models that are newer than the revisions given (waiting up
    to `wait` seconds for one); 304 when none is."""
    wanted: dict[str, int] = {}
    for i, item in enumerate(after):
        name, _, raw = item.rpartition(":")
        if not AFTER_ITEM.match(item) or int(raw) > REVISION_LIMIT:
            raise ValidationFailed(
                f"after={item!r} is not MODEL:REVISION",
                errors=[{"loc": ["query", "after", i], "msg": "expected MODEL:REVISION"}],
            )
        if not principal.may_touch_model(name):
            raise Forbidden(f"this token is limited to model {principal.model_scope!r}")
        # A model given twice counts once, at the older of its revisions (decision 0025).
        wanted[name] = min(int(raw), wanted.get(name, int(raw)))
    names = list(wanted)

    async def reread() -> dict[str, int]:
        return await _read(request, lambda s: service.current_revisions(s, model_names=names))

    hub = _hub(request)
    generation = hub.generation
    known = await reread()
    for name, revision in known.items():
        if wanted[name] > revision:
            raise RevisionFromFuture(
                f"model {name!r} is at revision {revision}; {wanted[name]} was never issued",
                model=name,
                revision=revision,
            )
    if not await _wait(hub, wanted, known, generation, wait, reread):
        return Response(status_code=304)
    bodies = [
        (await _plan(request, name, known[name]))[1] for name in names if known[name] > wanted[name]
    ]
    content = b'{"plans":[' + b",".join(bodies) + b"]}"
    return Response(content=content, media_type="application/json")


@router.get(
    "/models/{model}/serving",
    response_model=ServingPlan,
    responses={**NOT_MODIFIED, **responses(401, 403, 404, 409, 422, 503)},
)
async def serving_plan(
    model: ModelPath,
    request: Request,
    principal: ModelReader,
    after: AfterQuery = None,
    wait: WaitQuery = 0,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """The serving plan: production, weighted routes, shadows and aliases, each with its
    artifact digest, size and download path. `ETag` is the revision; with
    `If-None-Match` or `after`, 304 unless newer; with `wait`, a long poll."""
    # Without after there is nothing to wait past: wait is ignored (decision 0025).
    return await _serve_plan(request, model, after, wait, if_none_match)


async def _serve_plan(
    request: Request, model: str, after: int | None, wait: float, if_none_match: str | None
) -> Response:
    """The route's answer once the caller is authorised and the query valid (also run by
    :class:`ServingFastPath`)."""
    hub = _hub(request)

    async def reread() -> dict[str, int]:
        generation = hub.generation
        found = await _read(request, lambda s: service.current_revision(s, model_name=model))
        hub.remember(model, found, generation)
        return {model: found}

    generation = hub.generation
    cached = hub.latest(model)
    # What the hub knows is as good as a read (see ServingHub.latest), unless the caller
    # claims a newer revision: then the database decides whether it is from the future.
    if cached is not None and (after is None or after <= cached):
        known = {model: cached}
    else:
        known = await reread()
    revision = known[model]
    if after is not None:
        if after > revision:
            raise RevisionFromFuture(
                f"model {model!r} is at revision {revision}; {after} was never issued",
                model=model,
                revision=revision,
            )
        if not await _wait(hub, {model: after}, known, generation, wait, reread):
            return _not_modified(after)
        revision = known[model]
    elif _matches(if_none_match, revision):
        return _not_modified(revision)
    served, body = await _plan(request, model, revision)
    return Response(
        content=body,
        media_type="application/json",
        headers={"ETag": etag(served), "Cache-Control": "no-cache"},
    )


# The fast path ------------------------------------------------------------------------

_FAST_MODEL = re.compile(r"^/api/v1/models/([A-Za-z0-9][A-Za-z0-9._-]{0,127})/serving$")
_FAST_AFTER = re.compile(r"^[0-9]{1,10}$")
_FAST_WAIT = re.compile(r"^[0-9]{1,2}(\.[0-9]{1,6})?$")


class ServingFastPath:
    """Pure ASGI: ``GET /api/v1/models/{model}/serving`` answered without FastAPI's
    dependency and validation machinery, in the common case only.

    A serving fleet sends this request more than any other (a conditional read or a long
    poll renewed every ``wait`` seconds per replica), and the machinery cost more CPU
    than the answer (docs/performance.md). The fast path takes the request only when
    everything the full route would check is checked here the same way, without I/O:

    - the bearer secret is one the process's token cache remembers (an unknown secret,
      a miss or an expired token goes the full way and is looked up), and its role and
      model scope allow reading the model;
    - the query is empty, or ``after`` and at most one ``wait`` within their bounds, in
      plain decimal (anything else goes the full way, which names the error);
    - the serving hub knows the model's revision (PostgreSQL's listener is connected)
      and ``after`` is not past it.

    Everything else, and any error while answering, goes to the full route, which
    answers as before (the request has no body to have been consumed). The route's own
    answer is produced by the same function (:func:`_serve_plan`).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._route: Any = None

    def _serving_route(self) -> Any:
        """The route FastAPI would put in the scope (the access log and the metrics
        name requests by it)."""
        if self._route is None:
            for route in router.routes:
                if getattr(route, "endpoint", None) is serving_plan:
                    self._route = route
                    break
        return self._route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            match = _FAST_MODEL.match(scope["path"])
            if match is not None:
                taken = await self._try(scope, receive, send, match.group(1))
                if taken:
                    return
        await self.app(scope, receive, send)

    def _query(self, raw: bytes) -> tuple[int | None, float] | None:
        after: int | None = None
        wait: float | None = None
        if not raw:
            return None, 0.0
        for part in raw.split(b"&"):
            name, sep, value = part.partition(b"=")
            text = value.decode("latin-1")
            if name == b"after" and sep and after is None and _FAST_AFTER.match(text):
                after = int(text)
                if after > REVISION_LIMIT:
                    return None
            elif name == b"wait" and sep and wait is None and _FAST_WAIT.match(text):
                wait = float(text)
                if wait > MAX_WAIT_SECONDS:
                    return None
            else:
                return None
        if after is None:
            return None  # wait without after: the full route names the error
        return after, wait or 0.0

    async def _try(self, scope: Scope, receive: Receive, send: Send, model: str) -> bool:
        app = scope["app"]
        hub: ServingHub | None = getattr(app.state, "serving_hub", None)
        cache: TokenCache | None = getattr(app.state, "token_cache", None)
        if hub is None or cache is None:
            return False
        query = self._query(scope.get("query_string", b""))
        if query is None:
            return False
        after, wait = query
        authorization = if_none_match = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is not None:
                    return False
                authorization = value.decode("latin-1")
            elif name == b"if-none-match":
                if if_none_match is not None:
                    return False
                if_none_match = value.decode("latin-1")
        if authorization is None:
            return False
        scheme, _, secret = authorization.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            return False
        try:
            principal = auth_service.remembered(cache, secret)
        except Unauthenticated:
            return False
        if (
            principal is None
            or not role_allows(principal.role, Role.READER)
            or not principal.may_touch_model(model)
        ):
            return False
        cached = hub.latest(model)
        if cached is None or (after is not None and after > cached):
            return False
        route = self._serving_route()
        if route is None:
            return False
        scope["route"] = route
        scope.setdefault("path_params", {})["model"] = model
        request = Request(scope, receive)
        try:
            response = await _serve_plan(request, model, after, wait, if_none_match)
        except Exception:
            return False  # the full route answers (and names the error)
        await response(scope, receive, send)
        return True
