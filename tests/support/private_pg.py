"""A private PostgreSQL server for fault tests: its own data directory, port and socket.

The machine's PostgreSQL (127.0.0.1:5432) is shared by every test run and by other people;
a test that stops and starts PostgreSQL under a running Modelgate does it to a server of
its own, built here with ``initdb`` and driven with ``pg_ctl``:

    with PrivatePostgres.create() as pg:
        url = pg.create_database("faults")
        ...
        pg.stop()      # the outage (fast shutdown: sessions are terminated)
        pg.start()     # same data directory, same port

``initdb`` refuses to run as root, so as root every PostgreSQL command runs as the
``postgres`` OS user (``runuser -u postgres --``) on directories chowned to it; as any
other user the commands run directly. :func:`available` says whether this can work here
(binaries found, and a ``postgres`` user when running as root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from sqlalchemy import create_engine, text

from tests.support.s3server import free_port

__all__ = ["PrivatePostgres", "available", "find_bindir"]


def find_bindir() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl``: the newest /usr/lib/postgresql/*/bin
    (Debian keeps them off PATH), else wherever PATH has ``pg_ctl``."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parent.name.split(".")],
    )
    for bindir in reversed(candidates):
        if (Path(bindir) / "initdb").is_file() and (Path(bindir) / "pg_ctl").is_file():
            return Path(bindir)
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    return None


def _run_as() -> list[str]:
    """Command prefix that runs PostgreSQL's tools as a user initdb accepts."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


def available() -> str | None:
    """None if a private server can be started here, else the reason it cannot."""
    if find_bindir() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) not found"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' OS user to run initdb as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is not available"
    return None


class PrivatePostgres:
    """One initdb'd cluster in a temporary directory; :meth:`destroy` removes everything."""

    def __init__(self, root: Path, bindir: Path, port: int) -> None:
        self.root = root
        self.bindir = bindir
        self.port = port
        self.data_dir = root / "data"
        self.socket_dir = root / "sock"
        self.log_path = root / "postgres.log"

    # lifecycle ------------------------------------------------------------------------

    @classmethod
    def create(cls, *, port: int | None = None) -> PrivatePostgres:
        """initdb a new cluster and start it on ``port`` (a free one by default)."""
        reason = available()
        if reason is not None:
            raise RuntimeError(reason)
        bindir = find_bindir()
        assert bindir is not None
        root = Path(tempfile.mkdtemp(prefix="modelgate-private-pg-"))
        server = cls(root, bindir, port or free_port())
        try:
            server.socket_dir.mkdir()
            if os.geteuid() == 0:
                owner = pwd.getpwnam("postgres")
                for path in (root, server.socket_dir):
                    os.chown(path, owner.pw_uid, owner.pw_gid)
            server._pg(
                "initdb",
                "-D",
                str(server.data_dir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            )
            server.start()
        except BaseException:
            server.destroy()
            raise
        return server

    def __enter__(self) -> PrivatePostgres:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    def start(self, *, timeout: float = 60.0) -> None:
        """Start the server on the same data directory and port and wait until it answers."""
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c shared_buffers=32MB"
        )
        self._pg(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-o",
            options,
            "-l",
            str(self.log_path),
            "-w",
            "-t",
            str(int(timeout)),
            "start",
        )
        self.wait_ready(timeout=timeout)

    def stop(self, mode: str = "fast", *, timeout: float = 60.0) -> None:
        """Stop the server: ``fast`` ends every session (what a restart by an operator or a
        failover does), ``immediate`` is a crash without a shutdown checkpoint."""
        if not self.is_running():
            return
        self._pg(
            "pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", str(int(timeout)), "stop"
        )

    def is_running(self) -> bool:
        if not self.data_dir.exists():
            return False
        result = subprocess.run(
            [*_run_as(), str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "status"],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            result = subprocess.run(
                [str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                check=False,
            )
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"private PostgreSQL not ready:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def destroy(self) -> None:
        """Stop (immediately) and remove the data directory, socket and log."""
        try:
            if self.is_running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # databases ------------------------------------------------------------------------

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database; returns its URL."""
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, PermissionError):
            return ""

    # internals ------------------------------------------------------------------------

    def _pg(self, tool: str, *args: str) -> None:
        command = [*_run_as(), str(self.bindir / tool), *args]
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{tool} failed ({result.returncode}): {result.stderr.strip() or result.stdout}"
                f"\n{self.log()[-2000:]}"
            )
