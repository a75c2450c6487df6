"""The serving phase of scripts/bench (issue 16): what a serving fleet costs the registry.

Run by ``scripts/bench`` (the ``serving`` part) against the Modelgate it started
(``modelgate serve --workers 2``: two server processes) and, with ``--compare-mlflow``,
the MLflow server of the same run. It measures:

- **server CPU per request**, sequential requests on one kept-alive connection, in
  alternating blocks so that both servers see the same machine: Modelgate's serving
  plan read in full (200) and conditionally (``If-None-Match``, 304), Modelgate's
  version by alias (``GET .../versions/@champion``), and MLflow's
  ``GET /registered-models/alias`` (get-model-version-by-alias);
- **watcher wake-up**: N long-poll watchers (asyncio, one process, one connection each,
  ``wait`` 30 s as the router uses) spread over the server's processes; after a
  rollback (then alias moves), the time from the change's answer to each watcher
  seeing the new revision (p50, p99, max), every watcher accounted for;
- **idle CPU** of the server processes (and of PostgreSQL) while the watchers wait.

Standalone: ``.venv/bin/python scripts/bench_serving.py [--scale small|full]`` starts
its own S3-less Modelgate (local artifact directory, two uvicorn processes) on a fresh
PostgreSQL database and prints the JSON section.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_procs import (
    Monitor,
    bench_arguments,
    cpu_seconds,
    loadavg,
    two_servers,
    usage_between,
)

API = "/api/v1"
MLFLOW_API = "/api/2.0/mlflow"
ALIAS = "champion"


@dataclass(frozen=True)
class ServingScale:
    watchers: int
    idle_s: float
    requests: int
    """Requests per kind for the CPU figures (split over ``blocks``)."""
    blocks: int
    rounds: int
    """Serving changes whose wake-up is measured (a rollback, then alias moves)."""
    wait_s: float = 60.0


SERVING_SCALES = {
    "full": ServingScale(watchers=1000, idle_s=60.0, requests=3000, blocks=6, rounds=3),
    "small": ServingScale(watchers=40, idle_s=2.0, requests=120, blocks=2, rounds=2),
}


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] serving: {message}\n")
    sys.stderr.flush()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in [0, 1])."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None, "min": None}
    return {
        "p50": round(statistics.median(values), 1),
        "p99": round(percentile(values, 0.99), 1),
        "max": round(max(values), 1),
        "min": round(min(values), 1),
    }


# Setting up -----------------------------------------------------------------------------


def setup_modelgate(url: str, token: str, model: str) -> dict[str, Any]:
    """A model with two versions with artifacts, promoted in turn (v2 serves, v1 is
    archived), and the alias ``champion`` on v2."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url + API, headers=headers, timeout=60) as http:
        http.post("/models", json={"name": model}).raise_for_status()
        http.put(f"/models/{model}/policy", json={
            "staging": {"rules": [], "approvals_required": 0, "auto_promote": True},
            "production": {"rules": [], "approvals_required": 0, "auto_promote": True,
                           "require_staging": False},
        }).raise_for_status()  # fmt: skip
        for i in range(2):
            number = http.post(f"/models/{model}/versions", json={}).json()["version"]
            data = f"bench serving artifact {model} {i}".encode()
            http.put(
                f"/models/{model}/versions/{number}/artifact", content=data,
                headers={"Content-Type": "application/octet-stream",
                         "X-Artifact-SHA256": hashlib.sha256(data).hexdigest()},
            ).raise_for_status()  # fmt: skip
            promotion = {"version": number, "target": "production"}
            answer = http.post(f"/models/{model}/promotions", json=promotion)
            answer.raise_for_status()
            if answer.json()["status"] != "applied":
                raise RuntimeError(f"promotion of {model} v{number} not applied: {answer.text}")
        http.put(f"/models/{model}/aliases/{ALIAS}", json={"version": 2}).raise_for_status()
        plan = http.get(f"/models/{model}/serving")
        plan.raise_for_status()
        return {"revision": plan.json()["revision"], "etag": plan.headers["etag"]}


def setup_mlflow(url: str, model: str, bucket: str) -> None:
    """A registered model with one version and the alias ``champion`` on it."""
    with httpx.Client(base_url=url.rstrip("/") + MLFLOW_API, timeout=60) as http:
        http.post("/registered-models/create", json={"name": model}).raise_for_status()
        http.post(
            "/model-versions/create",
            json={"name": model, "source": f"s3://{bucket}/mlflow/{model}/1"},
        ).raise_for_status()
        http.post(
            "/registered-models/alias", json={"name": model, "alias": ALIAS, "version": "1"}
        ).raise_for_status()


# Server CPU per request -----------------------------------------------------------------


@dataclass
class Kind:
    """One kind of request whose server CPU is measured."""

    name: str
    base_url: str
    path: str
    headers: dict[str, str]
    params: dict[str, str]
    expect: int
    monitor: Monitor
    requests: int = 0
    errors: int = 0
    server_cpu_s: float = 0.0
    db_cpu_s: float = 0.0
    seconds: float = 0.0
    error_samples: list[str] = field(default_factory=list)

    def failed(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what)

    def result(self) -> dict[str, Any]:
        per = 1000 / self.requests if self.requests else 0.0
        return {
            "requests": self.requests,
            "errors": self.errors,
            "rps": round(self.requests / self.seconds, 1) if self.seconds else None,
            "server_cpu_ms_per_request": round(self.server_cpu_s * per, 4),
            "db_cpu_ms_per_request": round(self.db_cpu_s * per, 4),
            "error_samples": self.error_samples,
        }


def warm_up(kind: Kind, connections: int = 8, each: int = 5) -> None:
    """Requests on several connections, not counted: every server process (each takes
    its share of new connections) has loaded what the kind needs before it is measured
    (MLflow's workers open their store on their first request)."""
    for _ in range(connections):
        with httpx.Client(base_url=kind.base_url, headers=kind.headers, timeout=120) as http:
            for _ in range(each):
                with contextlib.suppress(httpx.HTTPError):
                    http.get(kind.path, params=kind.params)


def run_block(kind: Kind, count: int) -> None:
    """``count`` sequential requests on one kept-alive connection; the server's (and its
    database's) CPU over them is added to the kind's account."""
    with httpx.Client(base_url=kind.base_url, headers=kind.headers, timeout=60) as http:
        http.get(kind.path, params=kind.params)  # the connection, opened outside the count
        before = kind.monitor.snapshot()
        started = time.perf_counter()
        for _ in range(count):
            try:
                response = http.get(kind.path, params=kind.params)
                if response.status_code != kind.expect:
                    kind.failed(f"{response.status_code}: {response.text[:200]}")
            except httpx.HTTPError as exc:
                kind.failed(f"{type(exc).__name__}: {exc}")
        kind.seconds += time.perf_counter() - started
        used = usage_between(before, kind.monitor.snapshot())
    kind.requests += count
    kind.server_cpu_s += used.get("server_cpu_s", 0.0)
    kind.db_cpu_s += used.get("db_cpu_s", 0.0)


def cpu_per_request(kinds: list[Kind], scale: ServingScale) -> dict[str, Any]:
    """Each kind in ``scale.blocks`` blocks, the order reversed from block to block."""
    per_block = max(1, scale.requests // scale.blocks)
    for kind in kinds:
        warm_up(kind)
    for block in range(scale.blocks):
        for kind in kinds if block % 2 == 0 else reversed(kinds):
            run_block(kind, per_block)
    return {kind.name: kind.result() for kind in kinds}


# Watchers ---------------------------------------------------------------------------------
#
# The watchers run in a process of their own (``--watchers-child``): plain asyncio on raw
# streams, one kept-alive HTTP/1.1 connection per watcher, no HTTP library between the
# socket and the clock, so that 1,000 of them cost the generator little CPU. It reports
# its own CPU and how late its event loop ran, so a reader can see it was not starved.


class RawConnection:
    """One HTTP/1.1 keep-alive connection: a request written whole, a response read by
    Content-Length (the server sends no chunked answers to these requests)."""

    def __init__(self, host: str, port: int, auth: bytes) -> None:
        self.host, self.port, self.auth = host, port, auth
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(
        self, method: str, target: str, body: bytes | None = None
    ) -> tuple[int, dict[bytes, bytes], bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None
        assert self.writer is not None
        head = f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n".encode()
        head += self.auth
        if body is not None:
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        self.writer.write(head + b"\r\n" + (body or b""))
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
            lines = raw.split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                name, sep, value = line.partition(b":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0"))
            content = await self.reader.readexactly(length) if length else b""
        except BaseException:
            self.close()
            raise
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, headers, content


async def _watchers_child(config: dict[str, Any]) -> dict[str, Any]:
    """The watchers and the changes, in this (child) process; talks to its parent by
    lines: ``parked`` (all watchers hold a long poll) on stdout, then waits for ``go`` on
    stdin (the parent measured the servers' idle CPU meanwhile), then prints its result."""
    from urllib.parse import urlsplit

    n: int = config["watchers"]
    wait_s: float = config["wait_s"]
    model: str = config["model"]
    rounds_wanted: int = config["rounds"]
    auth = f"Authorization: Bearer {config['token']}\r\n".encode()
    servers = [(u.hostname or "127.0.0.1", u.port or 80) for u in map(urlsplit, config["urls"])]
    path = f"{API}/models/{model}/serving"
    loop = asyncio.get_running_loop()
    cpu0 = time.process_time()

    control = RawConnection(*servers[0], auth)
    status, headers, _ = await control.request("GET", path)
    if status != 200:
        raise RuntimeError(f"plan read: {status}")
    start = int(headers[b"etag"].strip(b'"'))
    target = {"revision": start}
    seen: dict[int, dict[int, float]] = {}
    parked: set[int] = set()
    all_parked = asyncio.Event()
    everyone = asyncio.Event()
    failures: list[str] = []
    renewals = [0]
    lag = {"max_ms": 0.0}

    async def ticker() -> None:
        # How late the loop wakes a 50 ms sleep: a starved generator shows here.
        while True:
            before = loop.time()
            await asyncio.sleep(0.05)
            lag["max_ms"] = max(lag["max_ms"], (loop.time() - before - 0.05) * 1000)

    async def watcher(i: int) -> None:
        after = start
        conn = RawConnection(*servers[i % len(servers)], auth)
        while True:
            parked.add(i)
            if len(parked) == n:
                all_parked.set()
            try:
                status, headers, _ = await conn.request(
                    "GET", f"{path}?after={after}&wait={wait_s:g}"
                )
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)
                continue
            if status == 304:
                renewals[0] += 1
                continue
            if status != 200:
                failures.append(f"{status}")
                await asyncio.sleep(0.5)
                continue
            now = loop.time()
            after = int(headers[b"etag"].strip(b'"'))
            wanted = target["revision"]
            if after >= wanted:
                round_seen = seen.setdefault(wanted, {})
                if i not in round_seen:
                    round_seen[i] = now
                    if len(round_seen) == n:
                        everyone.set()

    tick = asyncio.create_task(ticker())
    tasks = [asyncio.create_task(watcher(i)) for i in range(n)]
    try:
        await all_parked.wait()
        await asyncio.sleep(min(5.0, 1.0 + n / 500))  # the last requests reach a server
        lag["max_ms"] = 0.0
        renewals[0] = 0
        cpu_idle0, wall_idle0 = time.process_time(), loop.time()
        sys.stdout.write("parked\n")
        sys.stdout.flush()
        await loop.run_in_executor(None, sys.stdin.readline)  # "go"
        idle = {
            "generator_cpu_s": round(time.process_time() - cpu_idle0, 3),
            "wall_s": round(loop.time() - wall_idle0, 1),
            "renewals": renewals[0],
            "max_loop_lag_ms": round(lag["max_ms"], 1),
        }
        lag["max_ms"] = 0.0
        cpu_rounds0 = time.process_time()
        rounds: list[dict[str, Any]] = []
        delays_all: list[float] = []
        for r in range(rounds_wanted):
            everyone.clear()
            target["revision"] += 1
            if r == 0:
                change = "rollback"
                request = ("POST", f"{API}/models/{model}/rollback",
                           b'{"reason": "bench: serving wake-up"}')  # fmt: skip
            else:
                version = 1 if r % 2 else 2
                change = f"alias {ALIAS} -> v{version}"
                move = {"version": version, "reason": "bench"}
                request = ("PUT", f"{API}/models/{model}/aliases/{ALIAS}",
                           json.dumps(move).encode())  # fmt: skip
            control.close()  # idle longer than the server keeps a connection: a new one
            status, _, content = await control.request(*request)
            answered = loop.time()
            if status >= 300:
                raise RuntimeError(f"{change}: {status} {content[:200]!r}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(everyone.wait(), timeout=30)
            got = seen.get(target["revision"], {})
            delays = [(t - answered) * 1000 for t in got.values()]
            delays_all += delays
            rounds.append({"change": change, "revision": target["revision"],
                           "woken": len(got), "wake_ms": _summary(delays)})  # fmt: skip
            await asyncio.sleep(1.0)  # every watcher parks again
        rounds_cpu = time.process_time() - cpu_rounds0
    finally:
        tick.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(tick, *tasks, return_exceptions=True)
        control.close()
    return {
        "rounds": rounds,
        "wake_ms": _summary(delays_all),
        "woken_all_rounds": all(r["woken"] == n for r in rounds),
        "idle": idle,
        "rounds_generator_cpu_s": round(rounds_cpu, 3),
        "rounds_max_loop_lag_ms": round(lag["max_ms"], 1),
        "generator_cpu_s_total": round(time.process_time() - cpu0, 3),
        "watcher_errors": len(failures),
        "watcher_error_samples": failures[:5],
    }


def watch_and_change(
    *, urls: list[str], token: str, model: str, scale: ServingScale, monitor: Monitor
) -> dict[str, Any]:
    """Park ``scale.watchers`` long polls (watcher i on ``urls[i % len(urls)]``) from a
    generator process of their own, measure the servers' idle CPU, then make
    ``scale.rounds`` serving changes (through the first URL) and time each watcher's
    wake-up from the change's answer."""
    import subprocess

    # The servers' CPU with no watcher at all (their background work: the listener, the
    # rollout driver, the monitoring checker), over a third of the idle time.
    before = monitor.snapshot()
    t0 = time.monotonic()
    time.sleep(scale.idle_s / 3)
    baseline = usage_between(before, monitor.snapshot())
    baseline_wall = time.monotonic() - t0
    config = {"urls": urls, "token": token, "model": model, "watchers": scale.watchers,
              "wait_s": scale.wait_s, "rounds": scale.rounds}  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--watchers-child"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        child.stdin.write(json.dumps(config) + "\n")
        child.stdin.flush()
        line = child.stdout.readline()
        if line.strip() != "parked":
            raise RuntimeError(f"the watcher generator failed: {line!r}")
        before = monitor.snapshot()
        t0 = time.monotonic()
        gen0 = cpu_seconds(child.pid)
        time.sleep(scale.idle_s)
        idle = usage_between(before, monitor.snapshot())
        idle_wall = time.monotonic() - t0
        gen_idle = cpu_seconds(child.pid) - gen0
        child.stdin.write("go\n")
        child.stdin.flush()
        out = json.loads(child.stdout.readline())
    finally:
        with contextlib.suppress(OSError):
            child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return {
        "watchers": scale.watchers,
        "wait_s": scale.wait_s,
        "generator": "plain asyncio streams, one process, one connection per watcher",
        **out,
        "idle_seconds": round(idle_wall, 1),
        "idle_server_cpu_percent_of_a_core": round(idle["server_cpu_s"] / idle_wall * 100, 3),
        "no_watchers_server_cpu_percent_of_a_core": round(
            baseline["server_cpu_s"] / baseline_wall * 100, 3
        ),
        "idle_db_cpu_percent_of_a_core": (
            round(idle["db_cpu_s"] / idle_wall * 100, 3) if "db_cpu_s" in idle else None
        ),
        "idle_generator_cpu_percent_of_a_core": round(gen_idle / idle_wall * 100, 3),
    }


def watchers_child_main() -> int:
    config = json.loads(sys.stdin.readline())
    result = asyncio.run(_watchers_child(config))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


# The phase ------------------------------------------------------------------------------


def run_phase(
    *, url: str, token: str, run_id: str, scale: ServingScale, monitor: Monitor,
    watch_urls: list[str] | None = None, mlflow_url: str | None = None,
    mlflow_monitor: Monitor | None = None,
    bucket: str = "modelgate-bench",
) -> dict[str, Any]:  # fmt: skip
    """The whole serving phase; a dict for the benchmark's JSON result."""
    model = f"bench-serving-{run_id}"
    state = setup_modelgate(url, token, model)
    auth = {"Authorization": f"Bearer {token}"}
    base = url + API
    kinds = [
        Kind("plan_304", base, f"/models/{model}/serving",
             {**auth, "If-None-Match": state["etag"]}, {}, 304, monitor),
        Kind("plan_200", base, f"/models/{model}/serving", auth, {}, 200, monitor),
        Kind("version_by_alias", base, f"/models/{model}/versions/@{ALIAS}", auth, {}, 200,
             monitor),
    ]  # fmt: skip
    if mlflow_url is not None and mlflow_monitor is not None:
        setup_mlflow(mlflow_url, model, bucket)
        kinds.append(
            Kind("mlflow_get_version_by_alias", mlflow_url.rstrip("/") + MLFLOW_API,
                 "/registered-models/alias", {}, {"name": model, "alias": ALIAS}, 200,
                 mlflow_monitor)
        )  # fmt: skip
    log(f"server CPU per request: {', '.join(k.name for k in kinds)}, "
        f"{scale.requests} each")  # fmt: skip
    result: dict[str, Any] = {"model": model, "cpu_per_request": cpu_per_request(kinds, scale)}
    log(f"{scale.watchers} watchers: {scale.idle_s:.0f} s idle, {scale.rounds} changes")
    result["watch"] = watch_and_change(
        urls=watch_urls or [url], token=token, model=model, scale=scale, monitor=monitor
    )
    result["loadavg"] = loadavg()
    cpu = result["cpu_per_request"]
    mlflow = cpu.get("mlflow_get_version_by_alias")
    if mlflow is not None:
        ml = mlflow["server_cpu_ms_per_request"]
        result["ratios"] = {
            f"mlflow_alias_cpu_over_{name}": (
                round(ml / cpu[name]["server_cpu_ms_per_request"], 2)
                if cpu[name]["server_cpu_ms_per_request"] else None
            )
            for name in ("plan_304", "plan_200", "version_by_alias")
        }  # fmt: skip
    return result


# Standalone -------------------------------------------------------------------------------


def main() -> int:
    parser = bench_arguments(SERVING_SCALES, __doc__)
    args = parser.parse_args()
    with two_servers(args.pg_url, "serving") as (services, token, monitor):
        # Requests and changes go to the first server; watchers to both (the second
        # learns of changes by NOTIFY).
        result = run_phase(url=services[0].url, token=token, run_id=os.urandom(3).hex(),
                           scale=SERVING_SCALES[args.scale], monitor=monitor,
                           watch_urls=[s.url for s in services])  # fmt: skip
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--watchers-child"]:
        raise SystemExit(watchers_child_main())
    raise SystemExit(main())
