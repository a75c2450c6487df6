"""Model versions: create with lineage, signature, metrics and tags; list, read, add metrics."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.api import (
    API,
    all_items,
    assert_problem,
    audit_events,
    create_model,
    create_version,
    error_locs,
    full_lineage,
    metric,
    version_payload,
)


def list_all(client: TestClient, model: str, **params: Any) -> list[dict[str, Any]]:
    """Every version of a list, page by page."""
    return all_items(client, f"/models/{model}/versions", **params)


def test_create_with_full_lineage_signature_metrics_and_tags(client: TestClient) -> None:
    create_model(client, "fraud")
    payload = version_payload(
        artifact={"sha256": "ab" * 32, "media_type": "application/x-onnx"},
    )
    payload["lineage"]["code_dirty"] = False
    payload["lineage"]["extra"] = {"gpu": "a100", "epochs": [1, 2, 3]}
    response = client.post(f"{API}/models/fraud/versions", json=payload)
    assert response.status_code == 201, response.text
    created = response.json()

    assert created["model"] == "fraud"
    assert created["version"] == 1
    assert created["stage"] == "candidate"
    assert created["description"] == "nightly retrain"
    assert created["lineage"] == payload["lineage"]
    assert created["signature"]["inputs"][1] == {
        "name": "country",
        "type": "categorical",
        "nullable": False,
        "required": True,
        "categories": ["DE", "FR", "US"],
        "shape": None,
    }
    assert [c["name"] for c in created["signature"]["inputs"]] == ["amount", "country", "age"]
    assert created["signature"]["inputs"][2]["nullable"] is True
    assert created["signature"]["outputs"][0]["name"] == "score"
    assert created["tags"] == {"team": "risk"}
    assert created["artifact"]["status"] == "missing"
    assert created["artifact"]["expected_sha256"] == "ab" * 32
    assert created["artifact"]["media_type"] == "application/x-onnx"
    assert created["artifact"]["sha256"] is None
    assert created["created_by"] == "bootstrap-admin"
    metrics = {(m["name"], m["dataset"], m["slice"]): m for m in created["metrics"]}
    assert metrics[("accuracy", "holdout", None)]["value"] == pytest.approx(0.91)
    assert metrics[("accuracy", "holdout", None)]["sample_count"] == 10000
    assert metrics[("accuracy", "holdout", "DE")]["value"] == pytest.approx(0.89)
    assert metrics[("rmse", "holdout", None)]["value"] == pytest.approx(0.25)
    assert len(metrics) == 3

    read = client.get(f"{API}/models/fraud/versions/1")
    assert read.status_code == 200
    assert read.json() == created
    assert client.get(f"{API}/models/fraud").json()["latest_version"] == 1


def test_lineage_without_optional_fields(client: TestClient) -> None:
    create_model(client, "bare")
    response = client.post(f"{API}/models/bare/versions", json={})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["metrics"] == []
    assert body["signature"] is None
    # Hyperparameters not sent are not recorded: lineage_complete must see them missing,
    # while `"hyperparameters": {}` sent on purpose is kept and counts as present.
    assert body["lineage"] == {"extra": {}}


@pytest.mark.parametrize(
    ("patch", "loc"),
    [
        ({"lineage": {"seed": "forty-two"}}, ["body", "lineage", "seed"]),
        ({"lineage": {"colour": "red"}}, ["body", "lineage", "colour"]),
        ({"lineage": {"code_dirty": "maybe"}}, ["body", "lineage", "code_dirty"]),
        ({"tags": {"k": 1}}, ["body", "tags", "k"]),
        ({"signature": {"inputs": [{"name": "a", "type": "complex"}]}}, None),
        ({"signature": {"inputs": [{"name": "a", "type": "float"}] * 2}}, ["body", "signature"]),
        ({"metrics": [{"name": "acc", "value": 0.9}]}, ["body", "metrics", 0, "dataset"]),
        ({"metrics": [{"name": "acc", "dataset": "d"}]}, ["body", "metrics", 0, "value"]),
        (
            {"metrics": [{"name": "acc", "value": 0.9, "dataset": "d", "sample_count": -1}]},
            ["body", "metrics", 0, "sample_count"],
        ),
        ({"metrics": [{"name": "bad name", "value": 1, "dataset": "d"}]}, None),
        ({"artifact": {"sha256": "xyz"}}, ["body", "artifact", "sha256"]),
        ({"stage": "production"}, ["body", "stage"]),
        ({"version": 7}, ["body", "version"]),
    ],
)
def test_invalid_version_payloads_are_422(
    client: TestClient, patch: dict[str, Any], loc: list[Any] | None
) -> None:
    create_model(client, "m")
    payload = {**version_payload(), **patch}
    problem = assert_problem(client.post(f"{API}/models/m/versions", json=payload), 422)
    if loc is not None:
        assert any(found[: len(loc)] == loc for found in error_locs(problem)), problem
    assert client.get(f"{API}/models/m").json()["latest_version"] == 0


def test_numbers_increase_per_model_independently(client: TestClient) -> None:
    create_model(client, "a")
    create_model(client, "b")
    assert [create_version(client, "a") for _ in range(3)] == [1, 2, 3]
    assert create_version(client, "b") == 1
    assert create_version(client, "a") == 4
    assert create_version(client, "b") == 2
    assert client.get(f"{API}/models/a").json()["latest_version"] == 4
    assert [v["version"] for v in list_all(client, "a")] == [4, 3, 2, 1]
    assert [v["version"] for v in list_all(client, "a", order_by="version")] == [1, 2, 3, 4]


def test_failed_create_does_not_use_a_number(client: TestClient) -> None:
    create_model(client, "gapless")
    assert create_version(client, "gapless") == 1
    duplicate = version_payload(metrics=[metric("acc", 0.5), metric("acc", 0.6)])
    assert_problem(client.post(f"{API}/models/gapless/versions", json=duplicate), 422)
    assert create_version(client, "gapless") == 2


def test_list_paginates_with_cursor(client: TestClient) -> None:
    create_model(client, "many")
    for _ in range(7):
        create_version(client, "many")
    first = client.get(f"{API}/models/many/versions", params={"limit": 3}).json()
    assert [v["version"] for v in first["items"]] == [7, 6, 5]
    assert [v["version"] for v in list_all(client, "many", limit=3)] == [7, 6, 5, 4, 3, 2, 1]
    assert [v["version"] for v in list_all(client, "many", limit=3, order_by="version")] == [
        1,
        2,
        3,
        4,
        5,
        6,
        7,
    ]


def test_list_filters_by_stage(client: TestClient) -> None:
    create_model(client, "staged")
    create_version(client, "staged")
    create_version(client, "staged")
    assert [v["version"] for v in list_all(client, "staged", stage="candidate")] == [2, 1]
    assert list_all(client, "staged", stage="production") == []
    assert list_all(client, "staged", stage="archived") == []
    problem = assert_problem(
        client.get(f"{API}/models/staged/versions", params={"stage": "retired"}), 422
    )
    assert ["query", "stage"] in error_locs(problem)


def test_order_by_metric_with_dataset(client: TestClient) -> None:
    create_model(client, "ranked")
    accuracies = [0.80, 0.95, 0.70, 0.90]
    for acc in accuracies:
        create_version(
            client,
            "ranked",
            {"metrics": [metric("accuracy", acc), metric("accuracy", 1 - acc, "other")]},
        )
    create_version(client, "ranked", {"metrics": [metric("rmse", 0.1)]})  # no accuracy

    best_first = list_all(client, "ranked", order_by="-metric:accuracy", dataset="holdout")
    assert [v["version"] for v in best_first] == [2, 4, 1, 3]
    worst_first = list_all(client, "ranked", order_by="metric:accuracy", dataset="holdout")
    assert [v["version"] for v in worst_first] == [3, 1, 4, 2]
    other = list_all(client, "ranked", order_by="-metric:accuracy", dataset="other")
    assert [v["version"] for v in other] == [3, 1, 4, 2]
    assert list_all(client, "ranked", order_by="-metric:accuracy", dataset="nope") == []
    # Stage filter combines with the ordering.
    filtered = list_all(
        client, "ranked", order_by="-metric:accuracy", dataset="holdout", stage="candidate"
    )
    assert [v["version"] for v in filtered] == [2, 4, 1, 3]
    assert (
        list_all(
            client, "ranked", order_by="-metric:accuracy", dataset="holdout", stage="production"
        )
        == []
    )


def test_order_by_metric_paginates_across_equal_values(client: TestClient) -> None:
    create_model(client, "ties")
    values = [0.9, 0.8, 0.9, 0.9, 0.7, 0.8, 0.9, 0.85]
    for value in values:
        create_version(client, "ties", {"metrics": [metric("accuracy", value)]})
    expected_desc = [n for _, n in sorted(((v, i + 1) for i, v in enumerate(values)), reverse=True)]
    expected_asc = [n for _, n in sorted((v, i + 1) for i, v in enumerate(values))]
    for limit in (1, 2, 3):
        desc = list_all(client, "ties", order_by="-metric:accuracy", dataset="holdout", limit=limit)
        assert [v["version"] for v in desc] == expected_desc, limit
        asc = list_all(client, "ties", order_by="metric:accuracy", dataset="holdout", limit=limit)
        assert [v["version"] for v in asc] == expected_asc, limit


def test_order_by_metric_uses_primary_dataset(client: TestClient) -> None:
    create_model(client, "primary", primary_metric="accuracy", primary_dataset="holdout")
    create_version(client, "primary", {"metrics": [metric("accuracy", 0.5)]})
    create_version(client, "primary", {"metrics": [metric("accuracy", 0.6)]})
    ordered = list_all(client, "primary", order_by="-metric:accuracy")
    assert [v["version"] for v in ordered] == [2, 1]


def test_order_by_metric_without_dataset_is_409(client: TestClient) -> None:
    # the model's primary_dataset (its state) decides: a 409 (decision 0025)
    create_model(client, "nodata")
    problem = assert_problem(
        client.get(f"{API}/models/nodata/versions", params={"order_by": "-metric:accuracy"}),
        409,
        "state-mismatch",
    )
    assert ["query", "dataset"] in error_locs(problem)


@pytest.mark.parametrize(
    "order_by", ["accuracy", "metric:", "-metric:", "+version", "created_at", "--version", ""]
)
def test_bad_order_by_is_422(client: TestClient, order_by: str) -> None:
    create_model(client, "m")
    problem = assert_problem(
        client.get(f"{API}/models/m/versions", params={"order_by": order_by, "dataset": "holdout"}),
        422,
    )
    assert ["query", "order_by"] in error_locs(problem)


def test_cursor_of_another_ordering_is_400(client: TestClient) -> None:
    create_model(client, "mixed")
    for value in (0.1, 0.2, 0.3):
        create_version(client, "mixed", {"metrics": [metric("accuracy", value)]})
    by_version = client.get(f"{API}/models/mixed/versions", params={"limit": 1}).json()
    response = client.get(
        f"{API}/models/mixed/versions",
        params={
            "order_by": "-metric:accuracy",
            "dataset": "holdout",
            "cursor": by_version["next_cursor"],
        },
    )
    assert_problem(response, 400, "bad-request")


def test_read_one_and_404s(client: TestClient) -> None:
    create_model(client, "known")
    create_version(client, "known")
    assert client.get(f"{API}/models/known/versions/1").json()["version"] == 1
    assert_problem(client.get(f"{API}/models/known/versions/2"), 404, "version-not-found")
    assert_problem(client.get(f"{API}/models/unknown/versions/1"), 404, "model-not-found")
    assert_problem(client.get(f"{API}/models/unknown/versions"), 404, "model-not-found")
    assert_problem(
        client.post(f"{API}/models/unknown/versions", json=version_payload()),
        404,
        "model-not-found",
    )
    assert_problem(
        client.post(f"{API}/models/known/versions/9/metrics", json={"metrics": [metric("a", 1.0)]}),
        404,
        "version-not-found",
    )
    assert_problem(client.get(f"{API}/models/unknown/stages/candidate"), 404, "model-not-found")


@pytest.mark.parametrize("number", ["0", "-1", "abc", "1.5", "99999999999"])
def test_bad_version_number_is_422(client: TestClient, number: str) -> None:
    create_model(client, "m")
    problem = assert_problem(client.get(f"{API}/models/m/versions/{number}"), 422)
    assert ["path", "version"] in error_locs(problem)


def test_add_metrics(client: TestClient) -> None:
    create_model(client, "scored")
    create_version(client, "scored", {"metrics": [metric("accuracy", 0.9)]})
    url = f"{API}/models/scored/versions/1/metrics"

    response = client.post(
        url,
        json={"metrics": [metric("f1", 0.8, sample_count=500), metric("accuracy", 0.7, "prod")]},
    )
    assert response.status_code == 200, response.text
    got = {(m["name"], m["dataset"]): m["value"] for m in response.json()["metrics"]}
    assert got == {
        ("accuracy", "holdout"): pytest.approx(0.9),
        ("f1", "holdout"): pytest.approx(0.8),
        ("accuracy", "prod"): pytest.approx(0.7),
    }
    read = client.get(f"{API}/models/scored/versions/1").json()
    assert len(read["metrics"]) == 3
    events = audit_events(client, model="scored", action="metrics.added")
    assert len(events) == 1
    assert events[0]["version"] == 1
    assert {m["name"] for m in events[0]["details"]["metrics"]} == {"f1", "accuracy"}

    # Identical resend: no-op, no new event.
    again = client.post(url, json={"metrics": [metric("f1", 0.8, sample_count=500)]})
    assert again.status_code == 200, again.text
    assert len(again.json()["metrics"]) == 3
    assert len(audit_events(client, model="scored", action="metrics.added")) == 1

    # A slice is its own metric.
    sliced = client.post(url, json={"metrics": [metric("accuracy", 0.6, slice="DE")]})
    assert sliced.status_code == 200
    assert len(sliced.json()["metrics"]) == 4


def test_add_metric_with_different_value_is_409(client: TestClient) -> None:
    create_model(client, "immutable")
    create_version(client, "immutable", {"metrics": [metric("accuracy", 0.9)]})
    url = f"{API}/models/immutable/versions/1/metrics"
    problem = assert_problem(
        client.post(url, json={"metrics": [metric("f1", 0.5), metric("accuracy", 0.91)]}),
        409,
        "metric-conflict",
    )
    assert "accuracy" in problem["detail"]
    # All or nothing: the new f1 of the refused request was not kept.
    names = [m["name"] for m in client.get(f"{API}/models/immutable/versions/1").json()["metrics"]]
    assert names == ["accuracy"]
    assert audit_events(client, model="immutable", action="metrics.added") == []
    # A different sample count for the same value is a conflict too.
    assert_problem(
        client.post(url, json={"metrics": [metric("accuracy", 0.9, sample_count=3)]}),
        409,
        "metric-conflict",
    )


def test_duplicate_metric_in_one_request_is_422(client: TestClient) -> None:
    create_model(client, "dups")
    create_version(client, "dups")
    problem = assert_problem(
        client.post(
            f"{API}/models/dups/versions/1/metrics",
            json={"metrics": [metric("auc", 0.7), metric("auc", 0.7)]},
        ),
        422,
        "validation-failed",
    )
    assert ["body", "metrics", 1] in error_locs(problem)
    problem = assert_problem(
        client.post(
            f"{API}/models/dups/versions",
            json={"metrics": [metric("auc", 0.7, slice="x"), metric("auc", 0.8, slice="x")]},
        ),
        422,
    )
    assert ["body", "metrics", 1] in error_locs(problem)


@pytest.mark.parametrize(
    "raw_value",
    ["NaN", "Infinity", "-Infinity", '"0.9"', '"high"', "null", "true", "[0.9]", "1e999"],
)
def test_non_finite_or_non_numeric_metric_values_are_422(
    client: TestClient, raw_value: str
) -> None:
    create_model(client, "finite")
    create_version(client, "finite", {})
    body = '{"metrics": [{"name": "accuracy", "dataset": "holdout", "value": ' + raw_value + "}]}"
    for url in (
        f"{API}/models/finite/versions/1/metrics",
        f"{API}/models/finite/versions",
    ):
        response = client.post(url, content=body, headers={"Content-Type": "application/json"})
        problem = assert_problem(response, 422)
        assert ["body", "metrics", 0, "value"] in error_locs(problem), problem
    assert client.get(f"{API}/models/finite/versions/1").json()["metrics"] == []
    assert client.get(f"{API}/models/finite").json()["latest_version"] == 1


def test_nan_in_hyperparameters_is_refused(client: TestClient) -> None:
    create_model(client, "hp")
    for body, loc in [
        ('{"lineage": {"hyperparameters": {"eta": NaN}}}', ["eta"]),
        ('{"lineage": {"hyperparameters": {"grid": [1, [2, -Infinity]]}}}', ["grid"]),
        ('{"lineage": {"extra": {"x": {"y": Infinity}}}}', ["x"]),
    ]:
        response = client.post(
            f"{API}/models/hp/versions",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        problem = assert_problem(response, 422)
        field = "extra" if "extra" in body else "hyperparameters"
        assert ["body", "lineage", field, *loc] in error_locs(problem), problem
    assert client.get(f"{API}/models/hp").json()["latest_version"] == 0


def test_stages_endpoint(client: TestClient) -> None:
    create_model(client, "staging-area")
    create_version(client, "staging-area")
    create_version(client, "staging-area")
    candidate = client.get(f"{API}/models/staging-area/stages/candidate")
    assert candidate.status_code == 200, candidate.text
    body = candidate.json()
    assert body["model"] == "staging-area"
    assert body["stage"] == "candidate"
    assert [v["version"] for v in body["items"]] == [2, 1]

    production = client.get(f"{API}/models/staging-area/stages/production")
    assert production.status_code == 200
    assert production.json()["items"] == []
    assert production.json()["stage"] == "production"

    page = client.get(f"{API}/models/staging-area/stages/candidate", params={"limit": 1}).json()
    assert [v["version"] for v in page["items"]] == [2]
    rest = client.get(
        f"{API}/models/staging-area/stages/candidate",
        params={"limit": 1, "cursor": page["next_cursor"]},
    ).json()
    assert [v["version"] for v in rest["items"]] == [1]
    assert rest["next_cursor"] is None

    problem = assert_problem(client.get(f"{API}/models/staging-area/stages/retired"), 422)
    assert ["path", "stage"] in error_locs(problem)


def test_version_create_is_audited(client: TestClient) -> None:
    create_model(client, "trail")
    response = client.post(
        f"{API}/models/trail/versions", json=version_payload(lineage=full_lineage(seed=7))
    )
    assert response.status_code == 201
    events = audit_events(client, model="trail", action="version.created")
    assert len(events) == 1
    event = events[0]
    assert event["version"] == 1
    assert event["to_stage"] == "candidate"
    assert event["details"]["lineage"]["seed"] == 7
    assert event["details"]["metrics"] == 3
    assert event["request_id"] == response.headers["x-request-id"]
