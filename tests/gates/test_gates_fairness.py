"""Subgroup fairness: floors, gaps between slices, and per-slice regression."""

from collections.abc import Mapping
from typing import Any

import pytest

from app.gates import Direction, RuleResult, fairness


def check(
    slices: Mapping[str, float | None],
    *,
    floor: float | None = 0.85,
    max_gap: float | None = 0.05,
    direction: Direction = Direction.HIGHER,
    metric: str = "accuracy",
    **kwargs: Any,
) -> RuleResult:
    return fairness(
        rule=f"fairness:{metric}",
        metric=metric,
        direction=direction,
        slices=slices,
        floor=floor,
        max_gap=max_gap,
        **kwargs,
    )


def test_fairness_passes_when_all_slices_meet_floor_and_gap() -> None:
    result = check({"age<30": 0.90, "age>=30": 0.88})
    assert result.passed
    assert result.kind == "fairness"
    assert result.threshold == 0.85
    assert result.observed["gap"] == pytest.approx(0.02)
    assert result.observed["best_slice"] == "age<30"
    assert result.observed["worst_slice"] == "age>=30"
    assert "all 2 slices pass" in result.reason


def test_slice_below_floor_fails_naming_the_worst_slice() -> None:
    result = check({"a": 0.90, "b": 0.80, "c": 0.82}, max_gap=None)
    assert not result.passed
    assert "slice 'b' accuracy 0.8 is below the floor 0.85" in result.reason
    assert "(2 slices fail the floor)" in result.reason
    assert result.observed["below_floor"] == ["b", "c"]


def test_slice_exactly_at_the_floor_passes() -> None:
    assert check({"a": 0.85, "b": 0.86}).passed


def test_gap_too_large_fails_naming_best_and_worst() -> None:
    result = check({"a": 0.95, "b": 0.86, "c": 0.90})
    assert not result.passed
    assert "gap 0.09 between slice 'a' (0.95) and slice 'b' (0.86) exceeds 0.05" in result.reason


def test_gap_tolerates_floating_point_rounding() -> None:
    assert 0.8 - 0.7 > 0.1
    assert check({"a": 0.8, "b": 0.7}, floor=None, max_gap=0.1).passed


def test_lower_is_better_floor_is_a_ceiling() -> None:
    result = check(
        {"a": 0.05, "b": 0.12, "c": 0.11},
        floor=0.10,
        max_gap=None,
        direction=Direction.LOWER,
        metric="error_rate",
    )
    assert not result.passed
    assert "slice 'b' error_rate 0.12 is above the floor 0.1" in result.reason
    assert result.observed["worst_slice"] == "b"
    assert result.observed["best_slice"] == "a"
    assert check(
        {"a": 0.05, "b": 0.08}, floor=0.10, direction=Direction.LOWER, metric="error_rate"
    ).passed


def test_too_few_slices_fail() -> None:
    result = check({"all": 0.95})
    assert not result.passed
    assert "1 slice(s) evaluated; the rule needs at least 2" in result.reason
    assert check({"a": 0.9, "b": 0.9}, min_slices=3).passed is False
    assert check({"all": 0.95}, min_slices=1).passed


def test_undefined_slice_fails_naming_it() -> None:
    result = check({"a": 0.9, "b": None, "c": 0.89})
    assert not result.passed
    assert "'b'" in result.reason
    assert result.observed["undefined_slices"] == ["b"]


def test_slice_regression_against_production() -> None:
    production = {"a": 0.90, "b": 0.90, "c": 0.88}
    result = check(
        {"a": 0.93, "b": 0.86, "c": 0.84},
        floor=None,
        max_gap=None,
        production_slices=production,
        max_slice_regression=0.03,
    )
    assert not result.passed
    assert "slice 'b' accuracy went from 0.9 (production) to 0.86" in result.reason
    assert "(2 slices regressed)" in result.reason
    assert result.observed["regressed_slices"] == ["b", "c"]
    passing = check(
        {"a": 0.93, "b": 0.88, "c": 0.86},
        floor=None,
        max_gap=None,
        production_slices=production,
        max_slice_regression=0.03,
    )
    assert passing.passed
    assert passing.observed["compared_with_production"] is True


def test_dropping_a_production_slice_fails() -> None:
    result = check(
        {"a": 0.9, "b": 0.9},
        production_slices={"a": 0.9, "b": 0.9, "c": 0.7},
        max_slice_regression=0.01,
    )
    assert not result.passed
    assert "'c'" in result.reason
    assert result.observed["dropped_slices"] == ["c"]


def test_new_slice_without_production_baseline_is_listed_not_failed() -> None:
    result = check(
        {"a": 0.9, "b": 0.9, "new": 0.88},
        production_slices={"a": 0.9, "b": 0.89},
        max_slice_regression=0.01,
    )
    assert result.passed
    assert result.observed["no_baseline"] == ["new"]


def test_production_comparison_is_skipped_without_production_slices() -> None:
    result = check({"a": 0.9, "b": 0.9}, max_slice_regression=0.01)
    assert result.passed
    assert result.observed["compared_with_production"] is False


def test_all_failures_are_reported_together() -> None:
    result = check({"a": 0.99, "b": 0.70, "c": None})
    assert not result.passed
    assert len(result.observed["problems"]) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"floor": None, "max_gap": None}, "needs a floor"),
        ({"max_gap": -0.1}, "max_gap"),
        ({"floor": float("nan")}, "floor"),
        ({"min_slices": 0}, "min_slices"),
        ({"max_slice_regression": float("inf")}, "max_slice_regression"),
    ],
)
def test_invalid_fairness_policy_raises(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check({"a": 0.9, "b": 0.9}, **kwargs)
