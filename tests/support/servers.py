"""Real Modelgate server processes for tests about several processes, restarts and sockets.

Each server is ``python -m uvicorn app.main:create_app --factory`` on a free loopback
port, configured only through ``MODELGATE_*`` environment variables (nothing inherited
from the developer's shell), with its output in a log file that is shown when it fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.s3server import TEST_CREDENTIALS, ManagedProcess, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


class ServerProcess(ManagedProcess):
    """One running Modelgate server; use as a context manager or call stop()."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0, path: str = "/readyz") -> None:
        """Poll until ``path`` answers 200; RuntimeError with the server's log otherwise."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode} before it was ready:\n"
                    + self.log()[-4000:]
                )
            try:
                response = httpx.get(self.base_url + path, timeout=2.0)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s ({last}):\n" + self.log()[-4000:])


def server_env(settings: Mapping[str, str]) -> dict[str, str]:
    """The process environment: this one without any MODELGATE_* variable, plus ``settings``
    (names without the prefix, e.g. ``{"DATABASE_URL": ...}``), plus test AWS credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
    env.update(TEST_CREDENTIALS)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update({f"MODELGATE_{name.upper()}": value for name, value in settings.items()})
    return env


def start_server(
    settings: Mapping[str, str],
    *,
    cwd: str | Path | None = None,
    port: int | None = None,
    preexec_fn: Callable[[], None] | None = None,
    log_level: str = "warning",
    access_log: bool = False,
) -> ServerProcess:
    """Start a server (not waiting for it: call wait_ready()). ``cwd`` defaults to a fresh
    temporary directory, so no ``.env`` or ``modelgate-data/`` of the checkout is used;
    ``port`` to a free one. ``preexec_fn`` runs in the child before it starts (limits).
    ``log_level`` and ``access_log`` are uvicorn's own (a test reading its logs wants them)."""
    port = port or free_port()
    workdir = Path(cwd) if cwd is not None else Path(tempfile.mkdtemp(prefix="modelgate-cwd-"))
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        prefix="modelgate-server-", suffix=".log", delete=False
    ) as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", log_level,
                *(["--access-log"] if access_log else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=server_env(settings),
            cwd=workdir,
            preexec_fn=preexec_fn,
        )  # fmt: skip
    return ServerProcess(process, port, log.name)


@contextmanager
def running_servers(
    settings: Mapping[str, str], count: int = 1, *, timeout: float = 60.0
) -> Iterator[list[ServerProcess]]:
    """``count`` servers with the same settings, started together and ready; stopped after."""
    servers = [start_server(settings) for _ in range(count)]
    try:
        for server in servers:
            server.wait_ready(timeout=timeout)
        yield servers
    finally:
        for server in servers:
            server.stop()
