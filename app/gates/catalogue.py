"""Which way is "better" for each metric.

Gates compare numbers (``>=`` a floor, no worse than production), so every metric
a policy names must have a direction. The catalogue holds the well-known names;
a policy may override any of them; and a small suffix rule covers the common
naming habits (``*_ms``, ``*_loss``, ...) so that teams need not register every
latency or loss metric. A name that none of these recognise yields ``None``: the
caller must reject the policy rather than guess, because a wrong guess silently
turns a gate upside down.

Names are matched exactly (case-sensitive): metric names are identifiers, and a
lenient match would make ``MAP`` and ``map`` two spellings of one key elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class Direction(StrEnum):
    """Whether a larger or a smaller value of a metric is better."""

    HIGHER = "higher"
    LOWER = "lower"


_HIGHER_IS_BETTER = (
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
)

_LOWER_IS_BETTER = (
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
)

METRIC_CATALOGUE: Mapping[str, Direction] = MappingProxyType(
    {
        **dict.fromkeys(_HIGHER_IS_BETTER, Direction.HIGHER),
        **dict.fromkeys(_LOWER_IS_BETTER, Direction.LOWER),
    }
)
"""The default direction of every metric Modelgate knows by name (read-only)."""

LOWER_IS_BETTER_SUFFIXES: tuple[str, ...] = ("_ms", "_seconds", "_latency", "_error", "_loss")
"""Name endings that mean "lower is better" for metrics outside the catalogue."""


def direction_of(metric: str, overrides: Mapping[str, Direction] | None = None) -> Direction | None:
    """Resolve a metric's direction: policy override, then catalogue, then suffix rule.

    Returns ``None`` for a name nothing recognises; callers turn that into a
    validation error so that a policy never gates on a metric of unknown sense.
    """
    if overrides is not None and metric in overrides:
        return Direction(overrides[metric])
    known = METRIC_CATALOGUE.get(metric)
    if known is not None:
        return known
    if metric.endswith(LOWER_IS_BETTER_SUFFIXES):
        return Direction.LOWER
    return None
