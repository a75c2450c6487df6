"""moto's standalone S3 server in a subprocess, reached over HTTP like a real store.

A subprocess rather than ``mock_aws``: boto3 runs unpatched, through real sockets,
timeouts and retries, and a fault test can SIGKILL the server to see what the
service does when its store disappears mid-request.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import Self

TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""Environment for boto3 clients talking to moto (it accepts any credentials)."""


def free_port() -> int:
    """A loopback port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ManagedProcess:
    """A server subprocess with its output in a log file; a context manager that stops it.

    ``stop`` asks with SIGTERM and kills after ``stop_timeout``; ``kill`` is SIGKILL, a
    crash that closes no connection. Either removes the log file.
    """

    stop_timeout = 15.0

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: str) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM (graceful shutdown), then SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._cleanup()

    def kill(self) -> None:
        """SIGKILL: the server vanishes without closing connections, as in a crash."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self._cleanup()

    def _cleanup(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.log_path)


class MotoServer(ManagedProcess):
    """A running ``python -m moto.server``."""

    stop_timeout = 5.0

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Forget every bucket and object (moto's own reset endpoint)."""
        url = f"{self.endpoint_url}/moto-api/reset"
        with urllib.request.urlopen(url, data=b"", timeout=10):  # noqa: S310 (our own http URL)
            pass


def _answers_http(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (our own http URL)
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP status means the server is serving
    except OSError:
        return False


def start_moto_server(*, port: int | None = None, timeout: float = 30.0) -> MotoServer:
    """Start moto on loopback and wait until it answers HTTP: on ``port`` (a store coming
    back where the service expects it), or on a free port, retried if it was taken."""
    last_error = "not started"
    for _attempt in range(1 if port else 3):  # a free port may be taken before the bind
        server = _try_moto(port or free_port(), timeout)
        if isinstance(server, MotoServer):
            return server
        last_error = server
    raise RuntimeError(f"moto server did not start:\n{last_error}")


def _try_moto(port: int, timeout: float) -> MotoServer | str:
    """The server on ``port``, or its log when it did not come up."""
    env = {**os.environ, **TEST_CREDENTIALS}
    with tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False) as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    server = MotoServer(process, port, log.name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if _answers_http(f"{server.endpoint_url}/moto-api/"):
            return server
        time.sleep(0.1)
    with open(log.name, encoding="utf-8", errors="replace") as handle:
        output = handle.read()[-2000:]
    server.kill()
    return output
