"""Process helpers of the fault tests: a moto S3 server on a chosen port (to bring the
store back where the service expects it), a Modelgate server started with resource
limits, and a load loop that records every answer with its time.
"""

from __future__ import annotations

import random
import resource
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

from tests.support.s3server import MotoServer, start_moto_server
from tests.support.servers import ServerProcess, start_server

__all__ = ["Answer", "LoadLoop", "start_moto_on", "start_server_limited"]


def start_moto_on(port: int, *, timeout: float = 30.0) -> MotoServer:
    """A new (empty) moto S3 server on ``port``: the store coming back after a crash."""
    return start_moto_server(port=port, timeout=timeout)


def start_server_limited(
    settings: Mapping[str, str], *, max_file_bytes: int | None = None
) -> ServerProcess:
    """A Modelgate server process; with ``max_file_bytes`` no file it writes may grow past
    that size (RLIMIT_FSIZE): writes beyond fail with EFBIG, the way a full disk fails
    them with ENOSPC, without needing a filesystem of that size."""
    if max_file_bytes is None:
        return start_server(settings)

    def limit() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    # Python ignores SIGXFSZ, so a write past the limit is an OSError, not a crash.
    return start_server(settings, preexec_fn=limit)


@dataclass(frozen=True)
class Answer:
    """One request of a load loop: when it started and ended, and what came back."""

    kind: str
    started: float
    ended: float
    status: int | None
    """None when no HTTP answer came (transport error)."""
    code: str | None
    problem: bool
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class LoadLoop:
    """``threads`` clients sending ``operations`` (name -> call) in a loop until stopped."""

    operations: Mapping[str, Callable[[httpx.Client, random.Random], httpx.Response]]
    base_url: str
    headers: dict[str, str]
    threads: int = 6
    seed: int = 7
    timeout: float = 30.0
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> LoadLoop:
        for i in range(self.threads):
            worker = threading.Thread(target=self._run, args=(i,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=self.timeout + 10)

    def between(self, start: float, end: float) -> list[Answer]:
        """Answers to requests sent at or after ``start`` and answered by ``end``."""
        with self._lock:
            return [a for a in self.answers if a.started >= start and a.ended <= end]

    def _run(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        names = list(self.operations)
        # Short keep-alive: connections do not outlive the server's idle timeout.
        limits = httpx.Limits(keepalive_expiry=2.0)
        with httpx.Client(
            base_url=self.base_url, headers=self.headers, timeout=self.timeout, limits=limits
        ) as http:
            while not self._stop.is_set():
                kind = rng.choice(names)
                started = time.monotonic()
                try:
                    response = self.operations[kind](http, rng)
                except httpx.HTTPError as exc:
                    answer = Answer(kind, started, time.monotonic(), None, None, False, repr(exc))
                else:
                    problem = response.headers.get("content-type", "").startswith(
                        "application/problem+json"
                    )
                    code = response.json().get("code") if problem else None
                    answer = Answer(
                        kind, started, time.monotonic(), response.status_code, code, problem
                    )
                with self._lock:
                    self.answers.append(answer)
                time.sleep(0.01)
