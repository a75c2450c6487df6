"""Metric directions: catalogue, overrides and the suffix rule."""

import pytest

from app.gates import LOWER_IS_BETTER_SUFFIXES, METRIC_CATALOGUE, Direction, direction_of

HIGHER = [
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_micro",
    "recall_micro",
    "f1_micro",
    "auc",
    "roc_auc",
    "pr_auc",
    "average_precision",
    "r2",
    "ndcg",
    "map",
    "top_k_accuracy",
]
LOWER = [
    "rmse",
    "mae",
    "mse",
    "mape",
    "log_loss",
    "brier_score",
    "calibration_error",
    "ece",
    "latency_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "error_rate",
    "false_positive_rate",
    "false_negative_rate",
]


def test_catalogue_holds_exactly_the_documented_metrics() -> None:
    assert set(METRIC_CATALOGUE) == set(HIGHER) | set(LOWER)
    assert all(METRIC_CATALOGUE[name] is Direction.HIGHER for name in HIGHER)
    assert all(METRIC_CATALOGUE[name] is Direction.LOWER for name in LOWER)


def test_catalogue_is_read_only() -> None:
    with pytest.raises(TypeError):
        METRIC_CATALOGUE["accuracy"] = Direction.LOWER  # type: ignore[index]


@pytest.mark.parametrize("name", HIGHER + LOWER)
def test_direction_of_catalogue_names(name: str) -> None:
    assert direction_of(name) is METRIC_CATALOGUE[name]


def test_override_wins_over_catalogue_and_suffix() -> None:
    overrides = {"accuracy": Direction.LOWER, "queue_ms": Direction.HIGHER}
    assert direction_of("accuracy", overrides) is Direction.LOWER
    assert direction_of("queue_ms", overrides) is Direction.HIGHER
    assert direction_of("recall", overrides) is Direction.HIGHER


def test_override_given_as_plain_string_is_coerced() -> None:
    overrides = {"custom": "lower"}
    assert direction_of("custom", overrides) is Direction.LOWER  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    ["queue_ms", "train_seconds", "p99_latency", "mean_absolute_error", "hinge_loss"],
)
def test_suffix_rule_means_lower_is_better(name: str) -> None:
    assert name.endswith(LOWER_IS_BETTER_SUFFIXES)
    assert direction_of(name) is Direction.LOWER


@pytest.mark.parametrize("name", ["throughput", "Accuracy", "ms", "loss_weight", ""])
def test_unknown_names_have_no_direction(name: str) -> None:
    assert direction_of(name) is None


def test_direction_is_a_str_enum() -> None:
    assert Direction("higher") is Direction.HIGHER
    assert f"{Direction.LOWER}" == "lower"
