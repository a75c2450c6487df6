"""scripts/bench: the side-by-side benchmark of Modelgate (see docs/performance.md).

Without --url it starts what it needs and stops it at the end: moto's S3 server, a
fresh PostgreSQL database (modelgate_bench), the migrations, and
``modelgate serve --workers 2`` on a free port. Then, per concurrency level, the
request phases (create_version, promote, read, list_100); one artifact upload with
the server's RSS sampled every 50 ms; the reference points (pgbench, direct boto3
upload); list and search latency at a small and a large model (seeded with COPY);
with --compare-mlflow the same workload through MLflow's REST API; the serving phase
(scripts/bench_serving.py: server CPU per plan read and 304 beside MLflow's
get-model-version-by-alias, long-poll watchers' wake-up and idle cost); the rollout
phase (scripts/bench_rollout.py: abort latency from the decisive observation batch to
every router's plan, server CPU per observation batch). A table goes to
stdout and the whole result to OUT/bench-<time>.json (and OUT/latest.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_mlflow
import bench_modelgate
import bench_reference
import bench_rollout
import bench_scale
import bench_serving
from bench_load import keepalive_probe, run_phase
from bench_procs import (
    Group,
    Monitor,
    Service,
    descendants,
    free_port,
    loadavg,
    pids_with_cmdline,
    start_service,
    stop_all,
)
from bench_report import render
from bench_workload import MIB, SCALES, GeneratedArtifact

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DB_NAME = "modelgate_bench"
MLFLOW_DB_NAME = "mlflow_bench"
BUCKET = "modelgate-bench"
PARTS = ("modelgate", "serving", "rollout", "upload", "pgbench", "boto3", "scale")
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--url", help="A running Modelgate (nothing is started).")
    parser.add_argument("--token", help="Admin token for --url (or MODELGATE_TOKEN).")
    parser.add_argument("--concurrency", default="1,16", help="Levels, e.g. 1,16.")
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--compare-mlflow", action="store_true")
    parser.add_argument("--out", default="bench-results", help="Directory for JSON and logs.")
    parser.add_argument("--workers", type=int, default=2, help="Server workers (both servers).")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "MODELGATE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="Maintenance database of the PostgreSQL server (its databases are created).",
    )
    parser.add_argument(
        "--db-url",
        help="With --url: the server's database, for pgbench's scratch tables and seeding.",
    )
    parser.add_argument(
        "--db-name",
        default=DB_NAME,
        help=f"Database the started Modelgate uses; dropped and created (default {DB_NAME}).",
    )
    parser.add_argument("--s3-endpoint", help="With --url: the server's S3 endpoint.")
    parser.add_argument("--bucket", default=BUCKET, help="With --url: a bucket for boto3.")
    parser.add_argument("--server-pid", type=int, help="With --url: the server's process.")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Extra environment of the started Modelgate (e.g. MODELGATE_DB_POOL_SIZE=8).",
    )
    parser.add_argument(
        "--skip", default="", help=f"Comma-separated parts to leave out: {', '.join(PARTS)}."
    )
    parser.add_argument(
        "--phases",
        default=",".join(PHASE_NAMES),
        help=f"Comma-separated request phases to run: {', '.join(PHASE_NAMES)} "
        "(promote and read need create_version).",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="MINUTES",
        help="Wait up to this long for the machine's 1-minute load to fall below half its CPUs.",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="Record the server workers with py-spy during the request phases.",
    )
    args = parser.parse_args(argv)
    try:
        args.levels = sorted({int(c) for c in args.concurrency.split(",") if c.strip()})
    except ValueError:
        parser.error("--concurrency takes integers, e.g. 1,16")
    if not args.levels or min(args.levels) < 1:
        parser.error("--concurrency needs levels of at least 1")
    args.skipped = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = args.skipped - set(PARTS)
    if unknown:
        parser.error(f"--skip: unknown parts {sorted(unknown)}")
    wanted = {p.strip() for p in args.phases.split(",") if p.strip()}
    if wanted - set(PHASE_NAMES):
        parser.error(f"--phases: unknown phases {sorted(wanted - set(PHASE_NAMES))}")
    args.phases = tuple(p for p in PHASE_NAMES if p in wanted)
    if args.phases and "create_version" not in args.phases:
        parser.error("--phases: promote, read and list_100 need create_version")
    if args.url and not (args.token or os.environ.get("MODELGATE_TOKEN")):
        parser.error("--url needs --token (or MODELGATE_TOKEN)")
    return args


def database_url(admin_url: str, name: str, driver: str = "psycopg") -> str:
    _scheme, _, rest = admin_url.partition("://")
    base = rest.rsplit("/", 1)[0]
    prefix = "postgresql" if not driver else f"postgresql+{driver}"
    return f"{prefix}://{base}/{name}"


def recreate_database(admin_url: str, name: str) -> None:
    conninfo = bench_reference.libpq_conninfo(admin_url)
    for sql in (f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'):
        subprocess.run(
            ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql],
            check=True,
            capture_output=True,
            text=True,
        )


def machine_info(pg_conninfo: str | None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg": loadavg(),
    }
    try:
        with open("/proc/meminfo") as handle:
            total_kib = int(handle.readline().split()[1])
        info["memory_gib"] = round(total_kib / 1024 / 1024, 1)
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if pg_conninfo:
        done = subprocess.run(
            ["psql", "-Atq", "-d", pg_conninfo, "-c", "SHOW server_version"],
            capture_output=True,
            text=True,
            check=False,
        )
        info["postgresql"] = done.stdout.strip() or None
    return info


REQUEST_PHASES = (
    ("create_version", "versions"),
    ("promote", "versions (2 transitions each)"),
    ("read", "reads"),
    ("list_100", "pages"),
)
PHASE_NAMES = tuple(phase for phase, _ in REQUEST_PHASES)


@dataclass
class Side:
    """One server under test: how to drive it, what measures it, where results go."""

    target: Any
    monitor: Monitor
    section: dict[str, Any]


async def run_interleaved(
    sides: list[Side], concurrency: int, phases: Sequence[str] = PHASE_NAMES
) -> None:
    """Each phase on every server in turn, the order alternating from phase to phase, so
    that a ratio compares measurements minutes apart, not a whole run apart (the
    machine's other load drifts)."""
    clients = [side.target.client(concurrency) for side in sides]
    try:
        for side, client in zip(sides, clients, strict=True):
            await side.target.prepare(client, concurrency)
        pairs = list(zip(sides, clients, strict=True))
        chosen = [(phase, unit) for phase, unit in REQUEST_PHASES if phase in phases]
        for i, (phase, unit) in enumerate(chosen):
            for side, client in pairs if i % 2 == 0 else reversed(pairs):
                result = await run_phase(
                    phase, client, side.target.ops(phase), concurrency, side.monitor, unit=unit
                )
                result["loadavg"] = loadavg()
                side.section["phases"].append(result)
    finally:
        for client in clients:
            await client.aclose()


class Run:
    """One benchmark run: the services it started, and its result."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.scale = SCALES[args.scale]
        self.out = Path(args.out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.logs = self.out / "logs"
        self.run_id = secrets.token_hex(3)
        self.services: list[Service] = []
        self.moto: Service | None = None
        self.server: Service | None = None
        self.mlflow: Service | None = None
        # Beside another run's database (--db-name), MLflow's gets a name of its own too.
        self.mlflow_db = MLFLOW_DB_NAME if args.db_name == DB_NAME else f"{args.db_name}_mlflow"
        self.url = args.url
        self.token = args.token or os.environ.get("MODELGATE_TOKEN") or ""
        self.db_url: str | None = args.db_url
        self.s3_endpoint: str | None = args.s3_endpoint
        self.bucket: str = args.bucket
        self.result: dict[str, Any] = {
            "run_id": self.run_id,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "scale": self.scale.name,
            "concurrency": args.levels,
            "argv": sys.argv[1:],
        }

    # services ----------------------------------------------------------------------

    def needs_s3(self) -> bool:
        wants_upload = "upload" not in self.args.skipped or "boto3" not in self.args.skipped
        return (
            self.url is None
            or self.args.compare_mlflow
            or (wants_upload and self.s3_endpoint is None)
        )

    def start_moto(self) -> None:
        port = free_port()
        self.moto = start_service(
            "moto",
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env={**os.environ, **AWS_ENV},
            log_dir=self.logs,
            ready_url=f"http://127.0.0.1:{port}/moto-api/",
        )
        self.services.append(self.moto)
        self.s3_endpoint = f"http://127.0.0.1:{port}"
        import boto3

        client = boto3.client("s3", endpoint_url=self.s3_endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=self.bucket)
        log(f"moto S3 server at {self.s3_endpoint}, bucket {self.bucket}")

    def start_modelgate(self) -> None:
        recreate_database(self.args.pg_url, self.args.db_name)
        self.db_url = database_url(self.args.pg_url, self.args.db_name)
        self.token = "mgt_bench-" + secrets.token_hex(16)
        env = {
            **os.environ,
            **AWS_ENV,
            "MODELGATE_DATABASE_URL": self.db_url,
            "MODELGATE_ARTIFACT_STORE": f"s3://{self.bucket}/artifacts",
            "MODELGATE_S3_ENDPOINT_URL": self.s3_endpoint or "",
            "MODELGATE_S3_REGION": "us-east-1",
            "MODELGATE_BOOTSTRAP_ADMIN_TOKEN": self.token,
            "MODELGATE_LOG_LEVEL": "WARNING",
        }
        for item in self.args.server_env:
            key, _, value = item.partition("=")
            env[key] = value
        modelgate = str(VENV_BIN / "modelgate")
        subprocess.run(
            [modelgate, "db", "upgrade"], env=env, check=True, capture_output=True, cwd=ROOT
        )
        port = free_port()
        self.server = start_service(
            "modelgate",
            [modelgate, "serve", "--workers", str(self.args.workers), "--port", str(port),
             "--log-level", "warning"],
            env=env, log_dir=self.logs, ready_url=f"http://127.0.0.1:{port}/readyz", cwd=str(ROOT),
        )  # fmt: skip
        self.services.append(self.server)
        self.url = f"http://127.0.0.1:{port}"
        # gunicorn answers as soon as one worker is up; wait for all of them.
        deadline = time.monotonic() + 60
        while len(descendants(self.server.pid)) < self.args.workers + (self.args.workers > 1):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        time.sleep(1.0)
        if not self.server.alive():
            raise RuntimeError(f"modelgate serve exited:\n{self.server.log_tail()}")
        log(f"modelgate serve --workers {self.args.workers} at {self.url} (db {self.args.db_name})")

    def monitor_for(self, server_pid: int | None, db_name: str | None) -> Monitor:
        groups = []
        if server_pid is not None:
            groups.append(Group("server", lambda: descendants(server_pid)))
        if db_name is not None:
            fragment = f" {db_name} "
            groups.append(Group("db", lambda: pids_with_cmdline(fragment)))
        if self.moto is not None:
            moto_pid = self.moto.pid
            groups.append(Group("s3", lambda: descendants(moto_pid)))
        monitor = Monitor(groups)
        monitor.start()
        return monitor

    # parts -------------------------------------------------------------------------

    def run_requests(self) -> None:
        """The request phases of Modelgate (and MLflow), interleaved phase by phase."""
        args = self.args
        server_pid = self.server.pid if self.server else args.server_pid
        db_name = args.db_name if self.server else None
        section: dict[str, Any] = {"url": self.url, "workers": args.workers, "phases": []}
        self.result["modelgate"] = section
        section["keepalive_ms"] = {
            path: asyncio.run(
                keepalive_probe(self.url or "", path, {"Authorization": f"Bearer {self.token}"})
            )
            for path in ("/healthz", "/api/v1/models?limit=1")
        }
        if "modelgate" in args.skipped:
            return
        sides: list[Side] = [
            Side(
                bench_modelgate.Target(
                    url=self.url or "", token=self.token, scale=self.scale, run_id=self.run_id
                ),
                self.monitor_for(server_pid, db_name),
                section,
            )
        ]
        if self.mlflow is not None:
            mlflow_section = self.result["mlflow"]
            mlflow_section["keepalive_ms"] = {
                path: asyncio.run(keepalive_probe(self.mlflow.url, path))
                for path in ("/health", "/api/2.0/mlflow/registered-models/search?max_results=1")
            }
            sides.append(
                Side(
                    bench_mlflow.Target(
                        url=self.mlflow.url,
                        scale=self.scale,
                        run_id=self.run_id,
                        bucket=self.bucket,
                    ),
                    self.monitor_for(self.mlflow.pid, self.mlflow_db),
                    mlflow_section,
                )
            )
        profiler = self.start_profiler(server_pid) if args.profile else None
        try:
            for c in args.levels:
                log(f"request phases at concurrency {c}: {', '.join(s.target.name for s in sides)}")
                asyncio.run(run_interleaved(sides, c, args.phases))
        finally:
            if profiler is not None:
                self.stop_profiler(profiler)
            for side in sides:
                side.monitor.stop()

    def run_serving(self) -> None:
        """The serving phase (scripts/bench_serving.py), MLflow's alias read beside it."""
        if "serving" in self.args.skipped:
            return
        server_pid = self.server.pid if self.server else self.args.server_pid
        monitor = self.monitor_for(server_pid, self.args.db_name if self.server else None)
        mlflow_monitor = (
            self.monitor_for(self.mlflow.pid, self.mlflow_db) if self.mlflow is not None else None
        )
        try:
            self.result["serving"] = bench_serving.run_phase(
                url=self.url or "", token=self.token, run_id=self.run_id,
                scale=bench_serving.SERVING_SCALES[self.scale.name], monitor=monitor,
                mlflow_url=self.mlflow.url if self.mlflow is not None else None,
                mlflow_monitor=mlflow_monitor, bucket=self.bucket,
            )  # fmt: skip
        finally:
            monitor.stop()
            if mlflow_monitor is not None:
                mlflow_monitor.stop()

    def run_rollout(self) -> None:
        """The rollout phase (scripts/bench_rollout.py): abort latency to N routers."""
        if "rollout" in self.args.skipped:
            return
        server_pid = self.server.pid if self.server else self.args.server_pid
        monitor = self.monitor_for(server_pid, self.args.db_name if self.server else None)
        try:
            self.result["rollout"] = bench_rollout.run_phase(
                url=self.url or "", token=self.token, run_id=self.run_id,
                scale=bench_rollout.ROLLOUT_SCALES[self.scale.name], monitor=monitor,
            )  # fmt: skip
        finally:
            monitor.stop()

    def run_upload(self) -> None:
        if "upload" in self.args.skipped:
            return
        server_pid = self.server.pid if self.server else self.args.server_pid
        monitor = self.monitor_for(server_pid, self.args.db_name if self.server else None)
        artifact = GeneratedArtifact(self.scale.upload_mib * MIB)
        log(f"modelgate: {self.scale.upload_mib} MiB artifact upload")
        try:
            self.result["modelgate"]["upload"] = asyncio.run(
                bench_modelgate.run_upload(
                    url=self.url or "",
                    token=self.token,
                    artifact=artifact,
                    run_id=self.run_id,
                    monitor=monitor,
                )
            )
        finally:
            monitor.stop()

    def start_profiler(self, server_pid: int | None) -> list[subprocess.Popen[bytes]]:
        py_spy = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
        if server_pid is None or not Path(py_spy).exists():
            log("--profile: py-spy or the server's pid is missing; not profiling")
            return []
        workers = [p for p in descendants(server_pid) if p != server_pid] or [server_pid]
        procs = []
        for pid in workers:
            out = self.out / f"profile-{self.run_id}-{pid}"
            procs.append(
                subprocess.Popen(
                    [
                        py_spy,
                        "record",
                        "--pid",
                        str(pid),
                        "--rate",
                        "200",
                        "--format",
                        "raw",
                        "--output",
                        f"{out}.txt",
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        log(f"py-spy recording workers {workers} into {self.out}/profile-{self.run_id}-*.txt")
        return procs

    def stop_profiler(self, procs: list[subprocess.Popen[bytes]]) -> None:
        for proc in procs:
            proc.send_signal(2)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()

    def run_references(self) -> None:
        args = self.args
        if "pgbench" not in args.skipped:
            if self.db_url is None:
                self.result["pgbench"] = {"skipped": "no database (give --db-url with --url)"}
            else:
                log(f"pgbench: {self.scale.pgbench_seconds} s per concurrency level")
                self.result["pgbench"] = bench_reference.run_pgbench(
                    db_url=self.db_url,
                    concurrency_levels=args.levels,
                    seconds=self.scale.pgbench_seconds,
                    models=self.scale.models,
                    work_dir=self.out,
                )
        if "boto3" not in args.skipped:
            if self.s3_endpoint is None:
                self.result["boto3"] = []
                log("boto3 reference skipped: no S3 endpoint (give --s3-endpoint with --url)")
            else:
                log(f"boto3: direct upload of {self.scale.upload_mib} MiB")
                self.result["boto3"] = bench_reference.run_boto3_upload(
                    endpoint_url=self.s3_endpoint,
                    bucket=self.bucket,
                    artifact=GeneratedArtifact(self.scale.upload_mib * MIB),
                    part_size=8 * MIB,
                )

    def run_scale(self) -> None:
        if "scale" in self.args.skipped:
            return
        if self.db_url is None:
            self.result["scale_test"] = {"skipped": "no database (give --db-url with --url)"}
            return
        log(f"scale: {self.scale.seed_small:,} then {self.scale.seed_large:,} versions")
        server_pid = self.server.pid if self.server else self.args.server_pid
        monitor = self.monitor_for(server_pid, self.args.db_name if self.server else None)
        try:
            self.result["scale_test"] = asyncio.run(
                bench_scale.run_scale_test(
                    url=self.url or "",
                    token=self.token,
                    db_url=self.db_url,
                    run_id=self.run_id,
                    scale=self.scale,
                    concurrency_levels=self.args.levels,
                    monitor=monitor,
                )
            )
        finally:
            monitor.stop()

    def start_mlflow(self) -> None:
        if not self.args.compare_mlflow:
            return
        # The repository's .venv-mlflow (scripts/setup-mlflow) when it is there.
        prepared = ROOT / ".venv-mlflow"
        venv = prepared if (prepared / "bin" / "mlflow").exists() else self.out / "mlflow-venv"
        log(f"mlflow: preparing {venv}")
        mlflow, version = bench_mlflow.ensure_venv(venv, self.logs / "mlflow-install.log")
        if mlflow is None:
            log(f"MLflow is not available, continuing without it: {version}")
            self.result["mlflow"] = {"skipped": version}
            return
        self.mlflow_db = (
            MLFLOW_DB_NAME if self.args.db_name == DB_NAME else f"{self.args.db_name}_mlflow"
        )
        recreate_database(self.args.pg_url, self.mlflow_db)
        port = free_port()
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which MLflow does not bring.
        db_url = database_url(self.args.pg_url, self.mlflow_db, driver="psycopg2")
        self.mlflow = start_service(
            "mlflow",
            bench_mlflow.server_argv(
                mlflow, db_url=db_url, bucket=self.bucket, port=port, workers=self.args.workers
            ),
            env=bench_mlflow.server_env(self.s3_endpoint or ""),
            log_dir=self.logs,
            ready_url=f"http://127.0.0.1:{port}/health",
            timeout=300,
            cwd=str(self.out),
        )
        self.mlflow.url = f"http://127.0.0.1:{port}"
        self.services.append(self.mlflow)
        time.sleep(2.0)
        log(f"mlflow {version} server --workers {self.args.workers} at {self.mlflow.url}")
        self.result["mlflow"] = {"version": version, "workers": self.args.workers, "phases": []}

    def stop_mlflow(self) -> None:
        if self.mlflow is not None:
            self.mlflow.stop()

    # the whole run -----------------------------------------------------------------

    def wait_for_idle(self) -> None:
        cpus = os.cpu_count() or 1
        deadline = time.monotonic() + self.args.wait_idle * 60
        while loadavg() >= cpus / 2 and time.monotonic() < deadline:
            log(f"waiting for an idle machine: load {loadavg():.1f} on {cpus} CPUs")
            time.sleep(15)
        if loadavg() >= cpus:
            log(f"the machine is busy (load {loadavg():.1f} on {cpus} CPUs): figures will be noisy")

    def execute(self) -> dict[str, Any]:
        self.wait_for_idle()
        pg_conninfo = bench_reference.libpq_conninfo(self.args.pg_url)
        self.result["machine"] = machine_info(pg_conninfo)
        timings: dict[str, float] = {}
        self.result["timings_s"] = timings

        def timed(name: str, step: Any) -> None:
            started = time.perf_counter()
            try:
                step()
            finally:
                timings[name] = round(time.perf_counter() - started, 1)

        try:
            if self.needs_s3():
                timed("start_s3", self.start_moto)
            if self.url is None:
                timed("start_modelgate", self.start_modelgate)
            timed("start_mlflow", self.start_mlflow)
            timed("requests", self.run_requests)
            timed("serving", self.run_serving)
            # MLflow's part is over: free its CPU and memory for the rest.
            self.stop_mlflow()
            timed("rollout", self.run_rollout)
            timed("upload", self.run_upload)
            timed("references", self.run_references)
            timed("scale_test", self.run_scale)
        finally:
            stop_all(reversed(self.services))
        self.result["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        return self.result

    def write(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.out / f"bench-{stamp}-{self.run_id}.json"
        text = json.dumps(self.result, indent=1, default=str)
        path.write_text(text)
        (self.out / "latest.json").write_text(text)
        chart = self.chart(path)
        if chart:
            log(f"chart: {chart}")
        return path

    def chart(self, path: Path) -> Path | None:
        script = ROOT / "scripts" / "bench_chart.py"
        candidates = [Path(sys.executable), self.out / "mlflow-venv" / "bin" / "python"]
        for python in candidates:
            if not python.exists():
                continue
            probe = subprocess.run(
                [str(python), "-c", "import matplotlib"], capture_output=True, check=False
            )
            if probe.returncode != 0:
                continue
            png = path.with_suffix(".png")
            done = subprocess.run(
                [str(python), str(script), str(path), str(png)],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode == 0:
                return png
            log(f"chart failed: {done.stderr[-500:]}")
            return None
        log("no matplotlib in this venv or the MLflow venv: no chart")
        return None


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Stop the servers it started on Ctrl-C and on TERM alike, also when run in the
    # background (where a non-interactive shell leaves SIGINT ignored).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    for key, value in AWS_ENV.items():
        # moto accepts any credentials; boto3 in this process needs some.
        os.environ.setdefault(key, value)
    run = Run(args)
    try:
        result = run.execute()
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except Exception as exc:
        # Keep what was measured before the failure.
        run.result["error"] = f"{type(exc).__name__}: {exc}"
        log(f"failed: {run.result['error']}; partial result: {run.write()}")
        raise
    path = run.write()
    sys.stdout.write(render(result) + "\n")
    log(f"result: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
