"""The workload against Modelgate's REST API (/api/v1)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from bench_load import Operation, OperationFailed, Recorder, run_operations
from bench_procs import Monitor
from bench_workload import (
    DATASET,
    MIB,
    GeneratedArtifact,
    Scale,
    promoted_versions,
    read_mix,
    version_specs,
    warm_up_scale,
)

API = "/api/v1"

POLICY: dict[str, Any] = {
    "staging": {
        "rules": [{"kind": "threshold", "metric": "accuracy", "dataset": DATASET, "value": 0.5}],
        "approvals_required": 0,
        "auto_promote": True,
    },
    "production": {
        "rules": [
            {"kind": "threshold", "metric": "accuracy", "dataset": DATASET, "value": 0.5},
            {"kind": "no_regression", "metric": "accuracy", "dataset": DATASET, "delta": -1},
        ],
        "approvals_required": 0,
        "auto_promote": True,
        "require_staging": True,
    },
}


def client_for(url: str, token: str, concurrency: int, timeout: float = 60.0) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(
        base_url=url.rstrip("/") + API,
        headers={"Authorization": f"Bearer {token}"},
        limits=limits,
        timeout=timeout,
    )


async def setup_models(client: httpx.AsyncClient, names: list[str]) -> None:
    for name in names:
        body = {
            "name": name,
            "description": "benchmark model",
            "owner": "bench",
            "primary_metric": "accuracy",
            "primary_dataset": DATASET,
        }
        response = await client.post("/models", json=body)
        if response.status_code != 201:
            raise RuntimeError(f"creating model {name}: {response.status_code} {response.text}")
        response = await client.put(f"/models/{name}/policy", json=POLICY)
        if response.status_code != 200:
            raise RuntimeError(f"policy of {name}: {response.status_code} {response.text}")


def create_ops(scale: Scale, names: list[str], seed: int) -> list[Operation]:
    ops: list[Operation] = []
    for spec in version_specs(scale, seed):
        body = {
            "description": "benchmark version",
            "lineage": spec.lineage,
            "metrics": [
                {"name": k, "value": v, "dataset": DATASET, "sample_count": 10000}
                for k, v in spec.metrics.items()
            ],
            "tags": spec.tags,
        }
        url = f"/models/{names[spec.model_index]}/versions"

        async def op(rec: Recorder, url: str = url, body: dict[str, Any] = body) -> None:
            await rec.request("POST", url, json=body, expect=201)

        ops.append(op)
    return ops


def promote_ops(scale: Scale, names: list[str]) -> list[Operation]:
    ops: list[Operation] = []
    for model_index, number in promoted_versions(scale):
        url = f"/models/{names[model_index]}/promotions"

        async def op(rec: Recorder, url: str = url, number: int = number) -> None:
            for target in ("staging", "production"):
                response = await rec.request(
                    "POST", url, json={"version": number, "target": target}, expect=201
                )
                if response is None:
                    return
                status = response.json().get("status")
                if status != "applied":
                    raise OperationFailed(f"promotion of {url} v{number} to {target}: {status}")

        ops.append(op)
    return ops


def read_ops(scale: Scale, names: list[str], seed: int) -> list[Operation]:
    ops: list[Operation] = []
    for kind, model_index, number in read_mix(scale, seed):
        name = names[model_index]
        if kind == "production":
            url, params = f"/models/{name}/stages/production", None
        elif kind == "version":
            url, params = f"/models/{name}/versions/{number}", None
        else:
            url, params = f"/models/{name}/versions", {"limit": scale.read_page}

        async def op(rec: Recorder, url: str = url, params: dict[str, Any] | None = params) -> None:
            await rec.request("GET", url, params=params)

        ops.append(op)
    return ops


def list_ops(scale: Scale, names: list[str]) -> list[Operation]:
    ops: list[Operation] = []
    for i in range(scale.lists):
        url = f"/models/{names[i % len(names)]}/versions"
        params = {
            "stage": "candidate",
            "order_by": "-metric:accuracy",
            "dataset": DATASET,
            "limit": scale.list_limit,
        }

        async def op(rec: Recorder, url: str = url, params: dict[str, Any] = params) -> None:
            response = await rec.request("GET", url, params=params)
            if response is not None and not response.json()["items"]:
                raise OperationFailed(f"GET {url}: an empty page")

        ops.append(op)
    return ops


async def warm_up(client: httpx.AsyncClient, scale: Scale, name: str, concurrency: int) -> None:
    """A few requests of every phase on a model of their own, not measured: the first
    requests of a process pay for lazy imports, statement caches and new connections."""
    tiny = warm_up_scale(scale)
    await setup_models(client, [name])
    for ops in (
        create_ops(tiny, [name], 7),
        promote_ops(tiny, [name]),
        read_ops(tiny, [name], 7),
        list_ops(tiny, [name]),
    ):
        await run_operations(client, ops, concurrency)


class Target:
    """Modelgate as one side of the comparison: prepares its models at a concurrency
    level and hands out the operations of each phase (see bench_run.run_interleaved)."""

    name = "modelgate"

    def __init__(self, *, url: str, token: str, scale: Scale, run_id: str) -> None:
        self.url = url
        self.token = token
        self.scale = scale
        self.run_id = run_id
        self.names: list[str] = []
        self.seed = 0

    def client(self, concurrency: int) -> httpx.AsyncClient:
        return client_for(self.url, self.token, concurrency)

    async def prepare(self, client: httpx.AsyncClient, concurrency: int) -> None:
        """Warm up, then register this level's models (each level has models of its own)."""
        prefix = f"b{self.run_id}-c{concurrency}"
        await warm_up(client, self.scale, f"{prefix}-warm", concurrency)
        self.names = [f"{prefix}-m{i}" for i in range(self.scale.models)]
        self.seed = 1000 + concurrency
        await setup_models(client, self.names)

    def ops(self, phase: str) -> list[Operation]:
        if phase == "create_version":
            return create_ops(self.scale, self.names, self.seed)
        if phase == "promote":
            return promote_ops(self.scale, self.names)
        if phase == "read":
            return read_ops(self.scale, self.names, self.seed)
        if phase == "list_100":
            return list_ops(self.scale, self.names)
        raise ValueError(phase)


async def run_upload(
    *,
    url: str,
    token: str,
    artifact: GeneratedArtifact,
    run_id: str,
    monitor: Monitor | None,
) -> dict[str, Any]:
    """Stream the generated artifact into a fresh version, with its sha256 declared."""
    name = f"b{run_id}-upload"
    async with client_for(url, token, 1, timeout=600.0) as client:
        await setup_models(client, [name])
        response = await client.post(
            f"/models/{name}/versions", json={"description": "upload benchmark"}
        )
        if response.status_code != 201:
            raise RuntimeError(f"creating the upload version: {response.text}")
        number = response.json()["version"]
        baseline = monitor.rss("server") if monitor else (0, 0)
        before = monitor.snapshot() if monitor else None
        if monitor:
            monitor.begin_peak()
        started = time.perf_counter()
        error = None
        try:
            response = await client.put(
                f"/models/{name}/versions/{number}/artifact",
                content=artifact.achunks(),
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(artifact.size),
                    "X-Artifact-SHA256": artifact.sha256,
                },
            )
            if response.status_code != 200:
                error = f"{response.status_code} {response.text[:300]}"
            elif response.json()["artifact"]["sha256"] != artifact.sha256:
                error = "stored sha256 differs"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - started
        return upload_result("modelgate", artifact.size, elapsed, error, monitor, before, baseline)


def upload_result(
    target: str,
    size: int,
    elapsed: float,
    error: str | None,
    monitor: Monitor | None,
    before: Any,
    baseline: tuple[int, int],
) -> dict[str, Any]:
    from bench_procs import usage_between

    result: dict[str, Any] = {
        "phase": "upload",
        "target": target,
        "concurrency": 1,
        "operations": 1,
        "requests": 1,
        "errors": 0 if error is None else 1,
        "error_samples": [] if error is None else [error],
        "bytes": size,
        "seconds": round(elapsed, 3),
        "mib_per_s": round(size / MIB / elapsed, 1),
    }
    if monitor is not None and before is not None:
        result["cpu"] = usage_between(before, monitor.snapshot())
        peaks = monitor.end_peak()
        result["rss"] = peaks
        server = peaks.get("server")
        if server:
            result["server_rss_baseline_mib"] = round(baseline[1] / MIB, 1)
            result["server_rss_peak_mib"] = round(server["max_total_rss"] / MIB, 1)
            result["server_rss_rise_mib"] = round((server["max_total_rss"] - baseline[1]) / MIB, 1)
            result["worker_rss_rise_mib"] = round(
                (server["max_process_rss"] - baseline[0]) / MIB, 1
            )
            result["rss_samples"] = server["samples"]
    return result


def run(coro: Any) -> Any:
    return asyncio.run(coro)
