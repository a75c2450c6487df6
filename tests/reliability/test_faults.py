"""Faults injected into real processes, and what must hold through each.

- The S3 server SIGKILLed while a 200 MiB artifact streams through a server process: the
  client gets a 503 problem (or the connection ends), the version has no artifact and no
  ``artifact.uploaded`` event; a new S3 server on the same port, and the retry succeeds.
- PostgreSQL (a private one) stopped and started under a load of reads and writes: 503
  problems during the outage, each within a few seconds; the same server process
  recovers on its own; no half-applied transition.
- A Modelgate process SIGKILLed while dozens of promotions and approvals are in flight:
  after a restart, one production version per model, every request applied whole or not
  at all, answers already given are durable, and the audit chain verifies.
- The local artifact directory replaced by a file, and a full filesystem: a 507 problem
  naming the reason, nothing recorded, no leftover temp file; the store works again once
  the fault is gone.

Each test prints what it injected and what it saw.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from sqlalchemy import create_engine, text

from app.db import migrate
from app.storage.factory import open_store
from tests.reliability.procs import LoadLoop, start_moto_on, start_server_limited
from tests.support import private_pg
from tests.support.api import ADMIN_TOKEN, API, assert_problem, audit_events, auth, version_payload
from tests.support.invariants import check_invariants
from tests.support.pg import migrated_pg_database
from tests.support.s3server import start_moto_server
from tests.support.servers import ServerProcess, running_servers, start_server

MiB = 1024 * 1024
KILL_AFTER = 64 * MiB
"""The client has sent this much of the 200 MiB artifact when the S3 server is killed."""


# Shared pieces -----------------------------------------------------------------------------


@pytest.fixture
def own_database() -> Iterator[str]:
    """A migrated database of this test's own on the shared PostgreSQL server."""
    with migrated_pg_database("modelgate_faults") as url:
        yield url


def base_settings(database_url: str, artifact_store: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "ARTIFACT_STORE": artifact_store,
        "BOOTSTRAP_ADMIN_TOKEN": ADMIN_TOKEN,
        "AUTO_MIGRATE": "false" if database_url.startswith("postgresql") else "true",
        "LOG_LEVEL": "WARNING",
        "DB_POOL_SIZE": "10",
        "DB_POOL_OVERFLOW": "5",
    }


def report(capsys: pytest.CaptureFixture[str], text_: str) -> None:
    with capsys.disabled():
        print(f"\n[faults] {text_}")  # noqa: T201


def admin_client(base_url: str, timeout: float = 120.0) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers=auth(ADMIN_TOKEN), timeout=timeout)


def post_ok(http: httpx.Client, path: str, body: dict[str, Any], **kwargs: Any) -> Any:
    response = http.post(API + path, json=body, **kwargs)
    assert response.status_code in (200, 201), response.text
    return response.json()


def put_policy(http: httpx.Client, model: str, *, approvals: int, auto: bool = True) -> None:
    policy = {
        "staging": {"rules": [], "approvals_required": 0, "auto_promote": True},
        "production": {
            "rules": [{"kind": "artifact_intact"}],
            "approvals_required": approvals,
            "auto_promote": auto,
            "require_staging": False,
        },
    }
    response = http.put(f"{API}/models/{model}/policy", json=policy)
    assert response.status_code == 200, response.text


def new_version(http: httpx.Client, model: str, headers: dict[str, str] | None = None) -> int:
    """A candidate with an artifact of its own."""
    headers = headers or {}
    created = post_ok(http, f"/models/{model}/versions", version_payload(), headers=headers)
    number = int(created["version"])
    data = f"{model}/{number}/{uuid.uuid4()}".encode() * 64
    response = http.put(
        f"{API}/models/{model}/versions/{number}/artifact",
        content=data,
        headers={**headers, "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text
    return number


def artifact_events(http: httpx.Client, model: str) -> list[dict[str, Any]]:
    return audit_events(http, model=model, action="artifact.uploaded")


def artifact_status(http: httpx.Client, model: str, version: int) -> str:
    response = http.get(f"{API}/models/{model}/versions/{version}")
    assert response.status_code == 200, response.text
    status: str = response.json()["artifact"]["status"]
    return status


# 1. S3 killed mid-upload --------------------------------------------------------------------


class GeneratedBody:
    """A large request body made on the fly (1 MiB chunks), hashed as it is sent, that
    runs ``on_threshold`` once ``threshold`` bytes have gone out."""

    def __init__(self, size: int, *, threshold: int | None = None, on_threshold: Any = None):
        self.size = size
        self.threshold = threshold
        self.on_threshold = on_threshold
        self.sent = 0
        self.fired_at: float | None = None
        self.hasher = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        block = hashlib.sha256(b"modelgate").digest() * (MiB // 32)
        index = 0
        while self.sent < self.size:
            chunk = index.to_bytes(8, "big") + block[8 : min(MiB, self.size - self.sent)]
            index += 1
            if self.threshold is not None and self.fired_at is None and self.sent >= self.threshold:
                self.on_threshold()
                self.fired_at = time.monotonic()
            self.hasher.update(chunk)
            self.sent += len(chunk)
            yield chunk


@pytest.mark.postgres_only
@pytest.mark.timeout(180)
def test_s3_server_killed_mid_upload(own_database: str, capsys: pytest.CaptureFixture[str]) -> None:
    moto = start_moto_server()
    moto_again = None
    bucket = "mg-faults-upload"
    boto3.client("s3", endpoint_url=moto.endpoint_url, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    settings = {
        **base_settings(own_database, f"s3://{bucket}/artifacts"),
        "S3_ENDPOINT_URL": moto.endpoint_url,
        "S3_REGION": "us-east-1",
        "UPLOAD_PART_SIZE_MIB": "8",
    }
    model = "upload-fault"
    try:
        with running_servers(settings, count=1) as (server,), admin_client(server.base_url) as http:
            post_ok(http, "/models", {"name": model})
            version = int(post_ok(http, f"/models/{model}/versions", version_payload())["version"])
            path = f"{API}/models/{model}/versions/{version}/artifact"
            headers = {"Content-Type": "application/octet-stream"}

            body = GeneratedBody(200 * MiB, threshold=KILL_AFTER, on_threshold=moto.kill)
            started = time.monotonic()
            response: httpx.Response | None
            try:
                response = http.put(path, content=iter(body), headers=headers)
                outcome = f"answered {response.status_code}"
            except httpx.TransportError as exc:
                response, outcome = None, f"connection ended ({type(exc).__name__})"
            answered = time.monotonic()
            assert body.fired_at is not None, "the S3 server was not killed"
            if response is not None:
                problem = assert_problem(response, 503, "storage-unavailable")
                outcome += f" {problem['code']}: {problem['detail'][:120]}"

            # Nothing recorded: no artifact on the version, no upload event.
            assert artifact_status(http, model, version) == "missing"
            assert artifact_events(http, model) == []
            ready = http.get("/readyz")
            assert_problem(ready, 503, "not-ready")

            # A new, empty S3 server on the same port; the bucket made again; retry.
            moto_again = start_moto_on(moto.port)
            boto3.client(
                "s3", endpoint_url=moto_again.endpoint_url, region_name="us-east-1"
            ).create_bucket(Bucket=bucket)
            retry_body = GeneratedBody(200 * MiB)
            retried = time.monotonic()
            retry = http.put(path, content=iter(retry_body), headers=headers)
            assert retry.status_code == 200, retry.text
            artifact = retry.json()["artifact"]
            assert artifact["status"] == "verified"
            assert artifact["sha256"] == retry_body.hasher.hexdigest()
            assert artifact["size"] == 200 * MiB
            assert len(artifact_events(http, model)) == 1
            assert http.get("/readyz").status_code == 200
            store = open_store(
                f"s3://{bucket}/artifacts",
                s3_endpoint_url=moto_again.endpoint_url,
                s3_region="us-east-1",
            )
            invariants = check_invariants(
                own_database, base_url=server.base_url, admin_token=ADMIN_TOKEN, store=store
            )
            report(
                capsys,
                f"S3 SIGKILLed after {KILL_AFTER // MiB} MiB of a 200 MiB upload "
                f"({body.sent // MiB} MiB sent in all): {outcome}, "
                f"{answered - (body.fired_at or started):.1f} s after the kill; version "
                f"artifact missing, 0 artifact.uploaded events. New S3 server on port "
                f"{moto.port}: retry of 200 MiB answered 200 in "
                f"{time.monotonic() - retried:.1f} s. "
                f"Invariants: {invariants.summary()}",
            )
    finally:
        moto.kill()
        if moto_again is not None:
            moto_again.stop()


# 2. PostgreSQL restarted under load ----------------------------------------------------------


@pytest.fixture
def private_postgres() -> Iterator[private_pg.PrivatePostgres]:
    reason = private_pg.available()
    if reason is not None:
        pytest.skip(f"no private PostgreSQL: {reason}")
    with private_pg.PrivatePostgres.create() as server:
        yield server


@pytest.mark.postgres_only
@pytest.mark.timeout(180)
def test_postgres_restarted_under_load(
    private_postgres: private_pg.PrivatePostgres, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = private_postgres.create_database("modelgate")
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    store_dir = tmp_path / "artifacts"
    model = "pg-restart"
    with running_servers(base_settings(url, str(store_dir)), count=1) as (server,):
        pid = server.process.pid
        with admin_client(server.base_url) as http:
            post_ok(http, "/models", {"name": model, "primary_metric": "accuracy"})
            put_policy(http, model, approvals=0)
            versions = [new_version(http, model) for _ in range(6)]
            for number in versions[:2]:
                body = {"version": number, "target": "production"}
                made = post_ok(http, f"/models/{model}/promotions", body)
                assert made["status"] == "applied", made

        def read_model(c: httpx.Client, _: Any) -> httpx.Response:
            return c.get(f"{API}/models/{model}")

        def read_production(c: httpx.Client, _: Any) -> httpx.Response:
            return c.get(f"{API}/models/{model}/stages/production")

        def list_versions(c: httpx.Client, _: Any) -> httpx.Response:
            return c.get(f"{API}/models/{model}/versions", params={"limit": 20})

        def create(c: httpx.Client, _: Any) -> httpx.Response:
            return c.post(f"{API}/models/{model}/versions", json=version_payload())

        def promote(c: httpx.Client, rng: Any) -> httpx.Response:
            body = {"version": rng.choice(versions), "target": "production"}
            return c.post(f"{API}/models/{model}/promotions", json=body)

        def rollback(c: httpx.Client, _: Any) -> httpx.Response:
            return c.post(f"{API}/models/{model}/rollback", json={"reason": "load"})

        operations = {
            "read model": read_model,
            "read production": read_production,
            "list versions": list_versions,
            "create version": create,
            "promote": promote,
            "rollback": rollback,
        }
        loop = LoadLoop(operations, server.base_url, auth(ADMIN_TOKEN), threads=6, timeout=30)
        cycles: list[dict[str, float]] = []
        with loop:
            time.sleep(3)
            # A clean restart (fast: sessions terminated, checkpoint), then a crash
            # (immediate: no checkpoint, crash recovery at start).
            for mode, outage_seconds in (("fast", 5.0), ("immediate", 4.0)):
                cycle: dict[str, float] = {"stopping": time.monotonic()}
                private_postgres.stop(mode)
                cycle["down"] = time.monotonic()
                time.sleep(outage_seconds / 2)
                ready = httpx.get(server.base_url + "/readyz", timeout=10)
                assert_problem(ready, 503, "not-ready")
                assert ready.json()["checks"]["database"].startswith("unavailable"), ready.text
                time.sleep(outage_seconds / 2)
                cycle["starting"] = time.monotonic()
                private_postgres.start()
                cycle["up"] = time.monotonic()
                deadline = cycle["up"] + 30
                while "recovered" not in cycle and time.monotonic() < deadline:
                    time.sleep(0.2)
                    recent = loop.between(cycle["up"], time.monotonic())
                    first = next((a.ended for a in recent if a.status == 200), None)
                    if first is not None:
                        cycle["recovered"] = first
                assert "recovered" in cycle, f"no success within 30 s of the {mode} restart"
                ready = httpx.get(server.base_url + "/readyz", timeout=10)
                assert ready.status_code == 200, ready.text
                time.sleep(3)
                cycle["end"] = time.monotonic()
                cycles.append(cycle)
        answers = loop.answers

        def summary(items: list[Any]) -> str:
            counts: dict[str, int] = {}
            for a in items:
                key = f"{a.status} {a.code}" if a.code else str(a.status)
                counts[key] = counts.get(key, 0) + 1
            return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))

        transport = [a for a in answers if a.status is None]
        assert not transport, transport[:5]
        five = [a for a in answers if a.status is not None and a.status >= 500]
        assert all(a.status == 503 and a.problem for a in five), [
            a for a in five if a.status != 503
        ][:5]
        assert all(a.code == "database-unavailable" for a in five), {a.code for a in five}
        refused = [a for a in answers if a.status is not None and 300 <= a.status < 500]
        assert all(a.problem and a.code for a in refused), [a for a in refused if not a.problem]
        slowest = max(a.seconds for a in answers)
        assert slowest < 8, f"a request took {slowest:.1f} s"
        lines = [f"before: {summary(loop.between(0, cycles[0]['stopping']))}"]
        for (mode, _), c in zip((("fast", 0), ("immediate", 0)), cycles, strict=True):
            outage = loop.between(c["down"], c["starting"])
            assert outage, f"no request was answered while PostgreSQL was down ({mode})"
            assert all(a.status == 503 for a in outage), summary(outage)
            after = loop.between(c["recovered"] + 0.5, c["end"])
            assert after, f"nothing answered after the {mode} restart"
            assert all(a.status is not None and a.status < 500 for a in after), summary(after)
            first_503 = min(
                (a.ended for a in loop.between(c["stopping"], c["end"]) if a.status == 503),
                default=c["stopping"],
            )
            lines.append(
                f"stop -m {mode} took {c['down'] - c['stopping']:.1f} s, first 503 "
                f"{first_503 - c['stopping']:.1f} s after the stop began; while down "
                f"({c['starting'] - c['down']:.1f} s): {summary(outage)}; start took "
                f"{c['up'] - c['starting']:.1f} s, first success {c['recovered'] - c['up']:.1f} s "
                f"after PostgreSQL was up; after: {summary(after)}"
            )
        assert server.process.poll() is None, "the server process died"
        assert server.process.pid == pid

        store = open_store(str(store_dir))
        invariants = check_invariants(
            url, base_url=server.base_url, admin_token=ADMIN_TOKEN, store=store
        )
        report(
            capsys,
            f"PostgreSQL restarted twice under {loop.threads} clients, {len(answers)} requests "
            f"in all, the same server process throughout (pid {pid}):\n  "
            + "\n  ".join(lines)
            + f"\n  slowest answer {slowest:.2f} s, no transport errors. "
            f"Invariants: {invariants.summary()}",
        )


# 3. A Modelgate process SIGKILLed mid-promotion ------------------------------------------


def make_token(http: httpx.Client, role: str) -> tuple[str, dict[str, str]]:
    name = f"{role}-{uuid.uuid4().hex[:8]}"
    token = post_ok(http, "/tokens", {"name": name, "role": role})["token"]
    return name, auth(token)


def promotion_rows(database_url: str, ids: list[int]) -> dict[int, str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, status FROM promotion_requests WHERE id = ANY(:ids)"), {"ids": ids}
            )
            return {int(r[0]): str(r[1]) for r in rows}
    finally:
        engine.dispose()


def open_transactions(database_url: str) -> tuple[int, int]:
    """(transactions open, of which waiting for a lock) of Modelgate on this database."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT count(*), count(*) FILTER (WHERE wait_event_type = 'Lock') "
                    "FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = 'modelgate' AND xact_start IS NOT NULL"
                )
            ).one()
            return int(row[0]), int(row[1])
    finally:
        engine.dispose()


@pytest.mark.postgres_only
@pytest.mark.timeout(180)
def test_modelgate_killed_mid_promotion(
    own_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dir = tmp_path / "artifacts"
    settings = base_settings(own_database, str(store_dir))
    auto, gated = "kill-auto", "kill-gated"
    server = start_server(settings)
    restarted: ServerProcess | None = None
    try:
        server.wait_ready()
        with admin_client(server.base_url) as http:
            _, submitter = make_token(http, "submitter")
            _, reviewer = make_token(http, "reviewer")
            _, operator = make_token(http, "operator")
            for name, approvals in ((auto, 0), (gated, 1)):
                post_ok(http, "/models", {"name": name})
                put_policy(http, name, approvals=approvals)
            with ThreadPoolExecutor(max_workers=4) as pool:
                auto_versions = list(
                    pool.map(lambda _: new_version(http, auto, submitter), range(30))
                )
                gated_versions = list(
                    pool.map(lambda _: new_version(http, gated, submitter), range(20))
                )
            body = {"version": auto_versions[0], "target": "production"}
            first = post_ok(http, f"/models/{auto}/promotions", body, headers=submitter)
            assert first["status"] == "applied", first
            pending = [
                post_ok(
                    http,
                    f"/models/{gated}/promotions",
                    {"version": v, "target": "production"},
                    headers=submitter,
                )["id"]
                for v in gated_versions
            ]
            opened = post_ok(http, f"/promotions/{pending[0]}/approve", {}, headers=reviewer)
            assert opened["status"] == "applied", opened

        # Every call at once, to the one server: promotions that apply at once, approvals
        # that apply, rollbacks; SIGKILL once a few have been answered.
        calls: list[tuple[str, str, dict[str, Any], dict[str, str]]] = []
        for i, version in enumerate(auto_versions[1:]):
            body = {"version": version, "target": "production"}
            calls.append(("promote", f"/models/{auto}/promotions", body, submitter))
            if i < len(pending) - 1:
                calls.append(("approve", f"/promotions/{pending[i + 1]}/approve", {}, reviewer))
            if i % 6 == 5:
                calls.append(
                    ("rollback", f"/models/{auto}/rollback", {"reason": "kill test"}, operator)
                )
        answered: list[tuple[str, httpx.Response]] = []
        lost: list[tuple[str, str]] = []
        lock = threading.Lock()
        enough = threading.Event()
        barrier = threading.Barrier(len(calls))

        def send(call: tuple[str, str, dict[str, Any], dict[str, str]]) -> None:
            kind, path, body, headers = call
            with httpx.Client(base_url=server.base_url, timeout=60) as c:
                barrier.wait()
                try:
                    response = c.post(API + path, json=body, headers=headers)
                except httpx.TransportError as exc:
                    with lock:
                        lost.append((kind, type(exc).__name__))
                    return
            with lock:
                answered.append((kind, response))
                if len(answered) >= 4:
                    enough.set()

        threads = [threading.Thread(target=send, args=(c,)) for c in calls]
        for thread in threads:
            thread.start()
        enough.wait(timeout=20)
        in_flight = open_transactions(own_database)
        killed_with = len(answered)
        server.kill()  # SIGKILL
        killed_at = time.monotonic()
        for thread in threads:
            thread.join(timeout=60)
        assert killed_with < len(calls), "everything was answered before the kill"
        assert lost, "no request was cut off by the kill"

        restarted = start_server(settings)
        restarted.wait_ready()
        back_after = time.monotonic() - killed_at
        with admin_client(restarted.base_url) as http:
            for name in (auto, gated):
                stage = http.get(f"{API}/models/{name}/stages/production").json()["items"]
                assert len(stage) == 1, (name, stage)
            # Answers already given are durable.
            promised = {}
            for kind, response in answered:
                assert response.status_code < 500, response.text
                if response.status_code in (200, 201) and kind != "rollback":
                    promised[int(response.json()["id"])] = response.json()["status"]
            stored = promotion_rows(own_database, list(promised))
            assert stored == promised, (stored, promised)
            # Locks held by the killed process's transactions are gone: the model moves.
            started = time.monotonic()
            extra = new_version(http, auto, submitter)
            body = {"version": extra, "target": "production"}
            moved = post_ok(http, f"/models/{auto}/promotions", body, headers=submitter)
            assert moved["status"] == "applied", moved
            unblocked = time.monotonic() - started
            store = open_store(str(store_dir))
            invariants = check_invariants(
                own_database, base_url=restarted.base_url, admin_token=ADMIN_TOKEN, store=store
            )
        kinds: dict[str, int] = {}
        for kind, response in answered:
            key = f"{kind} {response.status_code}"
            kinds[key] = kinds.get(key, 0) + 1
        report(
            capsys,
            f"Modelgate SIGKILLed with {len(calls)} promotions, approvals and rollbacks in "
            f"flight, after {killed_with} answers, with {in_flight[0]} transactions open "
            f"({in_flight[1]} waiting for the model lock): {len(answered)} answered "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(kinds.items()))}), {len(lost)} cut off. "
            f"Restarted and ready in {back_after:.1f} s; every answered promotion stored as "
            f"answered; a new promotion applied {unblocked:.2f} s after (no stale lock). "
            f"Invariants: {invariants.summary()}",
        )
    finally:
        server.kill()
        if restarted is not None:
            restarted.stop()


# 4. The local artifact directory unwritable or full ------------------------------------------


def _upload(http: httpx.Client, model: str, version: int, data: bytes) -> httpx.Response:
    return http.put(
        f"{API}/models/{model}/versions/{version}/artifact",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )


def _nothing_recorded(http: httpx.Client, model: str, version: int) -> None:
    assert artifact_status(http, model, version) == "missing"
    assert artifact_events(http, model) == []


@pytest.mark.timeout(120)
def test_artifact_directory_replaced_by_a_file(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "artifacts"
    model = "unwritable"
    with (
        running_servers(base_settings(database_url, str(root)), count=1) as (server,),
        admin_client(server.base_url) as http,
    ):
        post_ok(http, "/models", {"name": model})
        version = int(post_ok(http, f"/models/{model}/versions", version_payload())["version"])
        # As root, chmod does not stop writes: take the directory away and put a regular
        # file in its place while the server runs.
        shutil.rmtree(root)
        root.write_bytes(b"not a directory\n")
        response = _upload(http, model, version, os.urandom(256 * 1024))
        problem = assert_problem(response, 507, "storage-full")
        assert str(root) in problem["detail"], problem
        assert "not writable" in problem["detail"], problem
        _nothing_recorded(http, model, version)
        ready = http.get("/readyz")
        assert_problem(ready, 503, "not-ready")
        assert ready.json()["checks"]["artifact_store"].startswith("unavailable"), ready.json()

        # The directory comes back: the same server stores the artifact.
        root.unlink()
        retry = _upload(http, model, version, b"model bytes\n" * 1000)
        assert retry.status_code == 200, retry.text
        assert len(artifact_events(http, model)) == 1
        report(
            capsys,
            f"artifact directory replaced by a file: {response.status_code} "
            f"{problem['code']}: {problem['detail']}; nothing recorded; /readyz 503 "
            f"({ready.json()['checks']['artifact_store']}); directory back: upload 200",
        )


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "1m") -> Iterator[str]:
    """A tmpfs of ``size`` at ``path`` (needs root); yields how the disk is made full."""
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise OSError(result.stderr.strip() or "mount failed")
    try:
        yield f"a {size} tmpfs"
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.timeout(120)
def test_artifact_directory_full(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "small"
    model = "full-disk"
    with contextlib.ExitStack() as stack:
        try:
            how = stack.enter_context(small_filesystem(root))
            limit = None
        except OSError as exc:
            # No privilege to mount: every file the server writes is limited instead, and
            # the write past the limit fails with EFBIG, which the store reports as full.
            how, limit = f"RLIMIT_FSIZE of 2 MiB on the server process (mount: {exc})", 2 * MiB
        server = start_server_limited(base_settings(database_url, str(root)), max_file_bytes=limit)
        stack.callback(server.stop)
        server.wait_ready()
        http = stack.enter_context(admin_client(server.base_url))
        post_ok(http, "/models", {"name": model})
        version = int(post_ok(http, f"/models/{model}/versions", version_payload())["version"])
        response = _upload(http, model, version, os.urandom(3 * MiB))
        problem = assert_problem(response, 507, "storage-full")
        assert str(root) in problem["detail"], problem
        assert "is full" in problem["detail"], problem
        _nothing_recorded(http, model, version)
        leftovers = [p for p in root.rglob("*") if p.is_file()]
        assert leftovers == [], leftovers
        # Room for a small artifact: the same server stores it.
        retry = _upload(http, model, version, b"small model\n" * 1000)
        assert retry.status_code == 200, retry.text
        assert len(artifact_events(http, model)) == 1
        report(
            capsys,
            f"artifact directory full ({how}), 3 MiB upload: {response.status_code} "
            f"{problem['code']}: {problem['detail']}; nothing recorded, no temp file left; "
            "a 12 KB artifact then stored (200)",
        )
