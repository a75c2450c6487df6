"""``metrics.stage`` (the copy of a version's stage behind stage-filtered lists ordered by a
metric) stays equal to the version's stage through every kind of transition."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from app.settings import Settings
from tests.support.api import API, all_items, create_model
from tests.support.flows import new_version, permissive_policy, promote, put_policy, rollback

MODEL = "sync"
STAGES = ("candidate", "staging", "production", "archived")


def listed(client: TestClient, **params: Any) -> list[int]:
    """Every version number of a list, page by page (pages of 2, to use the cursors)."""
    items = all_items(client, f"/models/{MODEL}/versions", **{**params, "limit": 2})
    assert all(v["stage"] == params.get("stage", v["stage"]) for v in items)
    return [v["version"] for v in items]


def out_of_step(settings: Settings) -> list[tuple[int, str, str]]:
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT v.version, v.stage, m.stage FROM metrics m "
                    "JOIN model_versions v ON v.id = m.version_id WHERE m.stage <> v.stage"
                )
            ).all()
    finally:
        engine.dispose()
    return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]


def check(
    client: TestClient, settings: Settings, accuracy: dict[int, float]
) -> dict[str, list[int]]:
    """Each stage listed by metric holds exactly the versions listed by number, best
    first; returns the versions by stage."""
    assert out_of_step(settings) == []
    by_stage: dict[str, list[int]] = {}
    for stage in STAGES:
        members = listed(client, stage=stage)
        by_metric = listed(client, stage=stage, order_by="-metric:accuracy", dataset="holdout")
        assert by_metric == sorted(members, key=lambda n: (-accuracy[n], -n)), stage
        worst_first = listed(client, stage=stage, order_by="metric:accuracy", dataset="holdout")
        assert worst_first == list(reversed(by_metric)), stage
        by_stage[stage] = sorted(members)
    return by_stage


def test_metric_stage_follows_promotions_archive_and_rollback(
    client: TestClient, settings: Settings
) -> None:
    create_model(client, MODEL, primary_metric="accuracy", primary_dataset="holdout")
    put_policy(client, MODEL, permissive_policy())
    accuracy = {n: 0.80 + n / 100 for n in range(1, 7)}
    for n, acc in accuracy.items():
        assert new_version(client, MODEL, accuracy=acc) == n
    assert check(client, settings, accuracy)["candidate"] == [1, 2, 3, 4, 5, 6]

    promote(client, MODEL, 1, "production", status="applied")
    promote(client, MODEL, 2, "production", status="applied")  # 1 is archived
    promote(client, MODEL, 3, "staging", status="applied")
    promote(client, MODEL, 4, "staging", status="applied")
    assert check(client, settings, accuracy) == {
        "candidate": [5, 6],
        "staging": [3, 4],
        "production": [2],
        "archived": [1],
    }

    archived = client.post(f"{API}/models/{MODEL}/versions/4/archive", json={"reason": "stale"})
    assert archived.status_code == 200, archived.text
    promote(client, MODEL, 5, "staging", status="applied")
    promote(client, MODEL, 5, "production", status="applied")  # 2 is archived
    assert check(client, settings, accuracy) == {
        "candidate": [6],
        "staging": [3],
        "production": [5],
        "archived": [1, 2, 4],
    }

    back = rollback(client, MODEL)  # to 2; 5 is archived and flagged
    assert back.status_code == 200, back.text
    assert back.json()["serving_version"] == 2
    assert check(client, settings, accuracy) == {
        "candidate": [6],
        "staging": [3],
        "production": [2],
        "archived": [1, 4, 5],
    }

    # A metric added later to a staging version is listed with the staging versions.
    added = client.post(
        f"{API}/models/{MODEL}/versions/3/metrics",
        json={"metrics": [{"name": "latency", "value": 12.5, "dataset": "holdout"}]},
    )
    assert added.status_code == 200, added.text
    assert out_of_step(settings) == []
    for stage in STAGES:
        expected = [3] if stage == "staging" else []
        by_latency = listed(client, stage=stage, order_by="metric:latency", dataset="holdout")
        assert by_latency == expected, stage
