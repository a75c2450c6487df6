"""Profile the write paths of the API in one process: version creation and promotion.

Builds a fresh PostgreSQL database (or a SQLite file), runs the app in this process and
drives it with plain ASGI calls (no HTTP, no client library), with the threadpool hops
run inline so that one thread does all the work. For each path it reports the CPU per
request (``time.process_time``, server side only) and the SQL statements per request,
grouped by verb and table; ``--profile`` adds cProfile's top functions.

    .venv/bin/python scripts/profile_paths.py --versions 300 --promotions 100
    .venv/bin/python scripts/profile_paths.py --profile promote --top 40
    .venv/bin/python scripts/profile_paths.py --database sqlite

The requests are those of ``scripts/bench`` (bench_modelgate.py): versions with lineage,
three metrics and two tags; promotions to staging then production under a policy with
a threshold and a no-regression rule, every one applied.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_modelgate import POLICY  # the benchmark's own policy: the same gates run
from bench_workload import DATASET

from app.db import migrate
from app.main import create_app
from app.settings import Settings

TOKEN = "mgt_profile-admin-token-0123456789abcdef"
SECRET_KEY = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgoM="


def version_body(i: int) -> dict[str, Any]:
    accuracy = 0.5 + (i * 7919 % 4900) / 10000
    return {
        "description": "benchmark version",
        "lineage": {
            "code_commit": f"{i:040x}",
            "code_repository": "https://git.example.com/ml/fraud",
            "data_version": f"transactions@2026-11-{1 + i % 28:02d}",
            "feature_pipeline_version": f"features-v{1 + i % 20}",
            "environment": "sha256:" + f"{i:064x}",
            "hyperparameters": {"max_depth": 6, "eta": 0.3, "n_estimators": 200 + i},
            "seed": i,
            "training_run_id": f"run-{i}",
            "ci_run_url": f"https://ci.example.com/runs/{100000 + i}",
        },
        "metrics": [
            {"name": name, "value": value, "dataset": DATASET, "sample_count": 10000}
            for name, value in (
                ("accuracy", accuracy),
                ("f1", accuracy - 0.03),
                ("rmse", 1.0 - accuracy),
            )
        ],
        "tags": {"team": "risk", "trigger": "nightly" if i % 3 else "manual"},
    }


async def _inline(func: Callable[..., Any], *args: Any, **_: Any) -> Any:
    return func(*args)


class Driver:
    """Plain ASGI calls to the app (its lifespan run by the caller)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        raw = b"" if body is None else json.dumps(body).encode()
        headers = [
            (b"host", b"modelgate.test"),
            (b"authorization", f"Bearer {TOKEN}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
        ]
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 1), "server": ("modelgate.test", 80),
        }  # fmt: skip
        sent = False
        status = 0
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        data = b"".join(chunks)
        return status, json.loads(data) if data else None

    async def ok(self, method: str, path: str, body: Any, expect: int) -> Any:
        status, answer = await self.call(method, path, body)
        if status != expect:
            raise RuntimeError(f"{method} {path}: {status} {answer}")
        return answer


def _kind(statement: str) -> str:
    words = statement.split(None, 3)
    verb = words[0].upper()
    if verb == "SELECT":
        found = re.search(r"\bFROM\s+(\w+)", statement)
        return f"select {found.group(1) if found else ''}"
    if verb == "INSERT" and len(words) > 2:
        return f"insert {words[2]}"
    if verb == "UPDATE" and len(words) > 1:
        return f"update {words[1]}"
    return verb.lower()


class Recorder:
    """Counts the statements sent on an engine while switched on."""

    def __init__(self, engine: Any) -> None:
        self.on = False
        self.counts: Counter[str] = Counter()
        self.last: list[str] = []
        event.listen(engine, "before_cursor_execute", self._seen)
        # COMMIT and ROLLBACK go through the DBAPI, not a cursor.
        event.listen(engine, "commit", lambda _conn: self._count("commit"))

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self.on:
            self.last.append(" ".join(statement.split())[:160])
        self._count(_kind(statement))

    def _count(self, kind: str) -> None:
        if self.on:
            self.counts[kind] += 1


@contextmanager
def database(kind: str, admin_url: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/profile.db"
            engine = create_engine(url)
            migrate.upgrade(engine)
            engine.dispose()
            yield url
        return
    name = f"modelgate_profile_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        engine = create_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


REPO = Path(__file__).resolve().parent.parent


def _package(filename: str) -> str:
    """The package a profiled function belongs to: ``sqlalchemy.orm``, ``app.audit``, ..."""
    if filename.startswith(("~", "<")):
        return "builtins"
    path = Path(filename)
    if "site-packages" in path.parts:
        rest = path.parts[path.parts.index("site-packages") + 1 :]
    elif path.is_relative_to(REPO):  # this checkout: app/..., scripts/...
        rest = path.relative_to(REPO).parts
    else:
        return "stdlib." + path.stem
    return ".".join(rest[:2]).removesuffix(".py")


def by_package(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own (``tottime``) CPU of the profiled functions summed by package, largest first."""
    totals: Counter[str] = Counter()
    for (filename, _, _), row in stats.stats.items():  # type: ignore[attr-defined]
        totals[_package(filename)] += row[2]
    grand = sum(totals.values()) or 1.0
    return [(package, own / grand) for package, own in totals.most_common(25)]


class Phase:
    """CPU, statements and (optionally) a profile of a run of requests."""

    def __init__(self, name: str, recorder: Recorder, profile: bool) -> None:
        self.name = name
        self.recorder = recorder
        self.profiler = cProfile.Profile(time.process_time) if profile else None
        self.requests = 0
        self.cpu = 0.0
        self.counts: Counter[str] = Counter()
        self.last: list[str] = []

    @contextmanager
    def measure(self) -> Iterator[None]:
        self.recorder.counts = self.counts
        self.recorder.last = []
        self.recorder.on = True
        if self.profiler:
            self.profiler.enable()
        start = time.process_time()
        try:
            yield
        finally:
            self.cpu += time.process_time() - start
            if self.profiler:
                self.profiler.disable()
            self.recorder.on = False
            self.last = self.recorder.last

    def report(self, top: int, show: bool) -> str:
        n = max(self.requests, 1)
        lines = [f"{self.name}: {self.requests} requests, {1000 * self.cpu / n:.2f} ms CPU each"]
        total = sum(self.counts.values())
        lines.append(f"  statements per request: {total / n:.2f}")
        for kind, count in sorted(self.counts.items(), key=lambda kv: -kv[1]):
            lines.append(f"    {count / n:6.2f}  {kind}")
        if show:
            lines.append("  the statements of the last request:")
            lines.extend(f"    {statement}" for statement in self.last)
        if self.profiler:
            out = io.StringIO()
            stats = pstats.Stats(self.profiler, stream=out)
            stats.sort_stats("cumulative").print_stats(top)
            stats.sort_stats("tottime").print_stats(top)
            lines.append(out.getvalue())
            lines.append("  own CPU by package (share of the profiled total):")
            lines.extend(f"    {share:6.1%}  {package}" for package, share in by_package(stats))
        return "\n".join(lines)


async def run(args: argparse.Namespace, url: str, store: str) -> list[str]:
    settings = Settings(
        database_url=url, artifact_store=store, bootstrap_admin_token=TOKEN,
        secret_key=SECRET_KEY, auto_migrate=False, log_level="WARNING", db_pool_size=2,
    )  # fmt: skip
    app = create_app(settings)
    driver = Driver(app)
    async with app.router.lifespan_context(app):
        recorder = Recorder(app.state.engine)
        create = Phase("create_version", recorder, args.profile in ("create", "all"))
        promote = Phase("promote", recorder, args.profile in ("promote", "all"))
        models = [f"m{i}" for i in range(args.models)]
        for name in ["warm", *models]:
            await driver.ok("POST", "/api/v1/models", {
                "name": name, "owner": "bench", "primary_metric": "accuracy",
                "primary_dataset": DATASET,
            }, 201)  # fmt: skip
            await driver.ok("PUT", f"/api/v1/models/{name}/policy", POLICY, 200)
        for i in range(args.warm_up):  # the first requests load what later ones reuse
            await driver.ok("POST", "/api/v1/models/warm/versions", version_body(i), 201)
        for number in range(1, min(args.warm_up, 5) + 1):
            for target in ("staging", "production"):
                await driver.ok("POST", "/api/v1/models/warm/promotions",
                                {"version": number, "target": target}, 201)  # fmt: skip
        for i in range(args.versions):
            path = f"/api/v1/models/{models[i % len(models)]}/versions"
            body = version_body(i)
            with create.measure():
                await driver.ok("POST", path, body, 201)
            create.requests += 1
        per_model = args.versions // len(models)
        picks = [(m, n) for n in range(1, per_model + 1) for m in models][: args.promotions]
        for model, number in picks:
            for target in ("staging", "production"):
                with promote.measure():
                    answer = await driver.ok(
                        "POST", f"/api/v1/models/{model}/promotions",
                        {"version": number, "target": target}, 201,
                    )  # fmt: skip
                promote.requests += 1
                if answer["status"] != "applied":
                    raise RuntimeError(f"{model} v{number} to {target}: {answer['status']}")
    return [create.report(args.top, args.statements), promote.report(args.top, args.statements)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "MODELGATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
        help="Maintenance database of the PostgreSQL server (a database is created there).",
    )
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--promotions", type=int, default=50, help="Versions promoted (x2).")
    parser.add_argument("--warm-up", type=int, default=20)
    parser.add_argument("--profile", choices=("none", "create", "promote", "all"), default="none")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--statements", action="store_true", help="Print the SQL of each phase's last request."
    )
    args = parser.parse_args(argv)
    # One thread does everything: the threadpool hops run inline, so that cProfile sees
    # the handlers and process time is the server's work alone.
    anyio.to_thread.run_sync = _inline  # type: ignore[assignment]
    with database(args.database, args.pg_url) as url, tempfile.TemporaryDirectory() as store:
        for block in asyncio.run(run(args, url, store)):
            print(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
