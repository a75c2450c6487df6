"""The pure functions of shadow and A/B analysis, and the ``shadow_agreement`` rule kind."""

from __future__ import annotations

import math

import pytest
from pydantic import TypeAdapter, ValidationError
from scipy import stats

from app.gates import registry
from app.gates.ab import (
    compare_latency,
    compare_rates,
    confidence_sequence_radius,
    two_sided_always_valid_p,
)
from app.gates.canary import Rates
from app.gates.rules.shadow_agreement import ShadowAgreementRule
from app.gates.shadow import (
    ShadowPairs,
    agreement_lower_bound,
    distribution_comparison,
    mae_upper_bound,
    shadow_agreement,
    two_proportion_test,
)
from tests.gates.facts import Facts, Version

RULE = TypeAdapter(registry.Rule)


def test_the_rule_kind_is_registered_and_validated() -> None:
    rule = RULE.validate_python({"kind": "shadow_agreement", "min_agreement": 0.9})
    assert registry.name_of(rule) == "shadow_agreement"
    assert isinstance(rule, ShadowAgreementRule)
    assert rule.min_pairs == 500
    with pytest.raises(ValidationError, match="min_agreement, max_mae or both"):
        RULE.validate_python({"kind": "shadow_agreement"})
    with pytest.raises(ValidationError):
        RULE.validate_python({"kind": "shadow_agreement", "min_agreement": 1.5})
    with pytest.raises(ValidationError):
        RULE.validate_python({"kind": "shadow_agreement", "max_mae": -1})


def test_the_rule_reads_the_pairs_of_its_window() -> None:
    rule = RULE.validate_python(
        {"kind": "shadow_agreement", "min_agreement": 0.9, "min_pairs": 100, "window_hours": 6}
    )
    facts = Facts(
        candidate=Version(version=4),
        shadow=ShadowPairs(pairs=1000, class_pairs=1000, agreeing=950),
    )
    result = registry.evaluate(rule, facts)
    assert facts.shadow_hours == [6]
    assert result.passed is True
    bound = stats.beta.ppf(0.05, 950, 51)
    assert result.observed["agreement_lower_bound"] == pytest.approx(bound)
    assert result.reason == (
        f"shadow version 4: agreement 950/1000 = 95.0000%, lower 0.95 bound {bound:.4%} >= 90.0000%"
    )
    facts.shadow = None
    failed = registry.evaluate(rule, facts)
    assert failed.passed is False
    assert "no request was scored by version 4 in shadow" in failed.reason


def test_agreement_is_judged_on_the_lower_bound_not_the_estimate() -> None:
    # 91 % observed over 200 pairs is not evidence of at least 90 %.
    result = shadow_agreement(
        rule="r", pairs=ShadowPairs(pairs=200, class_pairs=200, agreeing=182),
        min_agreement=0.9, min_pairs=100, max_mae=None, alpha=0.05, shadow_version=2,
    )  # fmt: skip
    assert result.passed is False
    assert result.observed["agreement"] == pytest.approx(0.91)
    assert agreement_lower_bound(182, 200, 0.05) < 0.9
    assert agreement_lower_bound(0, 200, 0.05) == 0.0
    assert agreement_lower_bound(200, 200, 0.05) == pytest.approx(0.05 ** (1 / 200))


def test_mean_absolute_difference_uses_the_upper_bound_with_alpha_split() -> None:
    diffs = [0.1, 0.2, 0.3, 0.2] * 50
    n, s, sq = len(diffs), sum(diffs), sum(d * d for d in diffs)
    pairs = ShadowPairs(
        pairs=n, class_pairs=0, agreeing=0, value_pairs=n, abs_diff_sum=s, abs_diff_sq_sum=sq
    )
    result = shadow_agreement(
        rule="r", pairs=pairs, min_agreement=None, min_pairs=100, max_mae=0.25, alpha=0.05,
        shadow_version=2,
    )  # fmt: skip
    mean = s / n
    sd = math.sqrt((sq - n * mean**2) / (n - 1))
    upper = mean + stats.t.ppf(0.95, n - 1) * sd / math.sqrt(n)
    assert result.observed["mae_upper_bound"] == pytest.approx(upper)
    assert result.passed is True
    both = shadow_agreement(
        rule="r", pairs=pairs, min_agreement=0.5, min_pairs=100, max_mae=0.25, alpha=0.05,
        shadow_version=2,
    )  # fmt: skip
    # Two bounds: each at alpha / 2; no class pairs fail the agreement part.
    assert both.observed["mae_upper_bound"] == pytest.approx(
        mean + stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    )
    assert both.passed is False
    assert mae_upper_bound(1, 0.1, 0.01, 0.05) is None


def test_policy_numbers_are_checked() -> None:
    pairs = ShadowPairs(pairs=1, class_pairs=1, agreeing=1)
    with pytest.raises(ValueError, match="alpha"):
        shadow_agreement(rule="r", pairs=pairs, min_agreement=0.5, min_pairs=1, max_mae=None,
                         alpha=0.7, shadow_version=1)  # fmt: skip
    with pytest.raises(ValueError, match="agreeing"):
        ShadowPairs(pairs=1, class_pairs=1, agreeing=2)


def test_two_proportions_and_distributions() -> None:
    out = two_proportion_test(Rates(10, 100), Rates(20, 100))
    assert out["difference"] == pytest.approx(0.1)
    expected = stats.chi2_contingency([[10, 90], [20, 80]], correction=False).pvalue
    assert out["p_value"] == pytest.approx(expected)
    assert two_proportion_test(Rates(0, 0), Rates(1, 10))["p_value"] is None
    assert two_proportion_test(Rates(0, 10), Rates(0, 10))["p_value"] == 1.0
    same = distribution_comparison({"a": 10, "b": 30}, {"a": 20, "b": 60})
    assert same["jensen_shannon"] == pytest.approx(0.0, abs=1e-12)
    assert same["p_value"] == pytest.approx(1.0)
    apart = distribution_comparison({"a": 100}, {"b": 100})
    assert apart["jensen_shannon"] == pytest.approx(1.0)
    assert apart["p_value"] < 1e-10


def test_ab_rates_report_effect_intervals_and_the_better_arm() -> None:
    r = compare_rates(
        "accuracy", Rates(2400, 3000), Rates(2550, 3000), alpha=0.05, min_sample=100,
        lower_is_better=False, tau=0.02,
    )  # fmt: skip
    assert r.effect == pytest.approx(0.05)
    assert r.significant is True
    assert r.better == "b"
    assert r.confidence_interval is not None
    assert r.fixed_confidence_interval is not None
    lo, hi = r.confidence_interval
    flo, fhi = r.fixed_confidence_interval
    assert lo < flo < 0.05 < fhi < hi
    se = math.sqrt(0.8 * 0.2 / 3000 + 0.85 * 0.15 / 3000)
    assert fhi - 0.05 == pytest.approx(stats.norm.isf(0.025) * se)
    assert hi - 0.05 == pytest.approx(confidence_sequence_radius(1 / se**2, 0.02, 0.05))
    few = compare_rates("error_rate", Rates(0, 10), Rates(5, 10), alpha=0.05, min_sample=100,
                        lower_is_better=True, tau=0.01)  # fmt: skip
    assert few.significant is False
    assert few.p_value is None
    none = compare_rates("error_rate", Rates(0, 500), Rates(0, 500), alpha=0.05, min_sample=100,
                         lower_is_better=True, tau=0.01)  # fmt: skip
    assert none.p_value == 1.0
    assert none.significant is False


def test_the_two_sided_always_valid_p_is_symmetric_and_at_least_the_fixed_one() -> None:
    for z in (0.5, 2.0, 4.0):
        info = 10_000.0
        p_plus = float(two_sided_always_valid_p(z * math.sqrt(info), info, 0.01))
        p_minus = float(two_sided_always_valid_p(-z * math.sqrt(info), info, 0.01))
        assert p_plus == pytest.approx(p_minus)
        assert p_plus >= 2 * stats.norm.sf(z)


def test_ab_latency_reports_the_probability_of_superiority() -> None:
    a = [10.0 + i % 100 for i in range(1000)]
    b = [x * 1.5 for x in a]
    r = compare_latency(a, b, alpha=0.05, min_sample=100)
    assert r.effect is not None
    assert r.effect > 0.6
    assert r.significant is True
    assert r.better == "a"
    assert r.extra["shift"] == pytest.approx(0.5, abs=0.02)
