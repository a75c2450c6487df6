"""The load generator's core: run a list of operations at a fixed concurrency, time every
HTTP request, and summarise a phase (throughput, latency percentiles, errors, CPU, RSS).

An operation is an async callable that makes one or more requests through a
:class:`Recorder`; ``concurrency`` tasks take operations from one shared queue, so
there are never more than ``concurrency`` requests in flight.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from bench_procs import Monitor, usage_between

MAX_ERROR_SAMPLES = 5


class OperationFailed(Exception):
    """An answer that had the expected status but the wrong content."""


@dataclass
class Recorder:
    client: httpx.AsyncClient
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(message[:500])

    async def request(
        self, method: str, url: str, *, expect: int | Sequence[int] = 200, **kwargs: Any
    ) -> httpx.Response | None:
        """Send one request and time it; a transport error or an unexpected status is
        counted as an error (its latency is still recorded) and returns None."""
        expected = (expect,) if isinstance(expect, int) else tuple(expect)
        started = time.perf_counter()
        try:
            response = await self.client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            self.latencies.append(time.perf_counter() - started)
            self.error(f"{method} {url}: {type(exc).__name__}: {exc}")
            return None
        self.latencies.append(time.perf_counter() - started)
        if response.status_code not in expected:
            self.error(f"{method} {url}: {response.status_code} {response.text[:300]}")
            return None
        return response


Operation = Callable[[Recorder], Awaitable[None]]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return math.nan
    position = (len(sorted_values) - 1) * q
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return sorted_values[low]
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def latency_summary(latencies: Sequence[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    ms = 1000.0
    return {
        "p50_ms": round(percentile(ordered, 0.50) * ms, 2),
        "p95_ms": round(percentile(ordered, 0.95) * ms, 2),
        "p99_ms": round(percentile(ordered, 0.99) * ms, 2),
        "max_ms": round((ordered[-1] if ordered else math.nan) * ms, 2),
        "mean_ms": round((sum(ordered) / len(ordered) if ordered else math.nan) * ms, 2),
    }


async def run_operations(
    client: httpx.AsyncClient, operations: Sequence[Operation], concurrency: int
) -> Recorder:
    recorder = Recorder(client)
    queue: asyncio.Queue[Operation] = asyncio.Queue()
    for op in operations:
        queue.put_nowait(op)

    async def worker() -> None:
        while True:
            try:
                op = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                await op(recorder)
            except OperationFailed as exc:
                recorder.error(str(exc))

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return recorder


async def keepalive_probe(
    base_url: str, path: str, headers: dict[str, str] | None = None, requests: int = 4
) -> list[float]:
    """Latencies (ms) of ``requests`` GETs on one kept-alive connection: a server that
    leaves TCP_NODELAY off answers the second and later ones about 40 ms late (the
    client's delayed ACK), see docs/decisions/0003-serving-processes.md."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    out = []
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits) as client:
        for _ in range(requests):
            started = time.perf_counter()
            await client.get(path)
            out.append(round((time.perf_counter() - started) * 1000, 2))
    return out


async def run_phase(
    name: str,
    client: httpx.AsyncClient,
    operations: Sequence[Operation],
    concurrency: int,
    monitor: Monitor | None,
    *,
    unit: str = "requests",
) -> dict[str, Any]:
    """Run one phase and return its summary (the rows of the table and the JSON)."""
    before = monitor.snapshot() if monitor else None
    if monitor:
        monitor.begin_peak()
    started = time.perf_counter()
    recorder = await run_operations(client, operations, concurrency)
    elapsed = time.perf_counter() - started
    result: dict[str, Any] = {
        "phase": name,
        "concurrency": concurrency,
        "operations": len(operations),
        "requests": len(recorder.latencies),
        "unit": unit,
        "errors": recorder.errors,
        "error_samples": recorder.error_samples,
        "seconds": round(elapsed, 3),
        "rps": round(len(recorder.latencies) / elapsed, 1) if elapsed > 0 else None,
        "ops_per_s": round(len(operations) / elapsed, 1) if elapsed > 0 else None,
        **latency_summary(recorder.latencies),
    }
    if monitor and before:
        after = monitor.snapshot()
        usage = usage_between(before, after)
        result["cpu"] = usage
        peaks = monitor.end_peak()
        result["rss"] = peaks
        server = usage.get("server_cpu_s")
        if server is not None and recorder.latencies:
            result["server_cpu_ms_per_request"] = round(server * 1000 / len(recorder.latencies), 2)
    return result
