"""The same workload against the MLflow Model Registry's REST API (/api/2.0/mlflow).

MLflow is installed into a virtual environment of its own (never into Modelgate's),
and served as its documentation says: ``mlflow server --workers 2`` on the same
PostgreSQL server and the same S3 endpoint.

Equivalences: a version's lineage, metrics and tags become model-version tags in the
create call (MLflow versions have no metrics of their own); promotion is two
``transition-stage`` calls, the second with ``archive_existing_versions``; reads are
``get-latest-versions`` for Production, ``model-versions/get`` and a search page. MLflow's
search can filter neither by stage nor order by a metric: the list phase uses its
nearest query, a name and tag filter ordered by version number, 100 results.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from bench_load import Operation, OperationFailed, Recorder, run_operations
from bench_workload import (
    DATASET,
    Scale,
    promoted_versions,
    read_mix,
    version_specs,
    warm_up_scale,
)

MLFLOW_VERSIONS = ("mlflow==3.17.2", "mlflow>=3,<4")
API = "/api/2.0/mlflow"


def ensure_venv(venv: Path, log: Path) -> tuple[Path | None, str]:
    """The venv's ``mlflow`` executable, installing it when needed; (None, why) if not."""
    mlflow = venv / "bin" / "mlflow"
    python = venv / "bin" / "python"
    if mlflow.exists() and _works(python):
        return mlflow, _version(python)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        if not python.exists():
            made = subprocess.run(
                [sys.executable, "-m", "venv", str(venv)], stdout=out, stderr=out, check=False
            )
            if made.returncode != 0:
                return None, f"python -m venv failed (see {log})"
        for spec in MLFLOW_VERSIONS:
            done = subprocess.run(
                [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                 spec, "psycopg2-binary", "boto3"],
                stdout=out, stderr=out, check=False,
            )  # fmt: skip
            if done.returncode == 0 and _works(python):
                return mlflow, _version(python)
    return None, f"pip could not install MLflow 3 (no network or no compatible wheel; see {log})"


def _works(python: Path) -> bool:
    if not python.exists():
        return False
    done = subprocess.run(
        [str(python), "-c", "import mlflow.server, psycopg2, boto3"],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def _version(python: Path) -> str:
    done = subprocess.run(
        [str(python), "-c", "import mlflow; print(mlflow.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


def server_argv(mlflow: Path, *, db_url: str, bucket: str, port: int, workers: int) -> list[str]:
    return [
        str(mlflow), "server", "--workers", str(workers),
        "--backend-store-uri", db_url,
        "--artifacts-destination", f"s3://{bucket}/mlflow",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip


def server_env(s3_endpoint: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
            "AWS_ACCESS_KEY_ID": env.get("AWS_ACCESS_KEY_ID", "testing"),
            "AWS_SECRET_ACCESS_KEY": env.get("AWS_SECRET_ACCESS_KEY", "testing"),
            "AWS_DEFAULT_REGION": env.get("AWS_DEFAULT_REGION", "us-east-1"),
            "MLFLOW_ENABLE_TELEMETRY": "false",
            "DO_NOT_TRACK": "true",
        }
    )
    return env


def client_for(url: str, concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=url.rstrip("/") + API, limits=limits, timeout=120.0)


async def _setup(client: httpx.AsyncClient, names: list[str]) -> None:
    for name in names:
        response = await client.post("/registered-models/create", json={"name": name})
        if response.status_code != 200:
            raise RuntimeError(f"MLflow: creating {name}: {response.status_code} {response.text}")


def create_ops(scale: Scale, names: list[str], seed: int, bucket: str) -> list[Operation]:
    ops: list[Operation] = []
    for i, spec in enumerate(version_specs(scale, seed)):
        name = names[spec.model_index]
        tags = [{"key": f"lineage.{k}", "value": str(v)} for k, v in spec.lineage.items()]
        tags += [{"key": f"metric.{DATASET}.{k}", "value": str(v)} for k, v in spec.metrics.items()]
        tags += [{"key": k, "value": v} for k, v in spec.tags.items()]
        body = {
            "name": name,
            "source": f"s3://{bucket}/mlflow/{name}/{i}",
            "description": "benchmark version",
            "tags": tags,
        }

        async def op(rec: Recorder, body: dict[str, Any] = body) -> None:
            await rec.request("POST", "/model-versions/create", json=body)

        ops.append(op)
    return ops


def promote_ops(scale: Scale, names: list[str]) -> list[Operation]:
    ops: list[Operation] = []
    for model_index, number in promoted_versions(scale):
        name = names[model_index]

        async def op(rec: Recorder, name: str = name, number: int = number) -> None:
            for stage, archive in (("Staging", False), ("Production", True)):
                body = {
                    "name": name,
                    "version": str(number),
                    "stage": stage,
                    "archive_existing_versions": archive,
                }
                response = await rec.request("POST", "/model-versions/transition-stage", json=body)
                if response is None:
                    return
                got = response.json().get("model_version", {}).get("current_stage")
                if got != stage:
                    raise OperationFailed(f"MLflow transition {name} v{number}: {got}")

        ops.append(op)
    return ops


def read_ops(scale: Scale, names: list[str], seed: int) -> list[Operation]:
    ops: list[Operation] = []
    for kind, model_index, number in read_mix(scale, seed):
        name = names[model_index]
        kw: dict[str, Any]
        if kind == "production":
            method, url, kw = (
                "POST",
                "/registered-models/get-latest-versions",
                {"json": {"name": name, "stages": ["Production"]}},
            )
        elif kind == "version":
            method, url, kw = (
                "GET",
                "/model-versions/get",
                {"params": {"name": name, "version": str(number)}},
            )
        else:
            method, url, kw = (
                "GET",
                "/model-versions/search",
                {
                    "params": {
                        "filter": f"name='{name}'",
                        "max_results": scale.read_page,
                        "order_by": "version_number DESC",
                    }
                },
            )

        async def op(rec: Recorder, method: str = method, url: str = url, kw: Any = kw) -> None:
            await rec.request(method, url, **kw)

        ops.append(op)
    return ops


def list_ops(scale: Scale, names: list[str]) -> list[Operation]:
    ops: list[Operation] = []
    for i in range(scale.lists):
        params = {
            "filter": f"name='{names[i % len(names)]}' AND tags.trigger='nightly'",
            "max_results": scale.list_limit,
            "order_by": "version_number DESC",
        }

        async def op(rec: Recorder, params: dict[str, Any] = params) -> None:
            response = await rec.request("GET", "/model-versions/search", params=params)
            if response is not None and not response.json().get("model_versions"):
                raise OperationFailed("MLflow search: an empty page")

        ops.append(op)
    return ops


class Target:
    """MLflow as the other side of the comparison (same interface as Modelgate's)."""

    name = "mlflow"

    def __init__(self, *, url: str, scale: Scale, run_id: str, bucket: str) -> None:
        self.url = url
        self.scale = scale
        self.run_id = run_id
        self.bucket = bucket
        self.names: list[str] = []
        self.seed = 0

    def client(self, concurrency: int) -> httpx.AsyncClient:
        return client_for(self.url, concurrency)

    async def prepare(self, client: httpx.AsyncClient, concurrency: int) -> None:
        prefix = f"b{self.run_id}-c{concurrency}"
        warm = f"{prefix}-warm"
        tiny = warm_up_scale(self.scale)
        await _setup(client, [warm])
        for ops in (
            create_ops(tiny, [warm], 7, self.bucket),
            promote_ops(tiny, [warm]),
            read_ops(tiny, [warm], 7),
            list_ops(tiny, [warm]),
        ):
            await run_operations(client, ops, concurrency)
        self.names = [f"{prefix}-m{i}" for i in range(self.scale.models)]
        self.seed = 1000 + concurrency
        await _setup(client, self.names)

    def ops(self, phase: str) -> list[Operation]:
        if phase == "create_version":
            return create_ops(self.scale, self.names, self.seed, self.bucket)
        if phase == "promote":
            return promote_ops(self.scale, self.names)
        if phase == "read":
            return read_ops(self.scale, self.names, self.seed)
        if phase == "list_100":
            return list_ops(self.scale, self.names)
        raise ValueError(phase)
