"""Threshold, no-regression, lineage and artifact rules, and RuleResult itself."""

import json
import math
from typing import Any, Literal

import numpy as np
import pytest

from app.gates import (
    Direction,
    RuleResult,
    artifact_intact,
    lineage_complete,
    no_regression,
    threshold,
)

HIGHER, LOWER = Direction.HIGHER, Direction.LOWER


def assert_json(result: RuleResult) -> dict[str, Any]:
    data = result.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    return data


# RuleResult -------------------------------------------------------------------


def test_rule_result_normalises_observed_to_plain_json() -> None:
    result = RuleResult(
        "r",
        "threshold",
        np.bool_(True),  # type: ignore[arg-type]
        "ok",
        {"a": (1, 2), "b": np.float64(0.5), "c": np.int64(3), "d": {"e": Direction.LOWER}},
        threshold=np.float64(0.25),
    )
    assert result.passed is True
    assert result.observed == {"a": [1, 2], "b": 0.5, "c": 3, "d": {"e": "lower"}}
    assert type(result.observed["c"]) is int
    assert type(result.observed["d"]["e"]) is str
    assert result.threshold == 0.25
    assert assert_json(result)["observed"]["a"] == [1, 2]


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_rule_result_refuses_non_finite_numbers(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        RuleResult("r", "threshold", True, "ok", {"x": [1.0, bad]})
    with pytest.raises(ValueError, match="finite"):
        RuleResult("r", "significance", True, "ok", p_value=bad)


def test_rule_result_refuses_unserialisable_observed() -> None:
    with pytest.raises(TypeError):
        RuleResult("r", "threshold", True, "ok", {"x": object()})
    with pytest.raises(TypeError):
        RuleResult("r", "threshold", True, "ok", {1: "x"})  # type: ignore[dict-item]


def test_rule_result_to_dict_is_a_copy_and_results_are_hashable() -> None:
    result = RuleResult("r", "approvals", True, "ok", {"names": ["a"]})
    data = result.to_dict()
    data["observed"]["names"].append("b")
    assert result.observed == {"names": ["a"]}
    assert hash(result) == hash(RuleResult("r", "approvals", True, "ok", {"names": ["a"]}))
    assert set(data) == {
        "rule",
        "kind",
        "passed",
        "reason",
        "observed",
        "threshold",
        "delta",
        "p_value",
    }


# threshold --------------------------------------------------------------------


def check_threshold(
    value: float | None,
    limit: float,
    direction: Direction = HIGHER,
    undefined_reason: str | None = None,
    metric: str = "accuracy",
) -> RuleResult:
    return threshold(
        rule=f"threshold:{metric}",
        metric=metric,
        dataset="test",
        value=value,
        undefined_reason=undefined_reason,
        limit=limit,
        direction=direction,
    )


def test_threshold_higher_is_better_passes_at_or_above_the_limit() -> None:
    result = check_threshold(0.912, 0.9)
    assert result.passed
    assert result.kind == "threshold"
    assert result.rule == "threshold:accuracy"
    assert result.threshold == 0.9
    assert result.reason.startswith("accuracy 0.912 >= 0.9 on dataset 'test'")
    assert result.observed["value"] == 0.912
    assert check_threshold(0.9, 0.9).passed
    assert_json(result)


def test_threshold_higher_is_better_fails_below() -> None:
    result = check_threshold(0.85, 0.9)
    assert not result.passed
    assert "accuracy 0.85 < 0.9" in result.reason


def test_threshold_lower_is_better() -> None:
    assert check_threshold(0.3, 0.5, LOWER, metric="rmse").passed
    assert check_threshold(0.5, 0.5, LOWER, metric="rmse").passed
    result = check_threshold(0.7, 0.5, LOWER, metric="rmse")
    assert not result.passed
    assert "rmse 0.7 > 0.5" in result.reason
    assert "lower is better" in result.reason


def test_threshold_close_values_are_shown_distinctly() -> None:
    result = check_threshold(0.8999999999, 0.9)
    assert not result.passed
    assert "0.8999999999 < 0.9" in result.reason


def test_threshold_missing_metric_fails() -> None:
    result = check_threshold(None, 0.9)
    assert not result.passed
    assert result.reason == "accuracy missing on dataset 'test'"
    assert result.observed["value"] is None


def test_threshold_undefined_metric_fails_with_its_reason() -> None:
    reason = "precision is undefined: no positive predictions (class index 1)"
    result = check_threshold(None, 0.5, undefined_reason=reason, metric="precision")
    assert not result.passed
    assert reason in result.reason
    assert "'test'" in result.reason
    assert result.observed["undefined_reason"] == reason


def test_threshold_non_finite_value_fails_without_raising() -> None:
    result = check_threshold(math.nan, 0.9)
    assert not result.passed
    assert "not a finite number" in result.reason
    assert_json(result)


@pytest.mark.parametrize("limit", [math.nan, math.inf, "0.9", None])
def test_threshold_invalid_limit_raises(limit: Any) -> None:
    with pytest.raises(ValueError, match="limit"):
        check_threshold(0.9, limit)


def test_threshold_invalid_direction_raises() -> None:
    with pytest.raises(ValueError, match="direction"):
        check_threshold(0.9, 0.9, "up")  # type: ignore[arg-type]


# no_regression ----------------------------------------------------------------


def check_no_regression(
    candidate: float | None,
    production: float | None,
    delta: float = 0.0,
    direction: Direction = HIGHER,
    has_production: bool = True,
    when_no_production: Literal["pass", "fail"] = "pass",
    metric: str = "accuracy",
) -> RuleResult:
    return no_regression(
        rule=f"no_regression:{metric}",
        metric=metric,
        dataset="test",
        candidate=candidate,
        production=production,
        delta=delta,
        direction=direction,
        has_production=has_production,
        when_no_production=when_no_production,
    )


def test_no_regression_higher_is_better() -> None:
    result = check_no_regression(0.91, 0.88, delta=0.02)
    assert result.passed
    assert result.kind == "no_regression"
    assert result.delta == 0.02
    assert result.threshold == pytest.approx(0.90)
    assert result.observed["improvement"] == pytest.approx(0.03)
    assert "production 0.88" in result.reason
    assert_json(result)
    failed = check_no_regression(0.89, 0.88, delta=0.02)
    assert not failed.passed
    assert "0.89 < 0.9 required" in failed.reason


def test_no_regression_equal_to_production_passes_with_zero_delta() -> None:
    assert check_no_regression(0.88, 0.88).passed
    assert not check_no_regression(0.8799, 0.88).passed


def test_no_regression_tolerates_floating_point_rounding_of_the_bound() -> None:
    # The roundings this rule must not trip over.
    assert 0.2 + 0.1 > 0.3
    assert 0.3 - 0.1 < 0.2
    assert check_no_regression(0.3, 0.2, delta=0.1).passed
    assert check_no_regression(0.2, 0.3, delta=0.1, direction=LOWER, metric="rmse").passed


def test_no_regression_negative_delta_tolerates_a_small_loss() -> None:
    assert check_no_regression(0.875, 0.88, delta=-0.01).passed
    assert not check_no_regression(0.865, 0.88, delta=-0.01).passed


def test_no_regression_lower_is_better() -> None:
    assert check_no_regression(0.40, 0.50, delta=0.05, direction=LOWER, metric="rmse").passed
    result = check_no_regression(0.47, 0.50, delta=0.05, direction=LOWER, metric="rmse")
    assert not result.passed
    assert result.threshold == pytest.approx(0.45)
    assert "0.47 > 0.45 required" in result.reason
    # Negative delta: latency may grow by up to 5 ms.
    assert check_no_regression(
        104.0, 100.0, delta=-5.0, direction=LOWER, metric="latency_ms"
    ).passed


@pytest.mark.parametrize("policy", ["pass", "fail"])
def test_no_regression_without_production_follows_policy(
    policy: Literal["pass", "fail"],
) -> None:
    result = check_no_regression(0.9, None, has_production=False, when_no_production=policy)
    assert result.passed is (policy == "pass")
    assert "no production model" in result.reason
    assert result.observed["when_no_production"] == policy


def test_no_regression_production_without_the_metric_fails() -> None:
    result = check_no_regression(0.9, None)
    assert not result.passed
    assert result.reason == "production accuracy missing on dataset 'test'"


def test_no_regression_candidate_without_the_metric_fails() -> None:
    result = check_no_regression(None, 0.9)
    assert not result.passed
    assert result.reason == "candidate accuracy missing on dataset 'test'"
    both = check_no_regression(None, None)
    assert "candidate" in both.reason
    assert "production" in both.reason


def test_no_regression_invalid_policy_raises() -> None:
    with pytest.raises(ValueError, match="delta"):
        check_no_regression(0.9, 0.8, delta=math.nan)
    with pytest.raises(ValueError, match="when_no_production"):
        check_no_regression(0.9, 0.8, when_no_production="skip")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="has_production"):
        check_no_regression(0.9, 0.8, has_production=False)


# lineage_complete -------------------------------------------------------------

LINEAGE = {
    "git_commit": "abc123",
    "training_data": "s3://bucket/train.parquet",
    "params": {"lr": 0.1},
    "seed": 0,
    "deterministic": False,
    "owner": "  ",
    "tags": [],
    "notes": None,
    "data": {"train_uri": "s3://x", "eval_uri": ""},
}


def test_lineage_complete_passes_when_every_field_has_a_value() -> None:
    result = lineage_complete(
        rule="lineage",
        lineage=LINEAGE,
        required=["git_commit", "training_data", "params", "seed", "deterministic"],
    )
    assert result.passed
    assert result.kind == "lineage_complete"
    assert result.observed["missing"] == []
    assert_json(result)


def test_lineage_complete_lists_every_missing_or_blank_field() -> None:
    result = lineage_complete(
        rule="lineage",
        lineage=LINEAGE,
        required=["git_commit", "owner", "tags", "notes", "dataset_hash", "params"],
    )
    assert not result.passed
    # An empty list is a value (presence, not truthiness: issue 14, item 9).
    assert result.observed["missing"] == ["owner", "notes", "dataset_hash"]
    for name in ("'owner'", "'notes'", "'dataset_hash'"):
        assert name in result.reason
    assert "git_commit" not in result.reason
    assert "tags" not in result.reason


def test_lineage_complete_counts_empty_containers_as_present() -> None:
    lineage = {"hyperparameters": {}, "extra": [], "seed": 0, "dirty": False, "blank": ""}
    result = lineage_complete(
        rule="lineage", lineage=lineage, required=["hyperparameters", "extra", "seed", "dirty"]
    )
    assert result.passed
    assert not lineage_complete(rule="l", lineage=lineage, required=["blank"]).passed
    assert not lineage_complete(rule="l", lineage={"seed": None}, required=["seed"]).passed


def test_lineage_complete_reaches_into_nested_fields() -> None:
    result = lineage_complete(
        rule="lineage", lineage=LINEAGE, required=["data.train_uri", "data.eval_uri", "data.x"]
    )
    assert result.observed["missing"] == ["data.eval_uri", "data.x"]


def test_lineage_complete_with_nothing_required_passes_and_duplicates_collapse() -> None:
    assert lineage_complete(rule="l", lineage={}, required=[]).passed
    result = lineage_complete(rule="l", lineage={}, required=["a", "a"])
    assert result.observed["missing"] == ["a"]


# artifact_intact --------------------------------------------------------------

DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def check_artifact(
    present: bool = True,
    expected: str | None = DIGEST,
    observed: str | None = DIGEST,
    detail: str | None = None,
) -> RuleResult:
    return artifact_intact(
        rule="artifact",
        present=present,
        sha256_expected=expected,
        sha256_observed=observed,
        detail=detail,
    )


def test_artifact_intact_when_present_and_matching() -> None:
    result = check_artifact()
    assert result.passed
    assert result.kind == "artifact_intact"
    assert DIGEST in result.reason
    assert_json(result)


def test_artifact_digest_comparison_ignores_case_and_prefix() -> None:
    assert check_artifact(expected=DIGEST.upper(), observed=f"sha256:{DIGEST}").passed


def test_artifact_mismatch_fails() -> None:
    other = "0" * 64
    result = check_artifact(observed=other)
    assert not result.passed
    assert "mismatch" in result.reason
    assert other in result.reason


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"present": False}, "missing from storage"),
        ({"expected": None}, "no sha256 was recorded"),
        ({"observed": None}, "not computed"),
        ({"expected": "abc"}, "not a sha256 digest"),
        ({"observed": "z" * 64}, "not a sha256 digest"),
    ],
)
def test_artifact_that_cannot_be_verified_fails(kwargs: dict[str, Any], message: str) -> None:
    result = check_artifact(**kwargs)
    assert not result.passed
    assert message in result.reason


def test_artifact_detail_is_reported() -> None:
    result = check_artifact(present=False, observed=None, detail="NoSuchKey from S3")
    assert "NoSuchKey from S3" in result.reason
    assert result.observed["detail"] == "NoSuchKey from S3"
