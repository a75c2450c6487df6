"""scripts/bench end to end on a tiny workload: it starts its own S3 server, database and
``modelgate serve --workers 2``, runs every phase, and writes a JSON result in which
every phase is present and nothing failed. Figures are not asserted (machines are noisy).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.pg import PG_ADMIN_URL, drop_pg_database

pytestmark = [pytest.mark.postgres_only, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
REQUEST_PHASES = ("create_version", "promote", "read", "list_100")
SCALE_KINDS = (
    "stage_metric",
    "stage_version",
    "stage_metric_deep",
    "stage_version_deep",
    "staging_metric",
    "staging_metric_10",
)
LEVELS = (1, 4)


def _no_errors(section: str, phase: dict[str, Any]) -> None:
    assert phase["errors"] == 0, (section, phase["phase"], phase.get("error_samples"))


@pytest.fixture
def bench_db() -> Any:
    name = f"modelgate_bench_smoke_{os.getpid()}"
    yield name
    drop_pg_database(name)


def test_small_benchmark_runs_every_phase_without_errors(tmp_path: Path, bench_db: str) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [str(ROOT / "scripts" / "bench"), "--scale", "small", "--concurrency", "1,4",
         "--out", str(tmp_path), "--pg-url", PG_ADMIN_URL, "--db-name", bench_db,
         "--skip", "serving,rollout"],  # tests/bench/test_bench_serving.py runs those
        capture_output=True, text=True, timeout=170, cwd=ROOT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads((tmp_path / "latest.json").read_text())
    assert "error" not in result

    phases = result["modelgate"]["phases"]
    assert {(p["phase"], p["concurrency"]) for p in phases} == {
        (phase, c) for phase in REQUEST_PHASES for c in LEVELS
    }
    for phase in phases:
        _no_errors("modelgate", phase)
        assert phase["requests"] >= phase["operations"] > 0
        assert phase["cpu"]["server_cpu_s"] >= 0
        assert phase["rss"]["server"]["max_total_rss"] > 0

    upload = result["modelgate"]["upload"]
    _no_errors("upload", upload)
    assert upload["bytes"] > 0
    assert upload["rss_samples"] > 0
    assert "server_rss_rise_mib" in upload

    references = {r["phase"]: r for r in result["boto3"]}
    assert set(references) == {"boto3_upload", "boto3_upload_serial"}
    for reference in references.values():
        _no_errors("boto3", reference)

    if shutil.which("pgbench") or list(Path("/usr/lib/postgresql").glob("*/bin/pgbench")):
        runs = result["pgbench"]["runs"]
        assert [r["concurrency"] for r in runs] == list(LEVELS)
        for run in runs:
            assert "error" not in run, run
            assert run["failed"] == 0
            assert run["transactions"] > 0

    levels = result["scale_test"]["levels"]
    assert [level["versions"] for level in levels] == [100, 1000]
    for level in levels:
        assert level["seed"]["seeded"] > 0
        kinds = {(p["phase"], p["concurrency"]) for p in level["phases"]}
        assert {(k, c) for k in SCALE_KINDS for c in LEVELS} | {("walk_metric", 1)} == kinds
        for phase in level["phases"]:
            _no_errors("scale", phase)
        for kind in ("stage_metric", "stage_metric_deep"):
            plans = level["plans"][kind]
            assert plans, kind
            assert "Execution Time" in plans[0]["plan"]

    # The table on stdout carries the ratios.
    assert "Ratios and targets" in done.stdout
    # Informational: the brief asks for under a minute on an idle machine.
    print(f"scripts/bench --scale small took {elapsed:.0f} s")  # noqa: T201
