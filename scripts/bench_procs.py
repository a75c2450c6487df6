"""Processes for the benchmark: start and stop servers, and measure what they use.

Everything here reads Linux's /proc: CPU seconds (utime + stime of a process tree),
resident memory (VmRSS), and the machine's own busy time, so that a run shows how much
of the CPU went to the server, the database, the store, the load generator and to
anything else that happened to run on the machine at the same time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# /proc readers ---------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after it.
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 when it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # After the name: state(0) ppid(1) ... utime(11) stime(12).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * PAGE_SIZE
    except OSError:
        return 0


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (gunicorn's workers, uvicorn's children)."""
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(pid)
    found: list[int] = []
    pending = [root]
    while pending:
        pid = pending.pop()
        if _stat_fields(pid) is None:
            continue
        found.append(pid)
        pending.extend(children.get(pid, []))
    return sorted(found)


def pids_with_cmdline(fragment: str) -> list[int]:
    """Processes whose command line contains ``fragment`` (PostgreSQL backends of one
    database show it: ``postgres: 15/main: postgres modelgate_bench 127.0.0.1(...)``)."""
    found = []
    for pid in _all_pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if fragment.encode() in cmdline:
            found.append(pid)
    return found


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores)."""
    with open("/proc/stat") as handle:
        parts = handle.readline().split()[1:]
    values = [int(v) for v in parts]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def loadavg() -> float:
    with open("/proc/loadavg") as handle:
        return float(handle.read().split()[0])


# Watching a group of processes ---------------------------------------------------------


@dataclass
class Group:
    """A named set of processes whose CPU and memory are measured together."""

    name: str
    pids: Callable[[], Sequence[int]]


@dataclass
class Snapshot:
    cpu: dict[str, float]
    machine_busy: float
    client_cpu: float
    at: float


@dataclass
class _Peak:
    max_process_rss: int = 0
    max_total_rss: int = 0
    samples: int = 0


@dataclass
class Monitor:
    """CPU per group between two snapshots, and peak RSS sampled every ``interval``.

    A sampling thread reads VmRSS of every process of every group; ``begin_peak`` and
    ``end_peak`` bracket a phase so that each phase gets its own peak.
    """

    groups: list[Group]
    interval: float = 0.05
    _peaks: dict[str, _Peak] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _pid_cache: dict[str, tuple[float, list[int]]] = field(default_factory=dict)
    _last_cpu: dict[str, dict[int, float]] = field(default_factory=dict)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._sample_loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _pids(self, group: Group, max_age: float = 1.0) -> list[int]:
        # Enumerating /proc is the expensive part; process trees change rarely.
        now = time.monotonic()
        cached = self._pid_cache.get(group.name)
        if cached is None or now - cached[0] > max_age:
            cached = (now, list(group.pids()))
            self._pid_cache[group.name] = cached
        return cached[1]

    def snapshot(self) -> Snapshot:
        cpu = {g.name: self._group_cpu(g) for g in self.groups}
        return Snapshot(cpu, machine_busy_seconds(), time.process_time(), time.monotonic())

    def _group_cpu(self, group: Group) -> float:
        """CPU of the group's processes, counting those that have exited (a pool that
        closes connections ends PostgreSQL backends) at their last sampled value, so
        that the total never goes backwards."""
        with self._lock:
            seen = self._last_cpu.setdefault(group.name, {})
            for pid in self._pids(group, max_age=0):
                value = cpu_seconds(pid)
                if value or pid not in seen:
                    seen[pid] = value
            return sum(seen.values())

    def rss(self, group_name: str) -> tuple[int, int]:
        """(largest single process, sum) RSS of a group right now."""
        group = next(g for g in self.groups if g.name == group_name)
        values = [rss_bytes(p) for p in self._pids(group)]
        return (max(values, default=0), sum(values))

    def begin_peak(self) -> None:
        with self._lock:
            self._peaks = {g.name: _Peak() for g in self.groups}

    def end_peak(self) -> dict[str, dict[str, int]]:
        self._sample_once()
        with self._lock:
            peaks, self._peaks = self._peaks, {}
        return {
            name: {
                "max_process_rss": p.max_process_rss,
                "max_total_rss": p.max_total_rss,
                "samples": p.samples,
            }
            for name, p in peaks.items()
        }

    def _sample_once(self) -> None:
        with self._lock:
            for group in self.groups:
                peak = self._peaks.get(group.name)
                if peak is None:
                    continue
                pids = self._pids(group)
                values = [rss_bytes(p) for p in pids]
                seen = self._last_cpu.setdefault(group.name, {})
                for pid in pids:
                    value = cpu_seconds(pid)
                    if value:
                        seen[pid] = value
                peak.max_process_rss = max(peak.max_process_rss, max(values, default=0))
                peak.max_total_rss = max(peak.max_total_rss, sum(values))
                peak.samples += 1

    def _sample_loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample_once()


def usage_between(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds per group, of the load generator, and of everything else."""
    used = {f"{name}_cpu_s": after.cpu[name] - before.cpu[name] for name in after.cpu}
    used["client_cpu_s"] = after.client_cpu - before.client_cpu
    busy = after.machine_busy - before.machine_busy
    used["machine_busy_s"] = busy
    used["other_cpu_s"] = max(0.0, busy - sum(v for k, v in used.items() if k != "machine_busy_s"))
    return {k: round(v, 3) for k, v in used.items()}


# Starting and stopping ---------------------------------------------------------------


@dataclass
class Service:
    """A started server process; ``stop()`` ends it and its children."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is not None:
            return
        # Its own process group (start_new_session): TERM reaches every worker.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def start_service(
    name: str,
    argv: Sequence[str],
    *,
    env: dict[str, str],
    log_dir: Path,
    ready_url: str,
    timeout: float = 90.0,
    cwd: str | None = None,
) -> Service:
    """Start ``argv`` in its own session and wait until ``ready_url`` answers HTTP."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    service = Service(name, process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{service.log_tail()}")
        if answers_http(ready_url):
            return service
        time.sleep(0.2)
    service.stop()
    raise RuntimeError(
        f"{name} did not answer {ready_url} in {timeout:.0f} s:\n{service.log_tail()}"
    )


def answers_http(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (our own loopback URL)
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def stop_all(services: Iterable[Service]) -> None:
    for service in services:
        with contextlib.suppress(Exception):
            service.stop()


def start_servers(
    db_url: str, store: str, token: str, log_dir: Path, extra_env: dict[str, str] | None = None
) -> list[Service]:
    """Two uvicorn processes (one worker each) on one database and artifact directory
    (``extra_env``: more ``MODELGATE_*`` settings)."""
    root = Path(__file__).resolve().parents[1]
    services = []
    for i in range(2):
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
        env.update({
            "MODELGATE_DATABASE_URL": db_url, "MODELGATE_ARTIFACT_STORE": store,
            "MODELGATE_BOOTSTRAP_ADMIN_TOKEN": token, "MODELGATE_AUTO_MIGRATE": "true",
            "MODELGATE_LOG_LEVEL": "WARNING", "MODELGATE_WEBHOOK_DISPATCHER_ENABLED": "false",
            "PYTHONPATH": str(root), **(extra_env or {}),
        })  # fmt: skip
        argv = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                "--no-access-log"]  # fmt: skip
        service = start_service(
            f"serving-{i}", argv, env=env, log_dir=log_dir,
            ready_url=f"http://127.0.0.1:{port}/readyz",
        )  # fmt: skip
        service.url = f"http://127.0.0.1:{port}"
        services.append(service)
    return services


def bench_arguments(scales: Iterable[str], doc: str | None) -> argparse.ArgumentParser:
    """The options of a two-server bench (bench_serving, bench_rollout): its scale and the
    PostgreSQL server; ``doc`` is the script's docstring (its first line describes it)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--scale", choices=sorted(scales), default="full")
    parser.add_argument(
        "--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="Maintenance database of the PostgreSQL server.",
    )  # fmt: skip
    return parser


@contextmanager
def two_servers(
    pg_url: str, kind: str, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[list[Service], str, Monitor]]:
    """A fresh database ``modelgate_bench_<kind>``, two servers on it (:func:`start_servers`)
    with a new admin token, and a started monitor of the servers and the database; yields
    (servers, token, monitor) and stops them all after."""
    from bench_run import database_url, recreate_database

    name = f"modelgate_bench_{kind}"
    token = f"mgt_bench-{kind}-" + os.urandom(8).hex()
    recreate_database(pg_url, name)
    workdir = Path(tempfile.mkdtemp(prefix=f"modelgate-bench-{kind}-"))
    services = start_servers(database_url(pg_url, name), str(workdir / "artifacts"),
                             token, workdir / "logs", extra_env)  # fmt: skip
    pids = [s.pid for s in services]
    monitor = Monitor([
        Group("server", lambda: [p for pid in pids for p in descendants(pid)]),
        Group("db", lambda: pids_with_cmdline(f" {name} ")),
    ])  # fmt: skip
    monitor.start()
    try:
        yield services, token, monitor
    finally:
        monitor.stop()
        stop_all(services)
