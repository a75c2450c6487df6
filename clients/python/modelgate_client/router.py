"""A router for serving code: which version of a model scores a request.

::

    from modelgate_client.router import Router

    router = Router("https://modelgate.example.com", "fraud", token=token)
    router.wait_ready(timeout=10)
    version = router.pick(request_key)          # deterministic: same key, same version
    for shadow in router.shadows(request_key):  # versions that also score it, unanswered
        ...
    path = router.artifact(version)             # fetched once per digest, sha256 checked

    # Or let the router do all of it and report what it saw to the registry:
    answer = router.serve(request_key, lambda version: models[version].predict(x))

``serve`` picks the version, scores the request with it, scores it also with every
shadow version the plan names for this key (in a small thread pool: a shadow never
delays, changes or fails the answer), and records one observation per version that
scored it (request key, version, role primary or shadow, latency, error flag,
prediction). Observations are batched and sent by a background thread
(``POST /api/v1/models/{model}/observations``; see :mod:`modelgate_client.observations`):
a full queue drops and counts, it never blocks serving; ``router.observation_stats``
has the counters and ``close()`` flushes what is left. This is what a rollout's
analysis judges, so a router that serves a canary should report through it (or call
``router.record`` for requests it scores itself).

The router keeps the model's serving plan in memory and follows changes in a
background thread by long poll (``GET /api/v1/models/{model}/serving?after=REV&wait=S``).
Requests never wait for the registry: ``pick`` and ``shadows`` read the plan held in
memory (replaced whole, atomically, when a newer one arrives), so they are cheap,
thread-safe and fine to call from asyncio code. While the registry is unreachable the
router keeps serving the last plan it had and retries with backoff, moving to the next
base URL when several are given; since a plan is whole state with a revision number,
the first answer after a reconnect brings it up to date and no change is missed.

Picking: the key is hashed (SHA-256 of the model name and the key) to a point in
[0, 1); the plan's routes, in version order, take consecutive intervals in proportion
to their weights. A key keeps its version while the weights hold; when they change,
only keys in the intervals that moved change version. Shadows draw from a separate
hash per shadow version, so shadow samples are independent of the route picked.

Only httpx is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from modelgate_client.observations import (
    ObservationSink,
    ObservationStats,
    as_prediction,
    observation_key,
)

__all__ = [
    "ArtifactCorrupt",
    "NoRoute",
    "Plan",
    "PlanVersion",
    "Router",
    "RouterError",
    "as_prediction",
    "observation_key",
]

log = logging.getLogger("modelgate_client.router")

_SCALE = float(2**64)
T = TypeVar("T")
PredictionOf = Callable[[Any], dict[str, Any] | None]


class RouterError(Exception):
    """Base of the router's errors."""


class NoRoute(RouterError):
    """No plan yet, or a plan without routes (no production version): nothing to pick."""


class ArtifactCorrupt(RouterError):
    """The bytes downloaded do not have the sha256 the plan names (nothing is cached)."""


@dataclass(frozen=True)
class PlanVersion:
    """One version in a plan, with where to get its artifact and how to check it."""

    version: int
    stage: str
    sha256: str | None
    size: int | None
    download_path: str
    weight: float = 0.0
    share: float = 0.0
    name: str | None = None


@dataclass(frozen=True)
class Plan:
    """A serving plan as the registry sent it, ready for picking."""

    model: str
    revision: int
    production: PlanVersion | None
    routes: tuple[PlanVersion, ...]
    shadows: tuple[PlanVersion, ...]
    aliases: tuple[PlanVersion, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)
    # Upper ends of the routes' intervals in [0, 1), in route order.
    _bounds: tuple[float, ...] = field(repr=False, compare=False, default=())

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Plan:
        def entry(item: dict[str, Any]) -> PlanVersion:
            artifact = item.get("artifact") or {}
            return PlanVersion(
                version=int(item["version"]),
                stage=str(item.get("stage", "")),
                sha256=artifact.get("sha256"),
                size=artifact.get("size"),
                download_path=str(artifact.get("download_path", "")),
                weight=float(item.get("weight", 0.0)),
                share=float(item.get("share", 0.0)),
                name=item.get("name"),
            )

        routes = tuple(
            sorted((entry(r) for r in document.get("routes", [])), key=lambda r: r.version)
        )
        routes = tuple(r for r in routes if r.weight > 0)
        total = sum(r.weight for r in routes)
        bounds: list[float] = []
        running = 0.0
        for route in routes:
            running += route.weight
            bounds.append(running / total)
        if bounds:
            bounds[-1] = 1.0
        production = document.get("production")
        return cls(
            model=str(document["model"]),
            revision=int(document["revision"]),
            production=entry(production) if production else None,
            routes=routes,
            shadows=tuple(entry(s) for s in document.get("shadows", [])),
            aliases=tuple(entry(a) for a in document.get("aliases", [])),
            raw=document,
            _bounds=tuple(bounds),
        )

    def alias(self, name: str) -> PlanVersion | None:
        return next((a for a in self.aliases if a.name == name), None)

    def find(self, version: int) -> PlanVersion | None:
        """The plan's entry for ``version`` (route, production, shadow or alias)."""
        candidates = [*self.routes, *self.shadows, *self.aliases]
        if self.production is not None:
            candidates.append(self.production)
        return next((c for c in candidates if c.version == version), None)


def key_point(model: str, key: str | bytes, salt: str = "") -> float:
    """Where ``key`` falls in [0, 1) for ``model`` (and ``salt``): uniform, deterministic."""
    raw = key if isinstance(key, bytes) else key.encode("utf-8")
    digest = hashlib.sha256(model.encode() + b"\x00" + salt.encode() + b"\x00" + raw).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


class Router:
    """Keeps a model's serving plan and picks versions for requests; see the module.

    ``source`` is a base URL, several base URLs of the same registry (the router moves
    to the next one when one is unreachable), or an ``httpx.Client`` whose ``base_url``
    points at the registry and which sends the token itself.
    """

    def __init__(
        self,
        source: str | Sequence[str] | httpx.Client,
        model: str,
        *,
        token: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        wait: float = 60.0,
        min_backoff: float = 0.2,
        max_backoff: float = 10.0,
        connect_timeout: float = 3.0,
        on_change: Callable[[Plan], None] | None = None,
        start: bool = True,
        batch_size: int = 500,
        batch_age: float = 1.0,
        queue_size: int = 20_000,
        shadow_workers: int = 4,
        shadow_queue: int = 1_000,
    ) -> None:
        self.model = model
        self._wait = wait
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._on_change = on_change
        self._owned = not isinstance(source, httpx.Client)
        if isinstance(source, httpx.Client):
            self._clients = [source]
        else:
            urls = [source] if isinstance(source, str) else list(source)
            if not urls:
                raise ValueError("give at least one base URL")
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            timeout = httpx.Timeout(wait + 15.0, connect=connect_timeout)
            self._clients = [
                httpx.Client(base_url=u.rstrip("/"), headers=headers, timeout=timeout) for u in urls
            ]
        self._current = 0
        self._plan: Plan | None = None
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.last_error: str | None = None
        """The last failure to reach the registry (None after a success)."""
        self.errors = 0
        """Failed attempts to reach the registry since the router started."""
        self._cache_dir = Path(
            cache_dir
            if cache_dir is not None
            else Path(tempfile.gettempdir()) / "modelgate-artifacts"
        )
        self._fetch_locks: dict[str, threading.Lock] = {}
        self._fetch_locks_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._sink = ObservationSink(
            self._send_observations,
            batch_size=batch_size,
            max_age=batch_age,
            queue_size=queue_size,
            name=f"modelgate-observations-{model}",
        )
        self._shadow_workers = shadow_workers
        self._shadow_limit = shadow_queue
        self._shadow_pool: ThreadPoolExecutor | None = None
        self._shadow_pending = 0
        self._shadow_lock = threading.Lock()
        self.shadows_skipped = 0
        """Shadow scorings not run because ``shadow_queue`` were already waiting."""
        if start:
            self.start()

    # Life --------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._follow, name=f"modelgate-router-{self.model}", daemon=True
            )
            self._thread.start()

    def close(self, flush_timeout: float = 10.0) -> None:
        """Send the observations still queued (for at most ``flush_timeout`` seconds),
        stop following (the last plan stays readable) and release connections."""
        pool = self._shadow_pool
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self._sink.close(flush_timeout)
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._owned:
            for client in self._clients:
                with contextlib.suppress(Exception):
                    client.close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Reading the plan (never touches the network) -------------------------------------

    @property
    def plan(self) -> Plan | None:
        return self._plan

    @property
    def revision(self) -> int | None:
        plan = self._plan
        return plan.revision if plan is not None else None

    def set_plan(self, document: dict[str, Any]) -> Plan:
        """Serve from a plan document (as ``GET .../serving`` returns it), e.g. one saved
        to disk for starting while the registry is unreachable; a newer plan from the
        registry replaces it as usual."""
        plan = Plan.from_json(document)
        self._accept(plan, force=True)
        return plan

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the first plan arrived (for start-up; never needed per request)."""
        return self._ready.wait(timeout)

    def wait_for_revision(self, revision: int, timeout: float | None = None) -> bool:
        """Block until the plan held is at ``revision`` or newer."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while (self.revision or -1) < revision:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def pick(self, request_key: str | bytes | None = None) -> int:
        """The version that scores ``request_key`` under the current plan (the same key
        keeps its version while the weights hold); without a key, a random draw by the
        weights."""
        plan = self._plan
        if plan is None or not plan.routes:
            raise NoRoute(f"no route for model {self.model!r} (no plan or no production yet)")
        point = random.random() if request_key is None else key_point(plan.model, request_key)
        for route, bound in zip(plan.routes, plan._bounds, strict=True):
            if point < bound:
                return route.version
        return plan.routes[-1].version

    def shadows(self, request_key: str | bytes) -> list[int]:
        """Shadow versions that should also score ``request_key`` (their answers unused)."""
        plan = self._plan
        if plan is None:
            return []
        return [
            s.version
            for s in plan.shadows
            if key_point(plan.model, request_key, f"shadow:{s.version}") < s.share / 100.0
        ]

    # Serving and observing ----------------------------------------------------------

    def serve(
        self,
        request_key: str | bytes | None,
        score: Callable[[int], T],
        *,
        prediction: PredictionOf = as_prediction,
    ) -> T:
        """Score one request: ``score(version)`` with the version :meth:`pick` chooses,
        its answer returned (its exception raised); every shadow version the plan names
        for the key also gets ``score(shadow)`` in the background, its answer and any
        failure kept from the caller. Each scoring is recorded as an observation;
        ``prediction`` turns an answer into the observation's prediction (default
        :func:`~modelgate_client.observations.as_prediction`; return None to record
        none). Without a key, one is made up (a random pick, nothing sticky)."""
        key: str | bytes = request_key if request_key is not None else uuid.uuid4().hex
        version = self.pick(key)
        for shadow in self.shadows(key):
            self._shadow(key, shadow, score, prediction)
        return self._scored(key, version, "primary", score, prediction)

    async def serve_async(
        self,
        request_key: str | bytes | None,
        score: Callable[[int], Awaitable[T]],
        *,
        prediction: PredictionOf = as_prediction,
    ) -> T:
        """:meth:`serve` for a coroutine scorer: shadows run as tasks on the running loop
        (bounded like the threads of :meth:`serve`), never awaited by the caller."""
        key: str | bytes = request_key if request_key is not None else uuid.uuid4().hex
        version = self.pick(key)
        for shadow in self.shadows(key):
            if not self._shadow_slot():
                continue
            task = asyncio.ensure_future(
                self._scored_async(key, shadow, "shadow", score, prediction)
            )
            task.add_done_callback(self._shadow_done)
        return await self._scored_async(key, version, "primary", score, prediction)

    def record(
        self,
        request_key: str | bytes,
        version: int,
        *,
        role: str = "primary",
        latency_ms: float | None = None,
        error: bool = False,
        prediction: dict[str, Any] | None = None,
    ) -> bool:
        """Report one scoring done outside :meth:`serve` (queued, sent in a batch);
        False when it was dropped because the queue is full."""
        return self._sink.record(
            request_key, version, role=role, latency_ms=latency_ms, error=error,
            prediction=prediction,
        )  # fmt: skip

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Send the queued observations now and wait for them (False on timeout)."""
        return self._sink.flush(timeout)

    @property
    def observation_stats(self) -> ObservationStats:
        """Counters of the observations: queued, sent, dropped, rejected, failed..."""
        return self._sink.stats

    def _scored(
        self, key: str | bytes, version: int, role: str, score: Callable[[int], T],
        prediction: PredictionOf,
    ) -> T:  # fmt: skip
        started = time.perf_counter()
        try:
            answer = score(version)
        except Exception:
            self.record(key, version, role=role, error=True,
                        latency_ms=(time.perf_counter() - started) * 1000.0)  # fmt: skip
            raise
        self._recorded(key, version, role, started, answer, prediction)
        return answer

    async def _scored_async(
        self, key: str | bytes, version: int, role: str, score: Callable[[int], Awaitable[T]],
        prediction: PredictionOf,
    ) -> T:  # fmt: skip
        started = time.perf_counter()
        try:
            answer = await score(version)
        except Exception:
            self.record(key, version, role=role, error=True,
                        latency_ms=(time.perf_counter() - started) * 1000.0)  # fmt: skip
            raise
        self._recorded(key, version, role, started, answer, prediction)
        return answer

    def _recorded(
        self, key: str | bytes, version: int, role: str, started: float, answer: Any,
        prediction: PredictionOf,
    ) -> None:  # fmt: skip
        latency = (time.perf_counter() - started) * 1000.0
        try:
            predicted = prediction(answer)
        except Exception:
            log.exception("the prediction function failed; recorded without a prediction")
            predicted = None
        self.record(key, version, role=role, latency_ms=latency, prediction=predicted)

    def _shadow_slot(self) -> bool:
        with self._shadow_lock:
            if self._shadow_pending >= self._shadow_limit:
                self.shadows_skipped += 1
                return False
            self._shadow_pending += 1
            return True

    def _shadow_done(self, future: Any) -> None:
        with self._shadow_lock:
            self._shadow_pending -= 1
        if not future.cancelled() and future.exception() is not None:
            log.debug("shadow scoring failed (recorded): %r", future.exception())

    def _shadow(
        self, key: str | bytes, version: int, score: Callable[[int], Any],
        prediction: PredictionOf,
    ) -> None:  # fmt: skip
        if not self._shadow_slot():
            return
        try:
            with self._shadow_lock:
                if self._shadow_pool is None:
                    self._shadow_pool = ThreadPoolExecutor(
                        max_workers=self._shadow_workers,
                        thread_name_prefix=f"modelgate-shadow-{self.model}",
                    )
                pool = self._shadow_pool
            future = pool.submit(self._scored, key, version, "shadow", score, prediction)
        except RuntimeError:  # the router is closing
            with self._shadow_lock:
                self._shadow_pending -= 1
            return
        future.add_done_callback(self._shadow_done)

    def _send_observations(self, body: dict[str, Any], idempotency_key: str) -> httpx.Response:
        path = f"/api/v1/models/{quote(self.model, safe='')}/observations"
        client = self._clients[self._current]
        try:
            response = client.post(
                path, json=body, headers={"Idempotency-Key": idempotency_key}, timeout=30.0
            )
        except httpx.TransportError:
            self._current = (self._current + 1) % len(self._clients)
            raise
        if response.status_code >= 500:
            self._current = (self._current + 1) % len(self._clients)
        return response

    # Artifacts -----------------------------------------------------------------------

    def artifact(self, version: int | str) -> Path:
        """The local file of a version's artifact (a version number or an alias name of the
        current plan): downloaded once per sha256 into the cache, checked, then reused."""
        plan = self._plan
        entry: PlanVersion | None = None
        if plan is not None:
            entry = plan.alias(version) if isinstance(version, str) else plan.find(version)
        if entry is None:
            raise NoRoute(f"version {version!r} is not in the plan of model {self.model!r}")
        if not entry.sha256:
            raise NoRoute(f"version {entry.version} of model {self.model!r} has no artifact")
        path = self._cache_dir / entry.sha256
        if path.exists():
            return path
        with self._fetch_locks_lock:
            lock = self._fetch_locks.setdefault(entry.sha256, threading.Lock())
        with lock:  # one download per digest, however many threads ask
            if not path.exists():
                self._download(entry, path)
        return path

    async def artifact_async(self, version: int | str) -> Path:
        """:meth:`artifact` for asyncio code (the download runs in a thread)."""
        return await asyncio.to_thread(self.artifact, version)

    def _download(self, entry: PlanVersion, path: Path) -> None:
        assert entry.sha256 is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        last: Exception | None = None
        for attempt in range(len(self._clients) * 2):
            client = self._clients[(self._current + attempt) % len(self._clients)]
            handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
            try:
                digest = hashlib.sha256()
                with (
                    os.fdopen(handle, "wb") as out,
                    client.stream("GET", entry.download_path, follow_redirects=True) as response,
                ):
                    response.raise_for_status()
                    for chunk in response.iter_bytes(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
                if digest.hexdigest() != entry.sha256:
                    raise ArtifactCorrupt(
                        f"artifact of version {entry.version}: sha256 {digest.hexdigest()}, "
                        f"the plan says {entry.sha256}"
                    )
                os.replace(tmp, path)
                return
            except httpx.TransportError as exc:
                last = exc
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        raise RouterError(f"could not download version {entry.version}: {last}")

    # Following the registry (background thread) ---------------------------------------

    def _path(self) -> str:
        return f"/api/v1/models/{quote(self.model, safe='')}/serving"

    def _follow(self) -> None:
        backoff = self._min_backoff
        while not self._stop.is_set():
            client = self._clients[self._current]
            plan = self._plan
            params: dict[str, Any] = {}
            if plan is not None:
                params = {"after": plan.revision, "wait": self._wait}
            try:
                response = client.get(self._path(), params=params)
            except httpx.HTTPError as exc:
                if self._stop.is_set():
                    return
                self._failed(f"{type(exc).__name__}: {exc}")
                self._current = (self._current + 1) % len(self._clients)
                backoff = self._sleep(backoff)
                continue
            if response.status_code == 200:
                self._accept(Plan.from_json(response.json()))
                backoff = self._min_backoff
            elif response.status_code == 304:
                self.last_error = None
                backoff = self._min_backoff
            elif response.status_code == 409 and _code(response) == "revision-from-future":
                # The registry is behind what we saw (restored from a backup): start over.
                self._reset()
            else:
                self._failed(f"HTTP {response.status_code}: {response.text[:200]}")
                if response.status_code >= 500:
                    self._current = (self._current + 1) % len(self._clients)
                backoff = self._sleep(backoff)

    def _reset(self) -> None:
        try:
            response = self._clients[self._current].get(self._path())
            if response.status_code == 200:
                self._accept(Plan.from_json(response.json()), force=True)
        except httpx.HTTPError as exc:
            self._failed(str(exc))

    def _accept(self, plan: Plan, *, force: bool = False) -> None:
        self.last_error = None
        with self._changed:
            current = self._plan
            if not force and current is not None and plan.revision <= current.revision:
                return
            self._plan = plan
            self._changed.notify_all()
        self._ready.set()
        if self._on_change is not None:
            try:
                self._on_change(plan)
            except Exception:
                log.exception("on_change callback failed")

    def _failed(self, reason: str) -> None:
        self.errors += 1
        self.last_error = reason
        log.warning("modelgate router for %r: %s (serving the last plan)", self.model, reason)

    def _sleep(self, backoff: float) -> float:
        self._stop.wait(backoff / 2 + random.uniform(0, backoff / 2))
        return min(backoff * 2, self._max_backoff)


def _code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None
