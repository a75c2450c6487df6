"""Benchmark phase of the serving watch (issue 16), runnable on its own:

    .venv/bin/python scripts/bench_serving.py [--clients 1000] [--idle 60] [--conditional 2000]

Starts two server processes (uvicorn, one worker each) on a fresh PostgreSQL database
and a local artifact directory, parks ``--clients`` long-poll watchers (asyncio, one
process, spread over both servers), then measures:

- the time from a rollback's answer to each watcher seeing the new revision (p50, p99,
  max; negative: seen before the rollback's own answer arrived);
- the servers' CPU while the watchers idle for ``--idle`` seconds;
- the servers' CPU per conditional GET of the plan answered 304, beside a plain read
  of one version (``GET .../versions/N``) in the same run.

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_procs import Service, cpu_seconds, free_port, start_service, stop_all
from bench_run import database_url, recreate_database

TOKEN = "mgt_bench-serving-admin-token-0123456789"
API = "/api/v1"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def servers_cpu(services: list[Service]) -> float:
    return sum(cpu_seconds(s.pid) for s in services)


def start_servers(db_url: str, store: str, log_dir: Path) -> list[Service]:
    services = []
    for i in range(2):
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
        env.update({
            "MODELGATE_DATABASE_URL": db_url, "MODELGATE_ARTIFACT_STORE": store,
            "MODELGATE_BOOTSTRAP_ADMIN_TOKEN": TOKEN, "MODELGATE_AUTO_MIGRATE": "true",
            "MODELGATE_LOG_LEVEL": "WARNING", "MODELGATE_WEBHOOK_DISPATCHER_ENABLED": "false",
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
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


def setup_model(url: str) -> str:
    with httpx.Client(base_url=url + API, headers={"Authorization": f"Bearer {TOKEN}"},
                      timeout=60) as http:  # fmt: skip
        model = "bench-serving"
        http.post("/models", json={"name": model}).raise_for_status()
        http.put(f"/models/{model}/policy", json={
            "staging": {"rules": [], "approvals_required": 0, "auto_promote": True},
            "production": {"rules": [], "approvals_required": 0, "auto_promote": True,
                           "require_staging": False},
        }).raise_for_status()  # fmt: skip
        for i in range(2):
            number = http.post(f"/models/{model}/versions", json={}).json()["version"]
            data = f"artifact {i}".encode()
            import hashlib

            http.put(
                f"/models/{model}/versions/{number}/artifact", content=data,
                headers={"Content-Type": "application/octet-stream",
                         "X-Artifact-SHA256": hashlib.sha256(data).hexdigest()},
            ).raise_for_status()  # fmt: skip
            promotion = {"version": number, "target": "production"}
            http.post(f"/models/{model}/promotions", json=promotion).raise_for_status()
        return model


async def run(args: argparse.Namespace, services: list[Service], model: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    clients = [
        httpx.AsyncClient(base_url=s.url + API, headers=headers, timeout=120, limits=limits)
        for s in services
    ]
    path = f"/models/{model}/serving"
    start_revision = (await clients[0].get(path)).json()["revision"]
    seen: dict[int, float] = {}
    target: dict[str, int] = {"revision": start_revision + 1}
    stop = asyncio.Event()
    all_seen = asyncio.Event()

    async def watcher(i: int) -> None:
        client = clients[i % len(clients)]
        after = start_revision
        while not stop.is_set():
            try:
                response = await client.get(path, params={"after": after, "wait": args.wait})
            except httpx.HTTPError:
                await asyncio.sleep(0.5)
                continue
            if response.status_code == 200:
                after = response.json()["revision"]
                if after >= target["revision"] and i not in seen:
                    seen[i] = time.monotonic()
                    if len(seen) == args.clients:
                        all_seen.set()

    tasks = [asyncio.create_task(watcher(i)) for i in range(args.clients)]
    await asyncio.sleep(5)  # all parked
    cpu0, t0 = servers_cpu(services), time.monotonic()
    await asyncio.sleep(args.idle)
    idle_cpu = servers_cpu(services) - cpu0
    idle_wall = time.monotonic() - t0

    response = await clients[0].post(f"/models/{model}/rollback", json={"reason": "bench"})
    answered = time.monotonic()
    response.raise_for_status()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_seen.wait(), timeout=30)
    delays = [(seen[i] - answered) * 1000 for i in seen]
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for client in clients:
        await client.aclose()

    return {
        "clients": args.clients,
        "servers": len(services),
        "woken": len(delays),
        "wake_ms": {
            "p50": round(statistics.median(delays), 1) if delays else None,
            "p99": round(percentile(delays, 0.99), 1) if delays else None,
            "max": round(max(delays), 1) if delays else None,
            "min": round(min(delays), 1) if delays else None,
        },
        "idle_seconds": round(idle_wall, 1),
        "idle_cpu_percent_of_a_core": round(idle_cpu / idle_wall * 100, 2),
    }


def cpu_per_request(
    args: argparse.Namespace, services: list[Service], path: str, extra: dict[str, str],
    expect: int,
) -> float:  # fmt: skip
    """Server CPU milliseconds per sequential GET of ``path``."""
    headers = {"Authorization": f"Bearer {TOKEN}", **extra}
    with httpx.Client(base_url=services[0].url + API, headers=headers, timeout=60) as http:
        before = servers_cpu(services)
        for _ in range(args.conditional):
            response = http.get(path, headers=extra)
            assert response.status_code == expect, response.status_code
        return (servers_cpu(services) - before) / args.conditional * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--wait", type=float, default=30.0)
    parser.add_argument("--conditional", type=int, default=2000)
    admin = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    parser.add_argument("--pg-admin-url", default=admin)
    args = parser.parse_args()
    name = "modelgate_bench_serving"
    recreate_database(args.pg_admin_url, name)
    workdir = Path(tempfile.mkdtemp(prefix="modelgate-bench-serving-"))
    services = start_servers(database_url(args.pg_admin_url, name), str(workdir / "artifacts"),
                             workdir / "logs")  # fmt: skip
    try:
        model = setup_model(services[0].url)
        result = asyncio.run(run(args, services, model))
        with httpx.Client(base_url=services[0].url + API, timeout=60,
                          headers={"Authorization": f"Bearer {TOKEN}"}) as http:  # fmt: skip
            revision = http.get(f"/models/{model}/serving").json()["revision"]
        plan = f"/models/{model}/serving"
        result["conditional_get_304_cpu_ms"] = round(
            cpu_per_request(args, services, plan, {"If-None-Match": f'"{revision}"'}, 304), 3
        )
        result["version_read_cpu_ms"] = round(
            cpu_per_request(args, services, f"/models/{model}/versions/1", {}, 200), 3
        )
        result["requests_per_cpu_figure"] = args.conditional
    finally:
        stop_all(services)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
