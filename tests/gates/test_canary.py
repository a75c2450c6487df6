"""Canary analysis: each statistic against scipy or a hand computation, and the
look/decision rules on constructed data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, spatial, stats

from app.gates.canary import (
    Action,
    AnalysisPlan,
    ArmData,
    Look,
    LookStatus,
    MetricKind,
    MetricSpec,
    Rates,
    Verdict,
    always_valid_p,
    decide,
    hodges_lehmann_shift,
    jensen_shannon_distance,
    judge,
    mann_whitney_z,
    msprt_log_lr,
    rate_statistics,
)

ERR = MetricSpec("errors", MetricKind.ERROR_RATE, critical=True, min_sample=100)
LAT = MetricSpec("latency", MetricKind.LATENCY, tolerance=0.05, min_sample=100)


def test_pooled_two_proportion_z_matches_hand_computation() -> None:
    diff, z, info = rate_statistics(30, 1000, 20, 1000, 0.0)
    pooled = 50 / 2000
    se = math.sqrt(pooled * (1 - pooled) * (2 / 1000))
    assert float(diff) == pytest.approx(0.01)
    assert float(z) == pytest.approx(0.01 / se)
    assert float(info) == pytest.approx(1 / se**2)


def test_unpooled_z_with_tolerance() -> None:
    _, z, _ = rate_statistics(30, 1000, 20, 1000, 0.005)
    se = math.sqrt(0.03 * 0.97 / 1000 + 0.02 * 0.98 / 1000)
    assert float(z) == pytest.approx((0.01 - 0.005) / se)


def test_no_events_is_no_evidence() -> None:
    _, z, info = rate_statistics(0, 500, 0, 500, 0.0)
    assert float(z) == 0.0
    assert float(info) == 0.0
    assert float(always_valid_p(0.0, 0.0, 0.01)) == 1.0


@pytest.mark.parametrize(
    ("b", "info", "tau"), [(0.0, 100.0, 0.1), (25.0, 400.0, 0.1), (-5.0, 50.0, 0.3)]
)
def test_mixture_likelihood_ratio_matches_numerical_integration(
    b: float, info: float, tau: float
) -> None:
    # Lambda = E_theta~HalfNormal(tau)[exp(theta B - theta^2 t / 2)]
    def integrand(theta: float) -> float:
        return math.exp(theta * b - theta**2 * info / 2) * 2 * stats.norm.pdf(theta, 0, tau)

    expected, _ = integrate.quad(integrand, 0, np.inf)
    assert float(np.exp(msprt_log_lr(b, info, tau))) == pytest.approx(expected, rel=1e-6)


def test_mann_whitney_z_matches_scipy() -> None:
    rng = np.random.default_rng(7)
    x = rng.lognormal(3.1, 0.5, 300)
    y = rng.lognormal(3.0, 0.5, 400)
    z, info = mann_whitney_z(x, y)
    expected = stats.mannwhitneyu(
        x, y, alternative="greater", method="asymptotic", use_continuity=False
    ).pvalue
    assert stats.norm.sf(z) == pytest.approx(expected, rel=1e-9)
    assert info == pytest.approx(300 * 400 / 701)


def test_mann_whitney_z_with_ties_matches_scipy() -> None:
    x = np.array([1, 2, 2, 3, 3, 3, 4, 5], dtype=float)
    y = np.array([1, 1, 2, 2, 3, 3], dtype=float)
    z, _ = mann_whitney_z(x, y)
    expected = stats.mannwhitneyu(
        x, y, alternative="greater", method="asymptotic", use_continuity=False
    ).pvalue
    assert stats.norm.sf(z) == pytest.approx(expected, rel=1e-9)


def test_hodges_lehmann_recovers_a_multiplicative_shift() -> None:
    rng = np.random.default_rng(3)
    y = rng.lognormal(3.0, 0.4, 2000)
    x = rng.lognormal(3.0, 0.4, 2000) * 1.25
    assert hodges_lehmann_shift(x, y) == pytest.approx(0.25, abs=0.04)


def test_jensen_shannon_distance_matches_scipy() -> None:
    p = np.array([10.0, 20.0, 70.0])
    q = np.array([30.0, 30.0, 40.0])
    assert jensen_shannon_distance(p, q) == pytest.approx(
        float(spatial.distance.jensenshannon(p, q, base=2))
    )


def _arm(errors: int, n: int, latency: np.ndarray | None = None) -> ArmData:
    return ArmData(
        errors=Rates(errors, n),
        latency_sample=tuple(latency) if latency is not None else (),
    )


def test_too_few_observations_is_nodata_and_holds() -> None:
    plan = AnalysisPlan((ERR,))
    look = judge(plan, _arm(5, 50), _arm(5, 500), look=1)
    assert look.status is LookStatus.NODATA
    assert look.results[0].verdict is Verdict.NODATA
    assert "judged from 100" in look.results[0].reason
    decision = decide(plan, [look], hold_satisfied=True)
    assert decision.action is Action.HOLD
    assert "waiting" in decision.reason or "no analysis" in decision.reason


def test_a_clearly_worse_error_rate_fails_a_critical_metric_and_aborts() -> None:
    plan = AnalysisPlan((ERR, LAT))
    rng = np.random.default_rng(1)
    lat = rng.lognormal(3, 0.5, 500)
    look = judge(plan, _arm(60, 2000, lat), _arm(20, 2000, lat), look=3)
    errors = look.results[0]
    assert errors.verdict is Verdict.FAIL
    assert errors.p_value is not None
    assert errors.p_value <= plan.alpha_of(ERR)
    assert errors.alpha == pytest.approx(0.025)
    assert look.critical_failure
    assert look.status is LookStatus.FAIL
    decision = decide(plan, [look], hold_satisfied=False)
    assert decision.action is Action.ABORT
    assert "errors" in decision.reason
    assert "error rate canary" in decision.reason


def test_the_sequential_p_is_more_cautious_than_the_fixed_one() -> None:
    plan = AnalysisPlan((ERR,))
    look = judge(plan, _arm(30, 2000), _arm(20, 2000), look=1)
    result = look.results[0]
    assert result.fixed_p_value is not None
    assert result.p_value is not None
    assert result.p_value > result.fixed_p_value


def test_equal_arms_pass_and_advance_once_the_hold_is_over() -> None:
    plan = AnalysisPlan((ERR, LAT))
    rng = np.random.default_rng(2)
    look = judge(
        plan,
        _arm(20, 2000, rng.lognormal(3, 0.5, 500)),
        _arm(20, 2000, rng.lognormal(3, 0.5, 500)),
        look=1,
    )
    assert look.status is LookStatus.PASS
    assert look.score == 100.0
    assert decide(plan, [look], hold_satisfied=False).action is Action.HOLD
    assert decide(plan, [look], hold_satisfied=True).action is Action.ADVANCE


def test_slower_canary_fails_latency_and_failure_limit_counts_looks_in_a_row() -> None:
    plan = AnalysisPlan((ERR, LAT), marginal_score=75, failure_limit=2)
    rng = np.random.default_rng(4)
    slow = judge(
        plan,
        _arm(20, 2000, rng.lognormal(3, 0.5, 800) * 1.5),
        _arm(20, 2000, rng.lognormal(3, 0.5, 800)),
        look=1,
    )
    latency = slow.results[1]
    assert latency.verdict is Verdict.FAIL
    assert latency.effect is not None
    assert latency.effect > 0.3
    assert slow.score == 50.0
    assert slow.status is LookStatus.FAIL
    first = decide(plan, [slow], hold_satisfied=True)
    assert first.action is Action.HOLD
    assert "1 of 2" in first.reason
    second = decide(plan, [slow, slow], hold_satisfied=True)
    assert second.action is Action.ABORT
    assert "2 failed look(s) in a row" in second.reason
    passing = Look(2, (), 100.0, LookStatus.PASS, False)
    assert decide(plan, [slow, passing, slow], hold_satisfied=True).action is Action.HOLD


def test_marginal_score_holds() -> None:
    plan = AnalysisPlan(
        (
            MetricSpec("a", MetricKind.ERROR_RATE, min_sample=10, weight=1),
            MetricSpec("b", MetricKind.LATENCY, min_sample=10, weight=9),
        ),
        pass_score=95,
        marginal_score=5,
    )
    rng = np.random.default_rng(5)
    look = judge(
        plan,
        _arm(200, 1000, rng.lognormal(3, 0.5, 300)),
        _arm(20, 1000, rng.lognormal(3, 0.5, 300)),
        look=1,
    )
    assert look.score == 90.0
    assert look.status is LookStatus.MARGINAL
    assert decide(plan, [look], hold_satisfied=True).action is Action.HOLD


def test_accuracy_fails_when_canary_is_less_accurate() -> None:
    spec = MetricSpec("acc", MetricKind.ACCURACY, min_sample=100, critical=True)
    plan = AnalysisPlan((spec,))
    look = judge(
        plan,
        ArmData(correct=Rates(1700, 2000)),
        ArmData(correct=Rates(1860, 2000)),
        look=1,
    )
    assert look.results[0].verdict is Verdict.FAIL
    assert look.results[0].effect == pytest.approx(0.08)
    better = judge(
        plan, ArmData(correct=Rates(1900, 2000)), ArmData(correct=Rates(1860, 2000)), look=1
    )
    assert better.results[0].verdict is Verdict.PASS


def test_prediction_distribution_needs_distance_and_significance() -> None:
    spec = MetricSpec("pred", MetricKind.PREDICTION_DISTRIBUTION, tolerance=0.1, min_sample=100)
    plan = AnalysisPlan((spec,))
    same = judge(
        plan,
        ArmData(predictions={"fraud": 100, "ok": 900}),
        ArmData(predictions={"fraud": 105, "ok": 895}),
        look=1,
    )
    assert same.results[0].verdict is Verdict.PASS
    shifted = judge(
        plan,
        ArmData(predictions={"fraud": 400, "ok": 600}),
        ArmData(predictions={"fraud": 100, "ok": 900}),
        look=1,
    )
    result = shifted.results[0]
    assert result.verdict is Verdict.FAIL
    assert result.effect is not None
    assert result.effect > 0.1
    # Look k spends alpha / (k (k + 1)).
    later = judge(
        plan,
        ArmData(predictions={"fraud": 400, "ok": 600}),
        ArmData(predictions={"fraud": 100, "ok": 900}),
        look=4,
    )
    assert later.results[0].alpha == pytest.approx(0.05 / 20)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tolerance": -0.1},
        {"weight": 0},
        {"min_sample": 0},
        {"tau": 0.0},
        {"tolerance": float("nan")},
    ],
)
def test_bad_metric_specs_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="metric 'x'"):
        MetricSpec("x", MetricKind.ERROR_RATE, **kwargs)  # type: ignore[arg-type]


def test_bad_plans_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one metric"):
        AnalysisPlan(())
    with pytest.raises(ValueError, match="unique"):
        AnalysisPlan((ERR, ERR))
    with pytest.raises(ValueError, match="alpha"):
        AnalysisPlan((ERR,), alpha=0.7)
    with pytest.raises(ValueError, match="marginal_score"):
        AnalysisPlan((ERR,), pass_score=50, marginal_score=60)
    with pytest.raises(ValueError, match="failure_limit"):
        AnalysisPlan((ERR,), failure_limit=0)


def test_results_serialise_to_json_values() -> None:
    plan = AnalysisPlan((ERR,))
    data = judge(plan, _arm(30, 2000), _arm(20, 2000), look=1).to_dict()
    assert data["status"] == "pass"
    assert data["metrics"][0]["samples"] == [2000, 2000]
    assert isinstance(data["metrics"][0]["p_value"], float)
