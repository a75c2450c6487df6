"""The rollout phase of scripts/bench (issue 17): how fast an automatic abort reaches a fleet.

Run by ``scripts/bench`` (the ``rollout`` part) against the Modelgate it started
(``modelgate serve --workers 2``: two server processes, each with its rollout driver). A
canary of version 2 at 50 % runs against version 1 with an error-rate analysis; N routers
(asyncio long polls, ``wait`` 30 s, as the Python client's Router follows the plan) watch
the model's serving plan; a feeder posts observation batches in which the canary errs
twice as often as the incumbent, one batch at a time, each followed by the look it wakes.
It measures:

- **abort latency**: from the answer to the decisive batch (the one after which the
  look aborted the rollout) to each router holding a plan with the incumbent at 100 %
  (p50, p99, max; every router accounted for);
- **server CPU per observation batch** (and per 1,000 observations): between each
  batch's request and its answer, and over the whole feeding (the looks, and the
  feeder's reads of the rollout while it waits for each look, included).

Standalone: ``.venv/bin/python scripts/bench_rollout.py [--scale small|full]`` starts two
uvicorn processes on a fresh PostgreSQL database and prints the JSON section.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_procs import (
    Monitor,
    bench_arguments,
    loadavg,
    two_servers,
    usage_between,
)
from bench_serving import _summary

API = "/api/v1"


@dataclass(frozen=True)
class RolloutScale:
    routers: int
    batch: int
    """Observations per batch."""
    max_batches: int
    error_rates: tuple[float, float] = (0.02, 0.04)
    """Incumbent, canary: the canary errs twice as often."""
    wait_s: float = 30.0


ROLLOUT_SCALES = {
    "full": RolloutScale(routers=50, batch=250, max_batches=200),
    "small": RolloutScale(routers=5, batch=250, max_batches=200),
}


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] rollout: {message}\n")
    sys.stderr.flush()


def setup(url: str, token: str, model: str) -> int:
    """Version 1 in production, version 2 a candidate, a canary of 2 at 50 % (no hold
    ends it: only the analysis does); returns the rollout's id."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url + API, headers=headers, timeout=60) as http:
        http.post("/models", json={"name": model}).raise_for_status()
        http.put(f"/models/{model}/policy", json={
            "staging": {"rules": [], "approvals_required": 0, "auto_promote": True},
            "production": {"rules": [], "approvals_required": 0, "auto_promote": True,
                           "require_staging": False},
        }).raise_for_status()  # fmt: skip
        for number in (1, 2):
            made = http.post(f"/models/{model}/versions", json={})
            made.raise_for_status()
            assert made.json()["version"] == number
        answer = http.post(
            f"/models/{model}/promotions", json={"version": 1, "target": "production"}
        )
        answer.raise_for_status()
        if answer.json()["status"] != "applied":
            raise RuntimeError(f"promotion of {model} v1 not applied: {answer.text}")
        started = http.post(f"/models/{model}/rollouts", json={
            "version": 2, "strategy": "canary", "reason": "bench: abort latency",
            "steps": [{"weight": 50, "hold": {"min_observations": 10**9}}],
            # A look a minute, as in production: the abort comes from the early look a
            # batch wakes (a critical metric is judged on every batch, decision 0022).
            "analysis": {"metrics": [{"name": "errors", "kind": "error_rate", "critical": True}],
                         "interval_seconds": 60},
        })  # fmt: skip
        started.raise_for_status()
        rollout_id: int = started.json()["id"]
        return rollout_id


def batch_of(
    rng: np.random.Generator, n: int, rates: tuple[float, float], prefix: str
) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    picks = rng.random(n) < 0.5
    draws = rng.random(n)
    rows = []
    for i in range(n):
        version = 2 if picks[i] else 1
        rows.append({
            "request_key": f"{prefix}-{i}", "version": version, "time": now,
            "error": bool(draws[i] < rates[version - 1]),
            "latency_ms": round(float(20 + draws[i] * 5), 3),
        })  # fmt: skip
    return {"observations": rows}


def incumbent_alone(plan: dict[str, Any]) -> bool:
    return [(r["version"], r["weight"]) for r in plan["routes"]] == [(1, 100.0)]


async def measure(
    *, urls: list[str], token: str, model: str, rollout_id: int, scale: RolloutScale,
    monitor: Monitor,
) -> dict[str, Any]:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    n = scale.routers
    limits = httpx.Limits(max_connections=n + 4, max_keepalive_connections=n + 4)
    timeout = httpx.Timeout(scale.wait_s + 30, connect=30)
    path = f"/models/{model}/serving"
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(
                base_url=url + API, headers=headers, timeout=timeout, limits=limits))
            for url in urls
        ]  # fmt: skip
        http = clients[0]
        start = (await http.get(path)).json()["revision"]
        seen: dict[int, float] = {}
        seen_wall: dict[int, float] = {}
        parked: set[int] = set()
        all_parked = asyncio.Event()
        everyone = asyncio.Event()
        failures: list[str] = []

        async def router(i: int) -> None:
            after = start
            client = clients[i % len(clients)]
            while i not in seen:
                parked.add(i)
                if len(parked) == n:
                    all_parked.set()
                try:
                    response = await client.get(path, params={"after": after, "wait": scale.wait_s})
                except httpx.HTTPError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(0.5)
                    continue
                if response.status_code == 304:
                    continue
                if response.status_code != 200:
                    failures.append(f"{response.status_code}: {response.text[:200]}")
                    await asyncio.sleep(0.5)
                    continue
                plan = response.json()
                after = plan["revision"]
                if incumbent_alone(plan):
                    seen[i] = time.monotonic()
                    seen_wall[i] = time.time()
                    if len(seen) == n:
                        everyone.set()

        tasks = [asyncio.create_task(router(i)) for i in range(n)]
        rng = np.random.default_rng(17)
        answered: list[float] = []
        answered_wall: list[float] = []
        decisive: int | None = None
        ingest_cpu = 0.0  # server CPU between each batch's request and its answer
        rollout: dict[str, Any] = {}
        try:
            await all_parked.wait()
            await asyncio.sleep(1.0)  # the last long polls reach a server
            before = monitor.snapshot()
            for b in range(scale.max_batches):
                body = batch_of(rng, scale.batch, scale.error_rates, f"bench-{b}")
                looks = (await http.get(f"/rollouts/{rollout_id}")).json()["look_count"]
                posting = monitor.snapshot()
                response = await http.post(f"/models/{model}/observations", json=body)
                answered.append(time.monotonic())
                answered_wall.append(time.time())
                ingest_cpu += usage_between(posting, monitor.snapshot())["server_cpu_s"]
                response.raise_for_status()
                # The early look this batch wakes: recorded only when it aborts, so wait a
                # little over one tick (its rate limit per process) before the next batch.
                for _ in range(150):
                    rollout = (await http.get(f"/rollouts/{rollout_id}")).json()
                    if rollout["state"] != "running" or rollout["look_count"] > looks:
                        break
                    await asyncio.sleep(0.01)
                if rollout["state"] == "aborted":
                    decisive = b
                    break
            usage = usage_between(before, monitor.snapshot())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(everyone.wait(), timeout=30)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    batches = len(answered)
    delays = (
        [(t - answered[decisive]) * 1000 for t in seen.values()] if decisive is not None else []
    )
    # Where the time goes (wall clock, one machine): the look that aborted (its decision
    # time) after the decisive answer, then the plan's way to the routers.
    look_ms: float | None = None
    fanout: list[float] = []
    if decisive is not None and rollout.get("ended_at"):
        ended = datetime.fromisoformat(rollout["ended_at"]).timestamp()
        look_ms = round((ended - answered_wall[decisive]) * 1000, 1)
        fanout = [(t - ended) * 1000 for t in seen_wall.values()]
    return {
        "routers": n,
        "batch_observations": scale.batch,
        "error_rates": {"incumbent": scale.error_rates[0], "canary": scale.error_rates[1]},
        "batches": batches,
        "aborted": rollout.get("state") == "aborted",
        "abort_reason": rollout.get("reason"),
        "decisive_batch": decisive,
        "routers_with_incumbent_alone": len(seen),
        "abort_latency_ms": _summary(delays),
        "abort_look_after_answer_ms": look_ms,
        "plan_to_routers_after_abort_ms": _summary(fanout),
        "server_cpu_ms_per_batch": round(ingest_cpu / batches * 1000, 2),
        "server_cpu_ms_per_1000_observations": round(
            ingest_cpu / (batches * scale.batch) * 1_000_000, 2
        ),
        "server_cpu_ms_per_batch_with_looks": round(usage["server_cpu_s"] / batches * 1000, 2),
        "db_cpu_ms_per_batch": (
            round(usage["db_cpu_s"] / batches * 1000, 2) if "db_cpu_s" in usage else None
        ),
        "router_errors": len(failures),
        "router_error_samples": failures[:5],
    }


def run_phase(
    *, url: str, token: str, run_id: str, scale: RolloutScale, monitor: Monitor,
    watch_urls: list[str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The whole rollout phase; a dict for the benchmark's JSON result."""
    model = f"bench-rollout-{run_id}"
    rollout_id = setup(url, token, model)
    log(f"{scale.routers} routers, batches of {scale.batch}, canary errs "
        f"{scale.error_rates[1]:.0%} vs {scale.error_rates[0]:.0%}")  # fmt: skip
    result = asyncio.run(
        measure(
            urls=watch_urls or [url],
            token=token,
            model=model,
            rollout_id=rollout_id,
            scale=scale,
            monitor=monitor,
        )
    )
    result["model"] = model
    result["loadavg"] = loadavg()
    return result


def main() -> int:
    parser = bench_arguments(ROLLOUT_SCALES, __doc__)
    parser.add_argument(
        "--port-base", type=int, help="Ports of the two servers: this one and the next."
    )
    parser.add_argument(
        "--tick", type=float, help="The servers' MODELGATE_ROLLOUT_TICK_SECONDS (default 1)."
    )
    args = parser.parse_args()
    if args.port_base:
        import bench_procs

        ports = iter(range(args.port_base, args.port_base + 2))
        bench_procs.free_port = lambda: next(ports)
    extra = {"MODELGATE_ROLLOUT_TICK_SECONDS": str(args.tick)} if args.tick else None
    with two_servers(args.pg_url, "rollout", extra) as (services, token, monitor):
        # Batches go to the first process; routers watch both (the second learns of the
        # abort by NOTIFY), and either process's driver may take the look.
        result = run_phase(url=services[0].url, token=token, run_id=os.urandom(3).hex(),
                           scale=ROLLOUT_SCALES[args.scale], monitor=monitor,
                           watch_urls=[s.url for s in services])  # fmt: skip
        result["rollout_tick_seconds"] = args.tick or 1.0
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
