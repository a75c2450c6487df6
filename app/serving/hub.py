"""Waking the long-poll watchers of serving plans, in every server process.

Each server process has one :class:`ServingHub`, living on its event loop. A watcher
(an ``async`` route holding a request open) registers a future with the revision it
already has, and holds no thread and no database connection while it waits. The hub
resolves the future with ``(model, revision)`` when it learns of a newer revision:

- from this process's own commits, at once (:func:`announce_after_commit`);
- on PostgreSQL, from ``NOTIFY`` sent in the changing transaction (delivered when it
  commits), received by one listener connection per process in a thread of its own;
  after a lost connection the listener reconnects with backoff and wakes every watcher
  once (``None``), so that each reads its revision again: nothing sent while it was
  away is missed, since a revision is a number compared, not a stream read whole;
- on SQLite, by a short poll of the revisions of the models being watched.

It also keeps the last plan read per model, serialised, so that a wake-up of thousands
of watchers costs one read of the plan per process, not one per watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.observability.aftercommit import defer

log = logging.getLogger("modelgate.serving")

POLL_SECONDS = 0.2
"""How often a process on SQLite looks for revisions committed by other processes."""

MAX_CACHED_PLANS = 10_000

PING_SECONDS = 10.0
"""How long the PostgreSQL listener stays quiet before it checks its connection."""

Woken = tuple[str, int] | None
"""What a watcher's future resolves to: the model and its newer revision, or None when
the hub lost track (reconnect, shutdown) and the watcher must read the revision again."""

_hubs_lock = threading.Lock()
_hubs: list[ServingHub] = []


def announce_after_commit(session: Session, model_name: str, revision: int) -> None:
    """Wake this process's watchers of ``model_name`` once the transaction commits."""
    defer(session, lambda: announce(model_name, revision))


def announce(model_name: str, revision: int) -> None:
    """Tell every hub of this process that ``model_name`` is at ``revision`` (any thread)."""
    with _hubs_lock:
        hubs = list(_hubs)
    for hub in hubs:
        hub.publish_threadsafe(model_name, revision)


class ServingHub:
    """Watchers of serving plans in one process, and the source of their wake-ups."""

    def __init__(
        self,
        *,
        engine: Engine,
        sessions: sessionmaker[Session],
        read_bind: Engine | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._read_bind = read_bind
        self._poll_seconds = poll_seconds
        self._authoritative = engine.dialect.name == "postgresql"
        self._loop: asyncio.AbstractEventLoop | None = None
        # model -> {future: the revision its watcher has}; touched on the loop only.
        self._waiters: dict[str, dict[asyncio.Future[Woken], int]] = {}
        self._latest: dict[str, int] = {}
        self._plans: dict[str, tuple[int, bytes]] = {}
        self._plan_locks: dict[str, asyncio.Lock] = {}
        # The watched model names, for the SQLite poller's thread.
        self._watched_lock = threading.Lock()
        self._watched: dict[str, int] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.generation = 0
        """Grows whenever the hub may have missed a change (its listener reconnected): a
        watcher that read its revision under an older generation reads it again."""
        self.listening = threading.Event()
        """Set while the PostgreSQL listener (or the SQLite poller) is running."""

    # Life ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._authoritative:
            target: Callable[[], None] = self._listen
        else:
            target = self._poll
        self._thread = threading.Thread(target=target, name="modelgate-serving-hub", daemon=True)
        self._thread.start()
        with _hubs_lock:
            _hubs.append(self)

    async def stop(self) -> None:
        with _hubs_lock:
            if self in _hubs:
                _hubs.remove(self)
        self._stopping.set()
        self._wake_all()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)

    # Watchers (on the loop) ----------------------------------------------------------

    @property
    def watchers(self) -> int:
        return len({f for waiting in self._waiters.values() for f in waiting})

    def watch(
        self, revisions: Mapping[str, int], generation: int | None = None
    ) -> asyncio.Future[Woken]:
        """A future resolved when one of the models passes the revision given for it
        (at once with None if the revisions were read under another ``generation``)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Woken] = loop.create_future()
        if generation is not None and generation != self.generation:
            future.set_result(None)
            return future
        for model, after in revisions.items():
            latest = self._latest.get(model, -1)
            if latest > after:
                future.set_result((model, latest))
                return future
        for model, after in revisions.items():
            self._waiters.setdefault(model, {})[future] = after
        with self._watched_lock:
            for model in revisions:
                self._watched[model] = self._watched.get(model, 0) + 1
        return future

    def unwatch(self, future: asyncio.Future[Woken], models: Iterable[str]) -> None:
        for model in models:
            waiting = self._waiters.get(model)
            if waiting is not None and waiting.pop(future, None) is not None:
                if not waiting:
                    del self._waiters[model]
                with self._watched_lock:
                    left = self._watched.get(model, 0) - 1
                    if left > 0:
                        self._watched[model] = left
                    else:
                        self._watched.pop(model, None)
        if not future.done():
            future.cancel()

    def latest(self, model: str) -> int | None:
        """The model's revision as this hub knows it, when the hub is authoritative: a
        PostgreSQL listener that has been connected since the revision was learnt hears
        every later change, so its knowledge lags the database only by a NOTIFY in
        flight, and a watcher that starts from it is woken by that NOTIFY. None when the
        hub does not know (SQLite's poller sees only watched models)."""
        if not self._authoritative or not self.listening.is_set():
            return None
        return self._latest.get(model)

    def remember(self, model: str, revision: int, generation: int) -> None:
        """A revision read from the database under ``generation`` (see :meth:`latest`)."""
        fresh = self._authoritative and generation == self.generation
        if fresh and revision > self._latest.get(model, -1):
            self._latest[model] = revision

    def publish(self, model: str, revision: int) -> None:
        """``model`` is at ``revision``: wake its watchers that have an older one."""
        if revision > self._latest.get(model, -1):
            self._latest[model] = revision
        for future, after in list(self._waiters.get(model, {}).items()):
            if revision > after and not future.done():
                future.set_result((model, revision))

    def publish_threadsafe(self, model: str, revision: int) -> None:
        self._call(self.publish, model, revision)

    def _wake_all(self) -> None:
        """Every watcher reads its revision again (the listener may have missed a change)."""
        self.generation += 1
        self._latest.clear()
        for waiting in self._waiters.values():
            for future in waiting:
                if not future.done():
                    future.set_result(None)

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed in between
            loop.call_soon_threadsafe(fn, *args)

    # The plan cache (on the loop) ----------------------------------------------------

    async def plan(
        self, model: str, at_least: int, load: Callable[[], Awaitable[tuple[int, bytes]]]
    ) -> tuple[int, bytes]:
        """The serialised plan of ``model`` at ``at_least`` or newer: from the cache, or
        read once (``load``) however many watchers ask for it at the same time."""
        cached = self._plans.get(model)
        if cached is not None and cached[0] >= at_least:
            return cached
        lock = self._plan_locks.setdefault(model, asyncio.Lock())
        async with lock:
            cached = self._plans.get(model)
            if cached is not None and cached[0] >= at_least:
                return cached
            loaded = await load()
            if cached is None or loaded[0] >= cached[0]:
                if len(self._plans) >= MAX_CACHED_PLANS:
                    self._plans.clear()
                self._plans[model] = loaded
            return loaded

    # Sources of wake-ups (threads) -------------------------------------------------

    def _listen(self) -> None:
        """PostgreSQL: LISTEN on one connection of its own; reconnect with backoff."""
        import psycopg

        conninfo = self._engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        backoff = 0.2
        from app.serving.repository import NOTIFY_CHANNEL

        while not self._stopping.is_set():
            try:
                with psycopg.connect(
                    conninfo,
                    autocommit=True,
                    connect_timeout=5,
                    application_name="modelgate-serving-listener",
                ) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    backoff = 0.2
                    self.listening.set()
                    # Anything committed while there was no listener: read again.
                    self._call(self._wake_all)
                    quiet_since = time.monotonic()
                    while not self._stopping.is_set():
                        for note in conn.notifies(timeout=1.0):
                            quiet_since = time.monotonic()
                            revision, _, model = note.payload.partition(" ")
                            self._call(self.publish, model, int(revision))
                        if time.monotonic() - quiet_since > PING_SECONDS:
                            # A connection that died silently must not leave the hub
                            # trusting what it knows: a failing ping reconnects.
                            conn.execute("SELECT 1")
                            quiet_since = time.monotonic()
            except Exception as exc:
                self.listening.clear()
                self._call(self._wake_all)
                if self._stopping.is_set():
                    break
                log.warning("serving listener lost its connection (%s); retrying", exc)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        self.listening.clear()

    def _poll(self) -> None:
        """SQLite: read the revisions of the watched models every ``poll_seconds``."""
        from app.serving import repository

        self.listening.set()
        while not self._stopping.wait(self._poll_seconds):
            with self._watched_lock:
                models = list(self._watched)
            if not models:
                continue
            try:
                factory = self._sessions
                bind = self._read_bind
                with factory(bind=bind) if bind is not None else factory() as session:
                    revisions = repository.revisions_of(session, models)
            except Exception as exc:
                log.warning("serving poll failed (%s)", exc)
                continue
            for model, revision in revisions.items():
                self._call(self.publish, model, revision)
        self.listening.clear()
