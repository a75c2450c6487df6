"""What serving saw, batched and sent to the registry by a background thread.

:class:`ObservationSink` is what a :class:`~modelgate_client.router.Router` uses to
report every request it routes (``POST /api/v1/models/{model}/observations``); it can be
used alone too. Serving never waits for it:

- :meth:`ObservationSink.add` appends to a bounded queue and returns at once; when the
  queue is full the observation is dropped and counted (``stats.dropped``), never
  blocking the request that made it.
- A background thread sends a batch when ``batch_size`` observations are waiting or the
  oldest has waited ``max_age`` seconds, whichever comes first.
- A batch that meets a connection error, a 5xx or a 429 is retried with backoff under the
  same ``Idempotency-Key`` (the registry answers a repeat with the first answer, so
  nothing is counted twice) up to ``max_attempts`` times, then counted as failed.
- A batch the registry refuses (4xx) is refused whole; when the problem names the bad
  rows (``errors[].loc = ["body", "observations", i, ...]``) those rows are dropped and
  counted (``stats.rejected``), with every row of a version it names as not acceptable
  (outside the serving plan, say), and the rest is sent again (up to 3 times);
  otherwise the whole batch is counted as rejected.
- :meth:`ObservationSink.flush` sends what is queued now; :meth:`ObservationSink.close`
  flushes (within a timeout) and stops the thread.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

__all__ = [
    "ObservationSink",
    "ObservationStats",
    "as_prediction",
    "observation_key",
]

log = logging.getLogger("modelgate_client.observations")

Send = Callable[[dict[str, Any], str], httpx.Response]
"""Sends one batch body with an Idempotency-Key and returns the answer (or raises
httpx.TransportError when none came)."""

_KEY = re.compile(r"^[\x21-\x7e]{1,256}$")
_RETRY = frozenset({429, 500, 502, 503, 504})
MAX_BATCH = 10_000
"""The registry's largest batch."""
MAX_SPLITS = 3
"""Times a refused batch is sent again without the rows the refusal named."""


def observation_key(request_key: str | bytes) -> str:
    """The request key as observations carry it: a key of 1 to 256 printable ASCII
    characters without spaces is kept as it is; any other becomes ``sha256:`` and 56 hex
    digits of its hash. Send labels under the same key (``observation_key(key)``)."""
    if isinstance(request_key, str) and _KEY.match(request_key):
        return request_key
    raw = request_key if isinstance(request_key, bytes) else request_key.encode("utf-8")
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:56]


def as_prediction(result: Any) -> dict[str, Any] | None:
    """A scorer's result as an observation's prediction: a dict with exactly one of
    ``class``, ``score`` or ``value`` is kept; a string (or bool) is a class; a finite
    number is a value; anything else is not recorded."""
    if isinstance(result, Mapping):
        found = [k for k in ("class", "score", "value") if result.get(k) is not None]
        return {found[0]: result[found[0]]} if len(found) == 1 else None
    if isinstance(result, bool):
        return {"class": "true" if result else "false"}
    if isinstance(result, str):
        return {"class": result} if result and "\x00" not in result else None
    if isinstance(result, int | float) and math.isfinite(result):
        return {"value": float(result)}
    return None


@dataclass
class ObservationStats:
    """Counters since the sink started (read them; the sink updates them)."""

    queued: int = 0
    """Observations accepted into the queue."""
    sent: int = 0
    """Observations the registry accepted."""
    batches: int = 0
    """Batches the registry accepted."""
    dropped: int = 0
    """Observations dropped because the queue was full (serving never waits)."""
    rejected: int = 0
    """Observations the registry refused (4xx), e.g. a version it does not know."""
    failed: int = 0
    """Observations given up after ``max_attempts`` (registry unreachable or 5xx)."""
    retries: int = 0
    """Batch attempts repeated after a connection error, a 5xx or a 429."""
    last_error: str | None = None


class ObservationSink:
    """A bounded queue of observations and the thread that sends them in batches."""

    def __init__(
        self,
        send: Send,
        *,
        batch_size: int = 500,
        max_age: float = 1.0,
        queue_size: int = 20_000,
        max_attempts: int = 6,
        min_backoff: float = 0.2,
        max_backoff: float = 5.0,
        name: str = "modelgate-observations",
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be in 1..{MAX_BATCH}")
        if max_age <= 0 or queue_size < 1 or max_attempts < 1:
            raise ValueError("max_age, queue_size and max_attempts must be positive")
        self._send = send
        self.batch_size = batch_size
        self.max_age = max_age
        self.queue_size = queue_size
        self.max_attempts = max_attempts
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._name = name
        self.stats = ObservationStats()
        self._queue: deque[tuple[float, dict[str, Any]]] = deque()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._flush_requested = False
        self._closing = False
        self._give_up_at: float | None = None
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # Serving side (never blocks on the network) ------------------------------------------

    def add(self, observation: dict[str, Any]) -> bool:
        """Queue one observation (a dict of the batch schema); False when it was dropped
        (queue full, or the sink closed)."""
        with self._cond:
            if self._closing or len(self._queue) >= self.queue_size:
                self.stats.dropped += 1
                return False
            self._queue.append((time.monotonic(), observation))
            self.stats.queued += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            if len(self._queue) >= self.batch_size:
                self._cond.notify_all()
        return True

    def record(
        self,
        request_key: str | bytes,
        version: int,
        *,
        role: str = "primary",
        latency_ms: float | None = None,
        error: bool = False,
        prediction: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> bool:
        """Queue what serving saw for one version on one request."""
        observation: dict[str, Any] = {
            "request_key": observation_key(request_key),
            "version": int(version),
            "role": role,
            "error": bool(error),
            "time": (at or datetime.now(UTC)).isoformat(),
        }
        if latency_ms is not None and math.isfinite(latency_ms):
            observation["latency_ms"] = min(max(float(latency_ms), 0.0), 3_600_000.0)
        if prediction is not None:
            observation["prediction"] = prediction
        return self.add(observation)

    @property
    def pending(self) -> int:
        """Observations queued or in a batch being sent."""
        with self._cond:
            return len(self._queue) + self._in_flight

    # Life ----------------------------------------------------------------------------------

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Send what is queued now and wait until it is sent (or given up); False when
        ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._thread is None:
                return True
            self._flush_requested = True
            self._cond.notify_all()
            while self._queue or self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued (what is not sent after ``timeout`` seconds is given up and
        counted as failed) and stop the thread; later observations are dropped."""
        with self._cond:
            self._closing = True
            self._give_up_at = time.monotonic() + timeout
            self._cond.notify_all()
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout + 1.0)

    # The thread ----------------------------------------------------------------------------

    def _take(self) -> list[dict[str, Any]] | None:
        """Wait for a batch to be due; None when closing and nothing is left."""
        with self._cond:
            while True:
                give_up = self._give_up_at
                if self._closing and give_up is not None and time.monotonic() >= give_up:
                    # Closing took longer than its timeout: what is left is given up.
                    self.stats.failed += len(self._queue)
                    self._queue.clear()
                    self._cond.notify_all()
                    return None
                if self._queue:
                    oldest = self._queue[0][0]
                    due = (
                        len(self._queue) >= self.batch_size
                        or self._flush_requested
                        or self._closing
                        or time.monotonic() - oldest >= self.max_age
                    )
                    if due:
                        count = min(self.batch_size, len(self._queue))
                        batch = [self._queue.popleft()[1] for _ in range(count)]
                        self._in_flight = len(batch)
                        return batch
                    self._cond.wait(max(0.0, oldest + self.max_age - time.monotonic()))
                else:
                    self._flush_requested = False
                    self._cond.notify_all()
                    if self._closing:
                        return None
                    self._cond.wait()

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._deliver(batch)
            except Exception:  # never let the thread die: count and carry on
                log.exception("sending observations failed")
                self.stats.failed += len(batch)
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()

    def _sleep(self, seconds: float) -> bool:
        """Back off; False when closing and the close deadline has passed."""
        give_up = self._give_up_at
        if give_up is not None:
            seconds = min(seconds, give_up - time.monotonic())
            if seconds <= 0:
                return False
        self._wake.wait(seconds)
        give_up = self._give_up_at
        return give_up is None or time.monotonic() < give_up

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        splits = 0
        key = str(uuid.uuid4())
        backoff = self._min_backoff
        attempt = 0
        while batch:
            attempt += 1
            try:
                response = self._send({"observations": batch}, key)
            except httpx.TransportError as exc:
                response = None
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
            if response is not None and response.is_success:
                self.stats.sent += len(batch)
                self.stats.batches += 1
                self.stats.last_error = None
                return
            if response is not None and response.status_code not in _RETRY:
                detail = _detail(response)
                self.stats.last_error = f"HTTP {response.status_code}: {detail}"
                bad = _bad_rows(response, batch)
                if bad and splits < MAX_SPLITS and len(bad) < len(batch):
                    splits += 1
                    self.stats.rejected += len(bad)
                    log.warning(
                        "the registry refused %d of %d observations (%s); sending the rest",
                        len(bad), len(batch), detail,
                    )  # fmt: skip
                    batch = [o for i, o in enumerate(batch) if i not in bad]
                    key = str(uuid.uuid4())  # another body: another key
                    attempt = 0
                    continue
                log.warning("the registry refused %d observations: %s", len(batch), detail)
                self.stats.rejected += len(batch)
                return
            if response is not None:
                self.stats.last_error = f"HTTP {response.status_code}: {_detail(response)}"
            if attempt >= self.max_attempts:
                break
            self.stats.retries += 1
            delay = backoff / 2 + random.uniform(0, backoff / 2)
            retry_after = response.headers.get("Retry-After") if response is not None else None
            if retry_after and retry_after.isdigit():
                delay = max(delay, min(float(retry_after), self._max_backoff))
            backoff = min(backoff * 2, self._max_backoff)
            if not self._sleep(delay):
                break
        log.warning("gave up sending %d observations: %s", len(batch), self.stats.last_error)
        self.stats.failed += len(batch)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)[:300]
    return str(body)[:300]


def _bad_rows(response: httpx.Response, batch: list[dict[str, Any]]) -> set[int]:
    """Indexes of the rows a refusal names (``loc = ["body", "observations", i, ...]``),
    and of every row with a version a refusal names as unknown or outside the plan (the
    list of errors may be cut); empty when it names no row."""
    try:
        body = response.json()
    except ValueError:
        return set()
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return set()
    bad: set[int] = set()
    versions: set[Any] = set()
    for error in body["errors"]:
        loc = error.get("loc") if isinstance(error, dict) else None
        if (
            isinstance(loc, list)
            and len(loc) >= 3
            and loc[:2] == ["body", "observations"]
            and isinstance(loc[2], int)
            and 0 <= loc[2] < len(batch)
        ):
            bad.add(loc[2])
            if len(loc) >= 4 and loc[3] == "version":
                versions.add(batch[loc[2]].get("version"))
        else:
            return set()
    bad.update(i for i, row in enumerate(batch) if row.get("version") in versions)
    return bad
