"""A Modelgate server in a subprocess (uvicorn), reached over real HTTP like a deployment.

The CLI tests talk to this, not to the in-process app: the command line is what CI jobs,
reviewers and on-call engineers use against a running service. The process itself is
tests/support/servers.py's, like every other test's server.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from tests.support.servers import REPO_ROOT, ServerProcess, start_server

__all__ = ["REPO_ROOT", "LiveServer"]


class LiveServer:
    """A server started with ``MODELGATE_*`` settings, in ``workdir``, ready on enter."""

    def __init__(self, settings: dict[str, str], workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        self._server: ServerProcess | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not running")
        return self._server.base_url

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, *, timeout: float = 60.0) -> LiveServer:
        names = {k.removeprefix("MODELGATE_"): v for k, v in self.settings.items()}
        self._server = start_server(names, cwd=self.workdir)
        try:
            self._server.wait_ready(timeout=timeout)
        except BaseException:
            self._server.stop()
            raise
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def log(self) -> str:
        return self._server.log()[-5000:] if self._server is not None else ""
