"""A real webhook receiver on loopback: a threaded ``http.server`` that records every
request, can answer with an error, can hold requests, and can be stopped and started
again on the same port (a receiver that goes down and comes back)."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    status: int  # what the receiver answered
    at: float = field(default_factory=time.monotonic)

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    @property
    def event_id(self) -> str:
        return self.headers["modelgate-event-id"]


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False


class Receiver:
    def __init__(self) -> None:
        self.port = 0
        self._lock = threading.Lock()
        self._requests: list[Received] = []
        self._status = 200
        self._delay = 0.0
        self._fail_rate = 0.0
        self._rng = random.Random(0)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # Control ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    status, delay = receiver._status, receiver._delay
                    if receiver._fail_rate and receiver._rng.random() < receiver._fail_rate:
                        status = 503
                    receiver._requests.append(
                        Received(
                            path=self.path,
                            headers={k.lower(): v for k, v in self.headers.items()},
                            body=body,
                            status=status,
                        )
                    )
                if delay:
                    time.sleep(delay)
                reply = b"ok" if status < 300 else b"receiver says no"
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until :meth:`start` (same port)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def answer(self, status: int) -> None:
        """Answer every request with ``status`` from now on (200 is healthy)."""
        with self._lock:
            self._status = status

    def fail_randomly(self, rate: float, seed: int = 0) -> None:
        """Answer 503 to a seeded random share ``rate`` of the requests."""
        with self._lock:
            self._fail_rate = rate
            self._rng = random.Random(seed)

    def hold(self, seconds: float) -> None:
        """Wait ``seconds`` before answering each request."""
        with self._lock:
            self._delay = seconds

    # Reading -------------------------------------------------------------------------------

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._requests)

    def accepted(self) -> list[Received]:
        """Requests answered 2xx."""
        return [r for r in self.requests if 200 <= r.status < 300]

    def event_ids(self) -> set[str]:
        return {r.event_id for r in self.requests}

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.requests):
                return True
            time.sleep(0.02)
        return predicate(self.requests)
