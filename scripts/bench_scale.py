"""List and search latency with 1,000 versions and with 1,000,000 versions of one model.

The model is seeded with scripts/seed_versions.py (COPY), measured, topped up to the
large count, and measured again. Each query kind runs ``scale_queries`` times:

- ``stage_metric``: ``?stage=candidate&order_by=-metric:accuracy&dataset=holdout&limit=100``
- ``stage_version``: ``?stage=candidate&limit=100`` (newest first)
- ``stage_metric_deep`` / ``stage_version_deep``: the same page starting half-way down
  the list, through a cursor built for the middle row (the way a client paging deep
  would arrive there)
- ``staging_metric``: ``?stage=staging&order_by=-metric:accuracy...``, a rare stage
  (about 1 % of the versions) ordered by a metric
- ``staging_metric_10``: the same with ``limit=10``: with 1,000 versions there are about
  ten staging versions, so ``staging_metric`` answers 10 rows there and 100 rows at a
  million; pages of 10 compare the same amount of work at both sizes
- ``walk_metric``: following ``next_cursor`` page after page from the top

The query plans of the repository functions behind these pages are captured with
EXPLAIN (ANALYZE, BUFFERS): the statements are the ones the code really sends,
recorded from SQLAlchemy and explained afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench_load import Operation, OperationFailed, Recorder, run_phase
from bench_modelgate import client_for, setup_models
from bench_procs import Monitor
from bench_workload import DATASET, Scale

ROOT = Path(__file__).resolve().parent.parent
PAGE = 100
KINDS = (
    "stage_metric",
    "stage_version",
    "stage_metric_deep",
    "stage_version_deep",
    "staging_metric",
    "staging_metric_10",
)


def seed(db_url: str, model: str, count: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "seed_versions.py"),
         "--database-url", db_url, "--model", model, "--count", str(count)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"seed_versions.py failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def middle_row(db_url: str, model: str) -> tuple[int, float, int, int]:
    """(model id, accuracy and version of the middle candidate by accuracy, its version
    number by version order) of the model."""
    import psycopg
    from seed_versions import libpq_url

    with psycopg.connect(libpq_url(db_url)) as conn:
        model_id = conn.execute(
            "SELECT id FROM registered_models WHERE name = %s", (model,)
        ).fetchone()
        assert model_id is not None
        count = conn.execute(
            "SELECT count(*) FROM model_versions WHERE model_id = %s AND stage = 'candidate'",
            (model_id[0],),
        ).fetchone()
        assert count is not None
        half = int(count[0]) // 2
        by_metric = conn.execute(
            "SELECT m.value, v.version FROM metrics m JOIN model_versions v ON v.id = m.version_id "
            "WHERE m.model_id = %s AND m.name = 'accuracy' AND m.dataset = %s AND m.slice = '' "
            "AND v.stage = 'candidate' ORDER BY m.value DESC, v.version DESC OFFSET %s LIMIT 1",
            (model_id[0], DATASET, half),
        ).fetchone()
        by_version = conn.execute(
            "SELECT version FROM model_versions WHERE model_id = %s AND stage = 'candidate' "
            "ORDER BY version DESC OFFSET %s LIMIT 1",
            (model_id[0], half),
        ).fetchone()
        assert by_metric is not None
        assert by_version is not None
        return int(model_id[0]), float(by_metric[0]), int(by_metric[1]), int(by_version[0])


def explain_plans(
    db_url: str, model_id: int, middle: tuple[float, int], middle_version: int
) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of what the repository sends for each page kind."""
    try:
        from sqlalchemy import create_engine, event
        from sqlalchemy.orm import Session

        from app.registry import repository
    except ImportError as exc:  # pragma: no cover - run from the project's venv
        return {"error": f"cannot import the repository: {exc}"}
    url = db_url if "+" in db_url.split("://")[0] else db_url.replace("://", "+psycopg://", 1)
    engine = create_engine(url)
    captured: list[tuple[str, Any]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, params))

    calls: dict[str, Any] = {
        "stage_version": lambda s: repository.page_versions(
            s, model_id=model_id, stage="candidate", descending=True, after_version=None,
            limit=PAGE + 1,
        ),
        "stage_version_deep": lambda s: repository.page_versions(
            s, model_id=model_id, stage="candidate", descending=True,
            after_version=middle_version, limit=PAGE + 1,
        ),
        "stage_metric": lambda s: repository.page_versions_by_metric(
            s, model_id=model_id, stage="candidate", metric="accuracy", dataset=DATASET,
            descending=True, after=None, limit=PAGE + 1,
        ),
        "stage_metric_deep": lambda s: repository.page_versions_by_metric(
            s, model_id=model_id, stage="candidate", metric="accuracy", dataset=DATASET,
            descending=True, after=middle, limit=PAGE + 1,
        ),
        "staging_metric": lambda s: repository.page_versions_by_metric(
            s, model_id=model_id, stage="staging", metric="accuracy", dataset=DATASET,
            descending=True, after=None, limit=PAGE + 1,
        ),
    }  # fmt: skip
    plans: dict[str, Any] = {}
    try:
        for kind, call in calls.items():
            captured.clear()
            with Session(engine) as session:
                call(session)
            statements = list(captured)
            kind_plans = []
            with engine.connect() as conn:
                for statement, params in statements:
                    rows = conn.exec_driver_sql(
                        "EXPLAIN (ANALYZE, BUFFERS) " + statement, params
                    ).fetchall()
                    kind_plans.append(
                        {"statement": statement, "plan": "\n".join(r[0] for r in rows)}
                    )
            plans[kind] = kind_plans
    except Exception as exc:
        plans["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        engine.dispose()
    return plans


def encode_cursor(values: list[Any]) -> str:
    from app.pagination import encode_cursor as encode

    return encode(values)


def query_ops(scale: Scale, model: str, kind: str, cursor: str | None) -> list[Operation]:
    url = f"/models/{model}/versions"
    # staging: about 1 % of the seeded versions, the rare-stage case (a small model may
    # have none at all, so an empty page is no error there).
    stage = "staging" if kind.startswith("staging") else "candidate"
    params: dict[str, Any] = {"stage": stage, "limit": 10 if kind.endswith("_10") else PAGE}
    if "_metric" in kind:
        params.update({"order_by": "-metric:accuracy", "dataset": DATASET})
    if cursor is not None:
        params["cursor"] = cursor

    async def op(rec: Recorder) -> None:
        response = await rec.request("GET", url, params=params)
        if response is not None and stage == "candidate" and not response.json()["items"]:
            raise OperationFailed(f"{kind}: an empty page")

    return [op] * scale.scale_queries


def walk_ops(scale: Scale, model: str) -> list[Operation]:
    url = f"/models/{model}/versions"
    base = {
        "stage": "candidate",
        "limit": PAGE,
        "order_by": "-metric:accuracy",
        "dataset": DATASET,
    }

    async def op(rec: Recorder) -> None:
        cursor = None
        for _ in range(scale.scale_deep_pages):
            params = dict(base, **({"cursor": cursor} if cursor else {}))
            response = await rec.request("GET", url, params=params)
            if response is None:
                return
            cursor = response.json().get("next_cursor")
            if cursor is None:
                return

    walks = max(1, scale.scale_queries // scale.scale_deep_pages)
    return [op] * walks


async def measure(
    *,
    url: str,
    token: str,
    db_url: str,
    model: str,
    scale: Scale,
    concurrency_levels: list[int],
    monitor: Monitor | None,
) -> dict[str, Any]:
    model_id, mid_value, mid_version_m, mid_version = middle_row(db_url, model)
    cursors = {
        "stage_metric_deep": encode_cursor([mid_value, mid_version_m]),
        "stage_version_deep": encode_cursor([mid_version]),
    }
    phases = []
    async with client_for(url, token, max(concurrency_levels)) as client:
        for concurrency in concurrency_levels:
            for kind in KINDS:
                ops = query_ops(scale, model, kind, cursors.get(kind))
                phases.append(await run_phase(kind, client, ops, concurrency, monitor))
            if concurrency == 1:
                phases.append(
                    await run_phase("walk_metric", client, walk_ops(scale, model), 1, monitor)
                )
    plans = explain_plans(db_url, model_id, (mid_value, mid_version_m), mid_version)
    return {"phases": phases, "plans": plans}


async def run_scale_test(
    *,
    url: str,
    token: str,
    db_url: str,
    run_id: str,
    scale: Scale,
    concurrency_levels: list[int],
    monitor: Monitor | None,
) -> dict[str, Any]:
    model = f"b{run_id}-scale"
    async with client_for(url, token, 1) as client:
        await setup_models(client, [model])
    result: dict[str, Any] = {"model": model, "levels": []}
    seeded = 0
    for target in (scale.seed_small, scale.seed_large):
        seeding = seed(db_url, model, target - seeded)
        seeded = target
        measured = await measure(
            url=url,
            token=token,
            db_url=db_url,
            model=model,
            scale=scale,
            concurrency_levels=concurrency_levels,
            monitor=monitor,
        )
        result["levels"].append(
            {
                "versions": target,
                "seed": seeding,
                **measured,
            }
        )
    return result
