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

from app.api.deps import ModelPath, ModelReader, Reader
from app.api.problems import responses
from app.errors import Forbidden, RevisionFromFuture, ValidationFailed
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
