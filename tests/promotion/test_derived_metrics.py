"""Metrics the service derives from a confusion matrix or from paired targets and predictions,
sent through ``POST /models/{m}/versions/{v}/metrics``, against values computed by hand."""

from __future__ import annotations

import math
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.api import API, assert_problem, audit_events, create_model
from tests.support.flows import new_version

Metrics = dict[tuple[str, str, str | None], dict[str, Any]]


def add_metrics(client: TestClient, version: int, body: dict[str, Any]) -> Metrics:
    response = client.post(f"{API}/models/fraud/versions/{version}/metrics", json=body)
    assert response.status_code == 200, response.text
    return {
        (m["name"], m["dataset"], m["slice"]): m
        for m in response.json()["metrics"]
        if m["source"] != "submitted"
    }


def values(metrics: Metrics, dataset: str) -> dict[str, float | None]:
    """The whole-dataset (unsliced) values on ``dataset``."""
    return {
        name: m["value"] for (name, ds, sl), m in metrics.items() if ds == dataset and sl is None
    }


@pytest.fixture
def version(client: TestClient) -> int:
    create_model(client, "fraud", primary_metric="accuracy", primary_dataset="holdout")
    return new_version(client, "fraud", artifact=False)


def test_binary_confusion_matrix(client: TestClient, version: int) -> None:
    # rows: true negative / positive; columns: predicted negative / positive.
    matrix = [[50, 10], [5, 35]]
    got = add_metrics(
        client,
        version,
        {
            "confusion_matrices": [
                {"dataset": "cm", "matrix": matrix},
                {
                    "dataset": "cm-fraud",
                    "matrix": matrix,
                    "labels": ["fraud", "ok"],
                    "positive_label": "fraud",
                },
                {"dataset": "cm", "slice": "DE", "matrix": [[10, 0], [0, 0]]},
            ]
        },
    )
    assert values(got, "cm") == pytest.approx(
        {
            "accuracy": 85 / 100,
            "balanced_accuracy": (50 / 60 + 35 / 40) / 2,
            "precision": 35 / 45,
            "recall": 35 / 40,
            "f1": 2 * 35 / (2 * 35 + 10 + 5),
        },
        rel=1e-12,
    )
    assert values(got, "cm-fraud") == pytest.approx(
        {
            "accuracy": 85 / 100,
            "balanced_accuracy": (50 / 60 + 35 / 40) / 2,
            "precision": 50 / 55,
            "recall": 50 / 60,
            "f1": 2 * 50 / (2 * 50 + 5 + 10),
        },
        rel=1e-12,
    )
    accuracy = got[("accuracy", "cm", None)]
    assert accuracy["source"] == "confusion_matrix"
    assert accuracy["sample_count"] == 100
    # The DE slice has no positive examples or predictions: undefined, with a reason.
    de = {name: m for (name, ds, sl), m in got.items() if sl == "DE"}
    assert de["accuracy"]["value"] == 1.0
    for name in ("precision", "recall", "f1", "balanced_accuracy"):
        assert de[name]["value"] is None, name
        assert "undefined" in de[name]["undefined_reason"], name
    assert "no positive predictions" in de["precision"]["undefined_reason"]
    assert "no positive examples" in de["recall"]["undefined_reason"]


def test_three_class_confusion_matrix_macro_and_micro(client: TestClient, version: int) -> None:
    matrix = [[30, 5, 5], [2, 40, 8], [3, 2, 25]]
    # true counts 40, 50, 30; predicted 35, 47, 38; correct 30, 40, 25 (95 of 120).
    precision = [30 / 35, 40 / 47, 25 / 38]
    recall = [30 / 40, 40 / 50, 25 / 30]
    f1 = [2 * 30 / (35 + 40), 2 * 40 / (47 + 50), 2 * 25 / (38 + 30)]
    got = add_metrics(
        client, version, {"confusion_matrices": [{"dataset": "cm3", "matrix": matrix}]}
    )
    assert values(got, "cm3") == pytest.approx(
        {
            "accuracy": 95 / 120,
            "balanced_accuracy": sum(recall) / 3,
            "precision_macro": sum(precision) / 3,
            "recall_macro": sum(recall) / 3,
            "f1_macro": sum(f1) / 3,
            "precision_micro": 95 / 120,
            "recall_micro": 95 / 120,
            "f1_micro": 95 / 120,
        },
        rel=1e-12,
    )
    # A class never predicted makes precision_macro and f1_macro undefined, never 0.
    never = add_metrics(
        client,
        version,
        {
            "confusion_matrices": [
                {
                    "dataset": "cm3-never",
                    "matrix": [[5, 1, 0], [2, 6, 0], [1, 3, 0]],
                    "labels": ["a", "b", "c"],
                }
            ]
        },
    )
    assert never[("precision_macro", "cm3-never", None)]["value"] is None
    assert (
        "never predicted class 'c'"
        in never[("precision_macro", "cm3-never", None)]["undefined_reason"]
    )
    assert never[("f1_macro", "cm3-never", None)]["value"] is None
    assert never[("recall_macro", "cm3-never", None)]["value"] == pytest.approx(
        (5 / 6 + 6 / 8 + 0 / 4) / 3
    )


def test_regression_arrays(client: TestClient, version: int) -> None:
    targets = [3.0, -0.5, 2.0, 7.0]
    predictions = [2.5, 0.0, 2.0, 8.0]
    got = add_metrics(
        client,
        version,
        {
            "regression": [
                {"dataset": "reg", "targets": targets, "predictions": predictions},
                {"dataset": "flat", "targets": [1.0, 1.0], "predictions": [1.0, 2.0]},
            ]
        },
    )
    # errors 0.5, -0.5, 0, -1; targets' mean 2.875
    sst = sum((t - 2.875) ** 2 for t in targets)
    assert values(got, "reg") == pytest.approx(
        {"mae": 2.0 / 4, "mse": 1.5 / 4, "rmse": math.sqrt(1.5 / 4), "r2": 1 - 1.5 / sst},
        rel=1e-12,
    )
    assert got[("rmse", "reg", None)]["source"] == "regression"
    assert got[("rmse", "reg", None)]["sample_count"] == 4
    assert values(got, "flat")["mae"] == 0.5
    assert got[("r2", "flat", None)]["value"] is None
    assert "constant" in got[("r2", "flat", None)]["undefined_reason"]

    events = audit_events(client, model="fraud", action="metrics.added")
    assert len(events) == 1
    assert {m["dataset"] for m in events[0]["details"]["metrics"]} == {"reg", "flat"}


def test_derived_metrics_are_immutable_and_validated(client: TestClient, version: int) -> None:
    body = {"confusion_matrices": [{"dataset": "cm", "matrix": [[5, 1], [2, 6]]}]}
    add_metrics(client, version, body)
    add_metrics(client, version, body)  # the same again: a no-op
    assert len(audit_events(client, model="fraud", action="metrics.added")) == 1
    other = {"confusion_matrices": [{"dataset": "cm", "matrix": [[6, 0], [2, 6]]}]}
    response = client.post(f"{API}/models/fraud/versions/{version}/metrics", json=other)
    assert_problem(response, 409, "metric-conflict")

    bad: list[dict[str, Any]] = [
        {"confusion_matrices": [{"dataset": "x", "matrix": [[1, 2, 3], [4, 5, 6]]}]},
        {"confusion_matrices": [{"dataset": "x", "matrix": [[0, 0], [0, 0]]}]},
        {"regression": [{"dataset": "x", "targets": [1.0, 2.0], "predictions": [1.0]}]},
    ]
    for body in bad:
        response = client.post(f"{API}/models/fraud/versions/{version}/metrics", json=body)
        problem = assert_problem(response, 422)
        assert problem["errors"], problem
