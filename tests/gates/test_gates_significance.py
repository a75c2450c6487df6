"""The significance rule against scipy called directly on the same data, and its edge cases."""

import json
import math
from typing import Any

import numpy as np
import pytest
from scipy import stats

from app.gates import Correctness, Counts, Evidence, Losses, RuleResult, significance
from app.gates.rules.significance import EXACT_MCNEMAR_MAX_DISCORDANT, SignificanceTest


def run(
    test: SignificanceTest,
    candidate: Evidence | None,
    production: Evidence | None,
    *,
    delta: float = 0.0,
    alpha: float = 0.05,
    **kwargs: Any,
) -> RuleResult:
    result = significance(
        rule=f"significance:{test}",
        test=test,
        delta=delta,
        alpha=alpha,
        candidate=candidate,
        production=production,
        **kwargs,
    )
    assert result.kind == "significance"
    assert result.delta == delta
    json.dumps(result.to_dict(), allow_nan=False)
    return result


def paired_correctness(
    b: int, c: int, both_right: int, both_wrong: int
) -> tuple[Evidence, Evidence]:
    """Candidate and production correctness with the given discordant and concordant counts."""
    cand = [True] * b + [False] * c + [True] * both_right + [False] * both_wrong
    prod = [False] * b + [True] * c + [True] * both_right + [False] * both_wrong
    return Correctness(cand), Correctness(prod)


# McNemar ----------------------------------------------------------------------


def test_mcnemar_exact_for_few_discordant_pairs_matches_binomtest() -> None:
    cand, prod = paired_correctness(b=15, c=4, both_right=70, both_wrong=11)
    result = run("mcnemar", cand, prod)
    expected = stats.binomtest(15, 19, 0.5, alternative="greater").pvalue
    assert result.p_value == pytest.approx(expected, rel=1e-12)
    assert result.observed["method"] == "exact_binomial"
    assert result.observed["b"] == 15
    assert result.observed["c"] == 4
    assert result.observed["n"] == 100
    assert result.observed["d"] == pytest.approx(0.11)
    assert result.observed["alpha"] == 0.05
    assert result.observed["test"] == "mcnemar"
    assert result.passed is bool(expected < 0.05)
    assert result.passed


def test_mcnemar_exact_cutoff() -> None:
    assert EXACT_MCNEMAR_MAX_DISCORDANT == 24
    cand, prod = paired_correctness(b=15, c=9, both_right=70, both_wrong=6)
    assert run("mcnemar", cand, prod).observed["method"] == "exact_binomial"
    cand, prod = paired_correctness(b=16, c=9, both_right=70, both_wrong=5)
    assert run("mcnemar", cand, prod).observed["method"] == "normal_approximation"


def test_mcnemar_normal_approximation_matches_hand_formula() -> None:
    b, c, n = 60, 30, 1000
    cand, prod = paired_correctness(b=b, c=c, both_right=800, both_wrong=110)
    for delta in (0.0, 0.01, -0.02):
        d = (b - c) / n
        se = math.sqrt(((b + c) / n - d**2) / n)
        expected = stats.norm.sf((d - delta) / se)
        result = run("mcnemar", cand, prod, delta=delta)
        assert result.observed["method"] == "normal_approximation"
        assert result.p_value == pytest.approx(expected, rel=1e-12)
        assert result.observed["statistic"] == pytest.approx((d - delta) / se)
        assert result.observed["mean_difference"] == pytest.approx(d)


def test_mcnemar_with_nonzero_delta_never_uses_the_exact_test() -> None:
    cand, prod = paired_correctness(b=10, c=2, both_right=80, both_wrong=8)
    result = run("mcnemar", cand, prod, delta=0.01)
    assert result.observed["method"] == "normal_approximation"


def test_mcnemar_without_discordant_pairs_has_p_one() -> None:
    cand, prod = paired_correctness(b=0, c=0, both_right=90, both_wrong=10)
    result = run("mcnemar", cand, prod)
    assert result.p_value == 1.0
    assert not result.passed
    assert result.observed["method"] == "no_discordant_pairs"
    assert run("mcnemar", cand, prod, delta=-0.05).p_value == 1.0


def test_mcnemar_all_examples_discordant_one_way() -> None:
    cand, prod = paired_correctness(b=40, c=0, both_right=0, both_wrong=0)
    result = run("mcnemar", cand, prod, delta=0.1)
    assert result.p_value == 0.0
    assert result.passed
    cand, prod = paired_correctness(b=0, c=40, both_right=0, both_wrong=0)
    assert run("mcnemar", cand, prod, delta=0.1).p_value == 1.0


def test_mcnemar_candidate_worse_does_not_pass() -> None:
    cand, prod = paired_correctness(b=30, c=60, both_right=800, both_wrong=110)
    result = run("mcnemar", cand, prod)
    assert not result.passed
    assert result.p_value is not None
    assert result.p_value > 0.99
    assert "no significant evidence" in result.reason


def test_mcnemar_unpaired_lengths_fail_with_reason() -> None:
    result = run("mcnemar", Correctness([True, False]), Correctness([True]))
    assert not result.passed
    assert result.p_value is None
    assert "differ in length (2 and 1)" in result.reason


def test_mcnemar_empty_evidence_fails() -> None:
    result = run("mcnemar", Correctness([]), Correctness([]))
    assert not result.passed
    assert "at least 1" in result.reason


# Two proportions --------------------------------------------------------------


def test_two_proportion_pooled_when_delta_is_zero() -> None:
    s1, n1, s2, n2 = 870, 1000, 840, 1000
    p1, p2, pooled = s1 / n1, s2 / n2, (s1 + s2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    expected = stats.norm.sf((p1 - p2) / se)
    result = run("two_proportion", Counts(s1, n1), Counts(s2, n2))
    assert result.p_value == pytest.approx(expected, rel=1e-12)
    assert result.observed["standard_error"] == "pooled"
    assert result.observed["mean_difference"] == pytest.approx(0.03)
    assert result.observed["n"] == 2000
    assert result.passed


def test_two_proportion_pooled_matches_scipy_chi_square() -> None:
    # The pooled z test is the 2 x 2 chi-square test without continuity correction.
    s1, n1, s2, n2 = 430, 500, 400, 500
    chi2, two_sided, _, _ = stats.chi2_contingency([[s1, n1 - s1], [s2, n2 - s2]], correction=False)
    result = run("two_proportion", Counts(s1, n1), Counts(s2, n2))
    assert result.observed["statistic"] ** 2 == pytest.approx(chi2, rel=1e-9)
    assert result.p_value == pytest.approx(two_sided / 2, rel=1e-9)


def test_two_proportion_unpooled_when_delta_is_nonzero() -> None:
    s1, n1, s2, n2 = 900, 1000, 840, 2000
    p1, p2 = s1 / n1, s2 / n2
    delta = 0.4
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    expected = stats.norm.sf((p1 - p2 - delta) / se)
    result = run("two_proportion", Counts(s1, n1), Counts(s2, n2), delta=delta)
    assert result.p_value == pytest.approx(expected, rel=1e-12)
    assert result.observed["standard_error"] == "unpooled"


def test_two_proportion_degenerate_rates() -> None:
    # Unpooled variance 0 falls back to pooled: 1/1 against 0/1 is no proof.
    tiny = run("two_proportion", Counts(1, 1), Counts(0, 1), delta=0.5)
    assert tiny.observed["standard_error"] == "pooled_fallback"
    assert not tiny.passed
    large = run("two_proportion", Counts(1000, 1000), Counts(0, 1000), delta=0.5)
    assert large.passed
    # Identical all-or-nothing rates: no variance at all, no evidence.
    same = run("two_proportion", Counts(50, 50), Counts(80, 80), delta=-0.1)
    assert same.p_value == 1.0
    assert run("two_proportion", Counts(0, 50), Counts(0, 80)).p_value == 1.0


@pytest.mark.parametrize(
    ("successes", "total", "message"),
    [(5, 0, "positive"), (-1, 10, "between"), (11, 10, "between"), (1.5, 10, "integer")],
)
def test_counts_are_validated(successes: Any, total: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Counts(successes, total)


# Paired t ---------------------------------------------------------------------


def losses(seed: int, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.gamma(2.0, 0.5, n)
    production = base + rng.normal(0, 0.2, n)
    candidate = base + rng.normal(0, 0.2, n) - shift
    return candidate, production


@pytest.mark.parametrize("delta", [0.0, 0.02, -0.03])
def test_paired_t_matches_scipy(delta: float) -> None:
    cand, prod = losses(1, 80, 0.05)
    d = prod - cand
    expected = stats.ttest_1samp(d - delta, 0.0, alternative="greater")
    result = run("paired_t", Losses(cand), Losses(prod), delta=delta)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-10)
    assert result.observed["statistic"] == pytest.approx(expected.statistic, rel=1e-10)
    assert result.observed["mean_difference"] == pytest.approx(float(np.mean(d)))
    assert result.observed["n"] == 80
    assert result.observed["df"] == 79


def test_paired_t_equals_scipy_related_samples_test() -> None:
    cand, prod = losses(2, 50, 0.03)
    expected = stats.ttest_rel(prod, cand, alternative="greater").pvalue
    assert run("paired_t", Losses(cand), Losses(prod)).p_value == pytest.approx(expected)


def test_paired_t_zero_variance_does_not_produce_nan() -> None:
    prod = [1.0, 2.0, 3.0, 4.0]
    better = [0.5, 1.5, 2.5, 3.5]  # every loss lower by exactly 0.5
    result = run("paired_t", Losses(better), Losses(prod), delta=0.1)
    assert result.p_value == 0.0
    assert result.passed
    assert result.observed["method"] == "zero_variance"
    assert run("paired_t", Losses(better), Losses(prod), delta=0.5).p_value == 1.0
    assert run("paired_t", Losses(prod), Losses(prod)).p_value == 1.0
    assert run("paired_t", Losses([1.0, 1.0, 1.0]), Losses([2.0, 2.0, 2.0])).passed


def test_paired_t_needs_two_examples() -> None:
    result = run("paired_t", Losses([1.0]), Losses([2.0]))
    assert not result.passed
    assert "at least 2" in result.reason


# Wilcoxon ---------------------------------------------------------------------


@pytest.mark.parametrize(("n", "delta"), [(30, 0.0), (30, 0.02), (200, 0.0), (200, -0.01)])
def test_wilcoxon_matches_scipy(n: int, delta: float) -> None:
    cand, prod = losses(3, n, 0.03)
    expected = stats.wilcoxon(prod - cand - delta, alternative="greater")
    result = run("wilcoxon", Losses(cand), Losses(prod), delta=delta)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-10)
    assert result.observed["statistic"] == pytest.approx(expected.statistic)


def test_wilcoxon_with_some_zero_differences_matches_scipy() -> None:
    cand = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    prod = [1.0, 2.5, 3.0, 4.7, 5.2, 6.9, 7.4, 7.9]
    expected = stats.wilcoxon(np.subtract(prod, cand), alternative="greater")
    result = run("wilcoxon", Losses(cand), Losses(prod))
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.observed["nonzero_differences"] == 6


def test_wilcoxon_all_zero_differences_has_p_one() -> None:
    values = [0.3, 0.2, 0.9]
    result = run("wilcoxon", Losses(values), Losses(values))
    assert result.p_value == 1.0
    assert not result.passed
    assert result.observed["method"] == "all_differences_zero"


# Bootstrap --------------------------------------------------------------------


def test_bootstrap_matches_scipy_bootstrap_distribution() -> None:
    cand, prod = losses(4, 150, 0.02)
    d = prod - cand
    delta, alpha, resamples = 0.005, 0.1, 999
    result = run(
        "bootstrap",
        Losses(cand),
        Losses(prod),
        delta=delta,
        alpha=alpha,
        seed=7,
        bootstrap_resamples=resamples,
    )
    # Same generator, same draws: scipy's percentile bootstrap sees the same resamples.
    reference = stats.bootstrap(
        (d,),
        np.mean,
        n_resamples=resamples,
        method="percentile",
        confidence_level=1 - alpha,
        alternative="greater",
        rng=np.random.default_rng(7),
    )
    expected_p = (1 + np.sum(reference.bootstrap_distribution <= delta)) / (1 + resamples)
    assert result.p_value == pytest.approx(expected_p)
    assert result.observed["lower_bound"] == pytest.approx(reference.confidence_interval.low)
    assert result.observed["mean_difference"] == pytest.approx(float(np.mean(d)))
    assert result.observed["resamples"] == resamples
    assert result.observed["seed"] == 7
    assert result.passed is (delta < result.observed["lower_bound"])


def test_bootstrap_is_deterministic_per_seed_and_close_to_the_t_test() -> None:
    cand, prod = losses(5, 400, 0.02)
    first = run("bootstrap", Losses(cand), Losses(prod), seed=1)
    again = run("bootstrap", Losses(cand), Losses(prod), seed=1)
    other = run("bootstrap", Losses(cand), Losses(prod), seed=2)
    assert first == again
    assert first.p_value != other.p_value
    t_test = run("paired_t", Losses(cand), Losses(prod))
    assert first.p_value == pytest.approx(t_test.p_value, abs=0.02)


def test_bootstrap_chunks_large_inputs_without_changing_the_answer_much() -> None:
    cand, prod = losses(6, 5000, 0.01)
    result = run("bootstrap", Losses(cand), Losses(prod), bootstrap_resamples=999)
    t_test = run("paired_t", Losses(cand), Losses(prod))
    assert result.p_value == pytest.approx(t_test.p_value, abs=0.03)


def test_bootstrap_p_value_is_never_zero() -> None:
    cand, prod = losses(7, 200, 1.0)
    result = run("bootstrap", Losses(cand), Losses(prod), bootstrap_resamples=99)
    assert result.p_value == pytest.approx(1 / 100)
    assert result.passed
    assert not run(
        "bootstrap", Losses(cand), Losses(prod), bootstrap_resamples=9, alpha=0.05
    ).passed


def test_bootstrap_constant_differences() -> None:
    prod = [0.3, 0.2, 0.9, 0.4]
    cand = [p - 0.1 for p in prod]
    at_delta = run("bootstrap", Losses(cand), Losses(prod), delta=0.1, bootstrap_resamples=99)
    assert at_delta.p_value == 1.0
    above = run("bootstrap", Losses(cand), Losses(prod), delta=0.05, bootstrap_resamples=99)
    assert above.p_value == pytest.approx(1 / 100)


# Evidence and policy validation ----------------------------------------------


@pytest.mark.parametrize(
    ("test", "candidate", "production", "needed"),
    [
        ("mcnemar", Counts(5, 10), Counts(4, 10), "Correctness"),
        ("two_proportion", Correctness([True]), Correctness([True]), "Counts"),
        ("paired_t", Correctness([True, False]), Losses([0.1, 0.2]), "Losses"),
        ("wilcoxon", Losses([0.1]), Counts(1, 2), "Losses"),
        ("bootstrap", Counts(1, 2), Counts(1, 2), "Losses"),
    ],
)
def test_wrong_evidence_fails_with_a_reason(
    test: SignificanceTest, candidate: Evidence, production: Evidence, needed: str
) -> None:
    result = run(test, candidate, production)
    assert not result.passed
    assert result.p_value is None
    assert f"needs {needed} evidence" in result.reason


def test_missing_evidence_fails_with_a_reason() -> None:
    result = run("paired_t", Losses([1.0, 2.0]), None)
    assert not result.passed
    assert "no evidence from production" in result.reason
    assert "candidate or production" in run("mcnemar", None, None).reason


def test_evidence_validation() -> None:
    with pytest.raises(ValueError, match="booleans"):
        Correctness([1, 0, 1])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="booleans"):
        Correctness(["True"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="finite"):
        Losses([0.1, math.nan])
    with pytest.raises(ValueError, match="numbers"):
        Losses(["0.1"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="flat"):
        Losses([[0.1, 0.2]])  # type: ignore[list-item]
    assert Correctness(np.array([True, False])).values == (True, False)
    assert Losses(np.array([1, 2])).values == (1.0, 2.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"test": "anova"}, "unknown significance test"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"delta": math.nan}, "delta"),
        ({"bootstrap_resamples": 0}, "bootstrap_resamples"),
        ({"seed": -1}, "seed"),
    ],
)
def test_invalid_significance_policy_raises(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "rule": "s",
        "test": "paired_t",
        "delta": 0.0,
        "alpha": 0.05,
        "candidate": Losses([1.0, 2.0]),
        "production": Losses([1.0, 2.0]),
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        significance(**arguments)


def test_p_equal_to_alpha_does_not_pass() -> None:
    # Exact McNemar with b=5, c=0: p = 0.5**5 = 0.03125 exactly.
    cand, prod = paired_correctness(b=5, c=0, both_right=10, both_wrong=0)
    assert run("mcnemar", cand, prod, alpha=0.03125).passed is False
    assert run("mcnemar", cand, prod, alpha=0.0313).passed is True
