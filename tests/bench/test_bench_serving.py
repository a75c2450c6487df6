"""scripts/bench's serving and rollout phases end to end on a tiny workload: its own S3 server,
database, ``modelgate serve --workers 2`` and (when scripts/setup-mlflow has made
.venv-mlflow) an MLflow server; every watcher wakes on every change, every request is
answered as expected, and the figures and ratios are in the result and the table.
Figures are not asserted (machines are noisy)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.pg import PG_ADMIN_URL, drop_pg_database

pytestmark = [pytest.mark.postgres_only, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
MLFLOW = ROOT / ".venv-mlflow" / "bin" / "mlflow"


@pytest.fixture
def bench_db() -> Any:
    name = f"modelgate_bench_serving_{os.getpid()}"
    yield name
    drop_pg_database(name)
    drop_pg_database(f"{name}_mlflow")


def test_the_serving_phase_measures_watchers_and_cpu_per_request(
    tmp_path: Path, bench_db: str
) -> None:
    with_mlflow = MLFLOW.exists()
    done = subprocess.run(
        [str(ROOT / "scripts" / "bench"), "--scale", "small", "--concurrency", "1",
         "--skip", "modelgate,upload,pgbench,boto3,scale", "--out", str(tmp_path),
         "--pg-url", PG_ADMIN_URL, "--db-name", bench_db,
         *(["--compare-mlflow"] if with_mlflow else [])],
        capture_output=True, text=True, timeout=840, cwd=ROOT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads((tmp_path / "latest.json").read_text())
    assert "error" not in result
    serving = result["serving"]

    cpu = serving["cpu_per_request"]
    expected = {"plan_304", "plan_200", "version_by_alias"}
    if with_mlflow:
        expected.add("mlflow_get_version_by_alias")
    assert set(cpu) == expected
    for name, figures in cpu.items():
        assert figures["errors"] == 0, (name, figures["error_samples"])
        assert figures["requests"] == 120, name
        assert figures["server_cpu_ms_per_request"] >= 0, name

    watch = serving["watch"]
    assert watch["watchers"] == 40
    assert [r["change"] for r in watch["rounds"]] == ["rollback", "alias champion -> v1"]
    assert [r["woken"] for r in watch["rounds"]] == [40, 40]
    assert watch["woken_all_rounds"] is True
    assert watch["watcher_errors"] == 0, watch["watcher_error_samples"]
    assert watch["wake_ms"]["p99"] is not None
    assert watch["idle_server_cpu_percent_of_a_core"] >= 0
    # Revisions: promotion x2, alias, then one per change.
    start = watch["rounds"][0]["revision"] - 1
    assert [r["revision"] for r in watch["rounds"]] == [start + 1, start + 2]

    if with_mlflow:
        assert serving["ratios"]["mlflow_alias_cpu_over_plan_304"] is not None
        assert "serving: CPU/req MLflow alias read / Modelgate 304" in done.stdout
    assert "long-poll watchers" in done.stdout

    # The rollout phase (scripts/bench_rollout.py) ran in the same bench.
    rollout = result["rollout"]
    assert rollout["aborted"] is True, rollout
    assert "critical metric failed (errors)" in rollout["abort_reason"]
    assert rollout["routers_with_incumbent_alone"] == rollout["routers"] == 5
    assert rollout["router_errors"] == 0, rollout["router_error_samples"]
    assert rollout["abort_latency_ms"]["p99"] is not None
    assert rollout["server_cpu_ms_per_batch"] >= 0
    assert "rollout: abort latency p99 ms, 5 routers" in done.stdout
    assert "serving: wake-up p99 ms, 40 watchers" in done.stdout
