"""Observations from serving: batches folded into windows, labels joined by key, bad
batches refused whole with the row's index, retries harmless."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from app.gates.canary import AnalysisPlan, MetricKind, MetricSpec, judge
from app.observations import service
from app.observations.models import ObservationWindow, ObservedPrediction
from tests.support.api import create_model
from tests.support.flows import new_version

API = "/api/v1"


@pytest.fixture
def model(client: TestClient) -> str:
    """Two versions, both in the serving plan (observations are taken only for those):
    version 1 the ``champion`` alias's, version 2 the ``challenger``'s."""
    create_model(client, "obs-model")
    new_version(client, "obs-model", artifact=False)
    new_version(client, "obs-model", artifact=False)
    for alias, version in (("champion", 1), ("challenger", 2)):
        response = client.put(f"{API}/models/obs-model/aliases/{alias}", json={"version": version})
        assert response.status_code == 200, response.text
    return "obs-model"


def _obs(i: int, version: int, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_key": f"req-{version}-{i}",
        "version": version,
        "latency_ms": 10.0 + i % 7,
        "error": i % 10 == 0,
        "prediction": {"class": "fraud" if i % 4 == 0 else "ok"},
        "time": (datetime.now(UTC) - timedelta(seconds=30)).isoformat(),
    }
    body.update(extra)
    return body


def _rows(database_url: str, table: Any) -> int:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(table)).scalar_one()
    engine.dispose()
    return int(count)


def test_a_batch_is_folded_into_window_aggregates(client: TestClient, model: str) -> None:
    batch = [_obs(i, 1) for i in range(100)] + [_obs(i, 2, role="shadow") for i in range(50)]
    response = client.post(f"{API}/models/{model}/observations", json={"observations": batch})
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 150

    summary = client.get(f"{API}/models/{model}/observations").json()
    arms = {(a["version"], a["role"]): a for a in summary["arms"]}
    primary = arms[(1, "primary")]
    assert primary["requests"] == 100
    assert primary["errors"] == 10
    assert primary["error_rate"] == pytest.approx(0.1)
    expected_latency = [10.0 + i % 7 for i in range(100)]
    assert primary["latency_ms_mean"] == pytest.approx(np.mean(expected_latency))
    assert primary["latency_ms_p50"] == pytest.approx(np.quantile(expected_latency, 0.5))
    assert primary["predictions"] == {"fraud": 25, "ok": 75}
    assert arms[(2, "shadow")]["requests"] == 50


def test_the_latency_sample_stays_bounded(client: TestClient, model: str, settings: Any) -> None:
    cap = settings.observation_latency_sample
    batch = [_obs(i, 1, prediction=None) for i in range(cap * 3)]
    assert (
        client.post(f"{API}/models/{model}/observations", json={"observations": batch}).status_code
        == 202
    )
    summary = client.get(f"{API}/models/{model}/observations", params={"version": 1}).json()
    (arm,) = summary["arms"]
    assert arm["requests"] == cap * 3
    assert arm["latency_sample_size"] == cap


def test_a_bad_row_refuses_the_whole_batch_with_its_index(
    client: TestClient, model: str, database_url: str
) -> None:
    batch = [_obs(i, 1) for i in range(5)]
    batch[3]["version"] = 99
    response = client.post(f"{API}/models/{model}/observations", json={"observations": batch})
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert "observation 3" in problem["detail"]
    assert problem["errors"][0]["loc"] == ["body", "observations", 3, "version"]
    assert _rows(database_url, ObservationWindow.__table__) == 0
    assert _rows(database_url, ObservedPrediction.__table__) == 0


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"latency_ms": -1}, "latency_ms"),
        ({"prediction": {"class": "a", "score": 0.5}}, "prediction"),
        ({"prediction": {"score": 1.5}}, "score"),
        ({"time": "2026-12-03T10:00:00"}, "time"),
        ({"role": "canary"}, "role"),
        ({"request_key": "has space"}, "request_key"),
    ],
)
def test_malformed_rows_are_422_naming_the_row(
    client: TestClient, model: str, change: dict[str, Any], where: str
) -> None:
    batch = [_obs(0, 1), _obs(1, 1, **change)]
    response = client.post(f"{API}/models/{model}/observations", json={"observations": batch})
    assert response.status_code == 422, response.text
    locs = [e["loc"] for e in response.json()["errors"]]
    assert any(loc[:3] == ["body", "observations", 1] and where in loc for loc in locs), locs


def test_clock_skew_and_stale_times_are_refused(client: TestClient, model: str) -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    response = client.post(
        f"{API}/models/{model}/observations", json={"observations": [_obs(0, 1, time=future)]}
    )
    assert response.status_code == 409
    assert "in the future" in response.json()["detail"]
    stale = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    response = client.post(
        f"{API}/models/{model}/observations", json={"observations": [_obs(0, 1, time=stale)]}
    )
    assert response.status_code == 409
    assert "retention" in response.json()["detail"]


def test_a_retried_batch_with_its_key_is_counted_once(client: TestClient, model: str) -> None:
    batch = {"observations": [_obs(i, 1) for i in range(20)]}
    headers = {"Idempotency-Key": "serving-batch-1"}
    first = client.post(f"{API}/models/{model}/observations", json=batch, headers=headers)
    again = client.post(f"{API}/models/{model}/observations", json=batch, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.headers.get("Idempotent-Replayed") == "true"
    (arm,) = client.get(f"{API}/models/{model}/observations").json()["arms"]
    assert arm["requests"] == 20


def test_labels_join_by_key_and_give_accuracy(client: TestClient, model: str) -> None:
    batch = [_obs(i, 1) for i in range(40)]
    assert (
        client.post(f"{API}/models/{model}/observations", json={"observations": batch}).status_code
        == 202
    )
    # Truth: the first 30 are what was predicted, the last 10 the opposite.
    labels = []
    for i in range(40):
        predicted = "fraud" if i % 4 == 0 else "ok"
        truth = predicted if i < 30 else ("ok" if predicted == "fraud" else "fraud")
        labels.append({"request_key": f"req-1-{i}", "class": truth})
    response = client.post(f"{API}/models/{model}/labels", json={"labels": labels})
    assert response.status_code == 200, response.text
    assert response.json() == {"labelled": 40, "already_labelled": 0}
    (arm,) = client.get(f"{API}/models/{model}/observations").json()["arms"]
    assert arm["labelled"] == 40
    assert arm["accuracy"] == pytest.approx(30 / 40)
    # A second delivery of the same labels changes nothing.
    again = client.post(f"{API}/models/{model}/labels", json={"labels": labels[:5]})
    assert again.json() == {"labelled": 0, "already_labelled": 5}


def test_labels_for_keys_never_observed_are_refused_whole(client: TestClient, model: str) -> None:
    assert (
        client.post(
            f"{API}/models/{model}/observations", json={"observations": [_obs(0, 1)]}
        ).status_code
        == 202
    )
    response = client.post(
        f"{API}/models/{model}/labels",
        json={
            "labels": [
                {"request_key": "req-1-0", "class": "ok"},
                {"request_key": "nope", "class": "ok"},
            ]
        },
    )
    assert response.status_code == 409
    assert response.json()["errors"][0]["loc"] == ["body", "labels", 1, "request_key"]
    (arm,) = client.get(f"{API}/models/{model}/observations").json()["arms"]
    assert arm["labelled"] == 0


def test_value_predictions_get_mean_absolute_error(client: TestClient, model: str) -> None:
    batch = [_obs(i, 1, prediction={"value": float(i)}) for i in range(10)]
    assert (
        client.post(f"{API}/models/{model}/observations", json={"observations": batch}).status_code
        == 202
    )
    labels = [{"request_key": f"req-1-{i}", "value": float(i) + 2} for i in range(10)]
    assert client.post(f"{API}/models/{model}/labels", json={"labels": labels}).status_code == 200
    (arm,) = client.get(f"{API}/models/{model}/observations").json()["arms"]
    assert arm["mean_absolute_error"] == pytest.approx(2.0)
    assert arm["accuracy"] is None
    wrong = client.post(
        f"{API}/models/{model}/labels", json={"labels": [{"request_key": "req-1-0", "class": "x"}]}
    )
    assert wrong.status_code == 409


def test_a_reader_cannot_post_observations(client: TestClient, model: str, make_token: Any) -> None:
    reader = make_token("reader")
    response = client.post(
        f"{API}/models/{model}/observations",
        json={"observations": [_obs(0, 1)]},
        headers={"Authorization": f"Bearer {reader}"},
    )
    assert response.status_code == 403


def test_arm_data_feeds_the_canary_analysis(
    client: TestClient, model: str, database_url: str
) -> None:
    now = datetime.now(UTC) - timedelta(seconds=30)
    rng = np.random.default_rng(11)
    batch = []
    for i in range(1500):
        batch.append(
            _obs(i, 1, error=bool(rng.random() < 0.01), latency_ms=float(rng.lognormal(3, 0.4)))
        )
        batch.append(
            _obs(i, 2, error=bool(rng.random() < 0.08), latency_ms=float(rng.lognormal(3, 0.4)))
        )
    for start in range(0, len(batch), 1000):
        chunk = batch[start : start + 1000]
        assert (
            client.post(
                f"{API}/models/{model}/observations", json={"observations": chunk}
            ).status_code
            == 202
        )

    from sqlalchemy.orm import Session

    engine = create_engine(database_url)
    with Session(engine) as session:
        model_id = session.scalar(select(ObservationWindow.model_id).limit(1))
        assert model_id is not None
        since, until = now - timedelta(hours=1), now + timedelta(hours=1)
        incumbent = service.arm_data(
            session, model_id=model_id, version=1, role="primary", since=since, until=until
        )
        canary = service.arm_data(
            session, model_id=model_id, version=2, role="primary", since=since, until=until
        )
    engine.dispose()
    assert incumbent.errors is not None
    assert incumbent.errors.trials == 1500
    plan = AnalysisPlan(
        (
            MetricSpec("errors", MetricKind.ERROR_RATE, critical=True, min_sample=500),
            MetricSpec("latency", MetricKind.LATENCY, tolerance=0.05, min_sample=200),
        )
    )
    look = judge(plan, canary, incumbent, look=1)
    results = {r.metric: r for r in look.results}
    assert results["errors"].verdict == "fail"
    assert results["latency"].verdict == "pass"


@pytest.mark.parametrize("until", ["0.5", "0", "2026-11-26", "1764144000"])
def test_the_summary_takes_rfc3339_date_times_only(
    client: TestClient, model: str, until: str
) -> None:
    response = client.get(f"{API}/models/{model}/observations", params={"until": until})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["query", "until"]
