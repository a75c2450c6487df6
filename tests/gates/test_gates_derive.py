"""Metrics derived from confusion matrices and regression pairs, against hand computation."""

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from app.gates import MetricValue, from_confusion_matrix, from_regression


def values(metrics: dict[str, MetricValue]) -> dict[str, float | None]:
    return {name: metric.value for name, metric in metrics.items()}


# MetricValue ------------------------------------------------------------------


def test_metric_value_accepts_finite_numbers_and_normalises_numpy() -> None:
    metric = MetricValue(np.float64(0.5))
    assert metric.value == 0.5
    assert type(metric.value) is float
    assert metric.defined


def test_undefined_metric_value_needs_a_reason() -> None:
    assert not MetricValue(None, "no data").defined
    with pytest.raises(ValueError, match="reason"):
        MetricValue(None)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_metric_value_refuses_non_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        MetricValue(bad)


def test_metric_value_refuses_non_numbers() -> None:
    with pytest.raises(TypeError):
        MetricValue(True)
    with pytest.raises(TypeError):
        MetricValue("0.5")  # type: ignore[arg-type]


# Binary -----------------------------------------------------------------------

# Rows are truth, columns predictions: TN=50, FP=10, FN=5, TP=35.
BINARY = [[50, 10], [5, 35]]


def test_binary_metrics_match_hand_computation() -> None:
    metrics = from_confusion_matrix(BINARY)
    assert set(metrics) == {"accuracy", "balanced_accuracy", "precision", "recall", "f1"}
    got = values(metrics)
    assert got["accuracy"] == pytest.approx(85 / 100)
    assert got["precision"] == pytest.approx(35 / 45)
    assert got["recall"] == pytest.approx(35 / 40)
    assert got["f1"] == pytest.approx(2 * 35 / (2 * 35 + 10 + 5))
    assert got["balanced_accuracy"] == pytest.approx((50 / 60 + 35 / 40) / 2)
    assert all(metric.reason is None for metric in metrics.values())


def test_binary_f1_is_harmonic_mean_of_precision_and_recall() -> None:
    got = values(from_confusion_matrix(BINARY))
    precision, recall = got["precision"], got["recall"]
    assert precision is not None
    assert recall is not None
    assert got["f1"] == pytest.approx(2 * precision * recall / (precision + recall))


def test_positive_label_selects_the_positive_class() -> None:
    got = values(from_confusion_matrix(BINARY, labels=["neg", "pos"], positive_label="neg"))
    assert got["precision"] == pytest.approx(50 / 55)
    assert got["recall"] == pytest.approx(50 / 60)
    assert got["accuracy"] == pytest.approx(0.85)


def test_positive_label_defaults_to_index_one() -> None:
    assert from_confusion_matrix(BINARY, labels=["neg", "pos"]) == from_confusion_matrix(
        BINARY, labels=["neg", "pos"], positive_label="pos"
    )


def test_no_positive_predictions_makes_precision_undefined() -> None:
    metrics = from_confusion_matrix([[10, 0], [5, 0]], labels=["ham", "spam"])
    precision = metrics["precision"]
    assert precision.value is None
    assert precision.reason is not None
    assert "no positive predictions" in precision.reason
    assert "'spam'" in precision.reason
    # Recall is still a measurement: none of the 5 positives was found.
    assert metrics["recall"] == MetricValue(0.0)
    assert metrics["f1"].value is None
    assert "precision" in (metrics["f1"].reason or "")


def test_no_positive_truths_makes_recall_undefined() -> None:
    metrics = from_confusion_matrix([[10, 3], [0, 0]])
    assert metrics["recall"].value is None
    assert "no positive examples" in (metrics["recall"].reason or "")
    assert metrics["precision"] == MetricValue(0.0)
    assert metrics["f1"].value is None
    assert "recall" in (metrics["f1"].reason or "")
    assert metrics["balanced_accuracy"].value is None
    assert metrics["accuracy"].value == pytest.approx(10 / 13)


def test_zero_true_positives_with_defined_components_gives_f1_zero() -> None:
    got = values(from_confusion_matrix([[5, 3], [2, 0]]))
    assert got["precision"] == 0.0
    assert got["recall"] == 0.0
    assert got["f1"] == 0.0


def test_undefined_is_never_zero_or_nan() -> None:
    for metric in from_confusion_matrix([[7, 0], [0, 0]]).values():
        if metric.value is None:
            assert metric.reason
        else:
            assert math.isfinite(metric.value)


# Multi-class ------------------------------------------------------------------

# True counts (rows) 6, 6, 8; predicted counts (columns) 7, 6, 7; diagonal 5, 3, 6.
THREE = [[5, 1, 0], [2, 3, 1], [0, 2, 6]]


def test_three_class_macro_metrics_match_hand_computation() -> None:
    metrics = from_confusion_matrix(THREE)
    assert set(metrics) == {
        "accuracy",
        "balanced_accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "precision_micro",
        "recall_micro",
        "f1_micro",
    }
    got = values(metrics)
    assert got["accuracy"] == pytest.approx(14 / 20)
    assert got["precision_macro"] == pytest.approx((5 / 7 + 3 / 6 + 6 / 7) / 3)
    assert got["recall_macro"] == pytest.approx((5 / 6 + 3 / 6 + 6 / 8) / 3)
    assert got["f1_macro"] == pytest.approx((10 / 13 + 6 / 12 + 12 / 15) / 3)
    assert got["balanced_accuracy"] == got["recall_macro"]


def test_micro_averages_equal_accuracy_and_differ_from_macro() -> None:
    got = values(from_confusion_matrix(THREE))
    assert got["precision_micro"] == got["recall_micro"] == got["f1_micro"] == got["accuracy"]
    assert got["precision_macro"] != pytest.approx(got["precision_micro"])


def test_macro_f1_is_mean_of_per_class_f1_not_f1_of_means() -> None:
    got = values(from_confusion_matrix(THREE))
    p, r = got["precision_macro"], got["recall_macro"]
    assert p is not None
    assert r is not None
    assert got["f1_macro"] != pytest.approx(2 * p * r / (p + r))


def test_class_never_predicted_makes_macro_precision_undefined() -> None:
    metrics = from_confusion_matrix(
        [[3, 1, 0], [1, 2, 0], [1, 1, 0]], labels=["cat", "dog", "bird"]
    )
    assert metrics["precision_macro"].value is None
    assert "'bird'" in (metrics["precision_macro"].reason or "")
    assert metrics["f1_macro"].value is None
    assert metrics["recall_macro"].value == pytest.approx((3 / 4 + 2 / 3 + 0 / 2) / 3)
    assert metrics["precision_micro"].value == pytest.approx(5 / 9)


def test_class_that_never_occurs_makes_macro_recall_undefined() -> None:
    metrics = from_confusion_matrix([[3, 1, 0], [1, 2, 1], [0, 0, 0]])
    assert metrics["recall_macro"].value is None
    assert "class index 2" in (metrics["recall_macro"].reason or "")
    assert metrics["balanced_accuracy"].value is None
    assert metrics["f1_macro"].value is None
    assert metrics["precision_macro"].value == pytest.approx((3 / 4 + 2 / 3 + 0 / 1) / 3)


def test_numpy_matrix_and_counts_are_accepted() -> None:
    assert from_confusion_matrix(np.array(THREE)) == from_confusion_matrix(THREE)
    numpy_counts = [[np.int64(v) for v in row] for row in THREE]
    assert from_confusion_matrix(numpy_counts) == from_confusion_matrix(THREE)


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        ([[1, 2, 3], [4, 5, 6]], "square"),
        ([[1, 2], [3]], "square"),
        ([[5]], "at least 2 x 2"),
        ([], "at least 2 x 2"),
        ([[1, -1], [0, 3]], "negative"),
        ([[1, 1.5], [0, 3]], "integer"),
        ([[1, 2.0], [0, 3]], "integer"),
        ([[1, True], [0, 3]], "integer"),
        ([[0, 0], [0, 0]], "all counts are zero"),
        ("abc", "list of rows"),
        ([[1, 2], "ab"], "row 1"),
        (np.array([[1.0, 2.0], [3.0, 4.0]]), "integer"),
    ],
)
def test_invalid_confusion_matrices_are_refused(matrix: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_confusion_matrix(matrix)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("labels", "positive_label", "message"),
    [
        (["a"], None, "1 label"),
        (["a", "b", "c"], None, "3 label"),
        (["a", "a"], None, "distinct"),
        ("ab", None, "list of strings"),
        ([1, 2], None, "list of strings"),
        (None, "b", "needs labels"),
        (["a", "b"], "c", "not one of the labels"),
    ],
)
def test_invalid_labels_are_refused(
    labels: Sequence[str] | None, positive_label: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        from_confusion_matrix(BINARY, labels=labels, positive_label=positive_label)


def test_positive_label_is_refused_for_multi_class() -> None:
    with pytest.raises(ValueError, match="binary"):
        from_confusion_matrix(THREE, labels=["a", "b", "c"], positive_label="a")


# Regression -------------------------------------------------------------------


def test_regression_metrics_match_hand_computation() -> None:
    targets = [3.0, -0.5, 2.0, 7.0]
    predictions = [2.5, 0.0, 2.0, 8.0]
    # Errors 0.5, -0.5, 0, -1.
    got = values(from_regression(targets, predictions))
    assert got["mae"] == pytest.approx(2.0 / 4)
    assert got["mse"] == pytest.approx(1.5 / 4)
    assert got["rmse"] == pytest.approx(math.sqrt(1.5 / 4))
    # Target mean 2.875, total sum of squares 29.1875.
    assert got["r2"] == pytest.approx(1 - 1.5 / 29.1875)


def test_regression_perfect_predictions() -> None:
    got = values(from_regression([1, 2, 3], [1, 2, 3]))
    assert got == {"mae": 0.0, "mse": 0.0, "rmse": 0.0, "r2": 1.0}


def test_regression_accepts_numpy_and_integers() -> None:
    mixed: list[Any] = [np.float32(1.0), 3, 4]
    got = from_regression(np.array([1, 2, 4]), mixed)
    assert got["mae"].value == pytest.approx(1 / 3)


def test_r2_is_undefined_for_constant_targets() -> None:
    metrics = from_regression([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    assert metrics["r2"].value is None
    assert "constant" in (metrics["r2"].reason or "")
    assert metrics["mae"].value == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("targets", "predictions", "message"),
    [
        ([1.0, 2.0], [1.0], "differ in length"),
        ([], [], "empty"),
        ([1.0, math.nan], [1.0, 2.0], "finite"),
        ([1.0, 2.0], [1.0, math.inf], "finite"),
        ([1.0, "2"], [1.0, 2.0], "must be a number"),
        ([1.0, True], [1.0, 2.0], "must be a number"),
        ("12", "12", "list of numbers"),
        ([1e200, 0.0], [-1e200, 0.0], "too large"),
    ],
)
def test_invalid_regression_input_is_refused(
    targets: object, predictions: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        from_regression(targets, predictions)  # type: ignore[arg-type]
