"""``significance``: the improvement over production must exceed ``delta`` at level ``alpha``.

:func:`significance` runs a one-sided test of ``H0: improvement <= delta``
against ``H1: improvement > delta``, where the improvement is the candidate's
accuracy minus production's (McNemar, two-proportion) or production's loss minus
the candidate's (paired t, Wilcoxon, bootstrap). The rule passes when
``p_value < alpha``, strictly: for the discrete tests (exact McNemar, bootstrap)
the p-value can land exactly on alpha, and a gate that lets a model through
should not do so on a tie. A negative delta turns the test into a
non-inferiority test (the candidate may be at most ``-delta`` worse).

* ``mcnemar``: ``b`` examples only the candidate gets right, ``c`` only
  production, ``n`` in all, ``d = (b - c) / n``. With ``delta == 0`` and fewer
  than 25 discordant pairs the exact test is used (the binomial test of ``b``
  successes in ``b + c`` trials at ``1/2``): 25 is the usual point below which the
  normal approximation of that binomial is poor. Otherwise a Wald test of the
  paired difference, ``z = (d - delta) / se`` with
  ``se = sqrt(((b + c) / n - d**2) / n)``. No discordant pair gives ``p = 1``:
  identical predictions are no evidence of improvement (nor, conservatively,
  of non-inferiority). A zero standard error with discordant pairs (every
  example discordant the same way) gives ``p = 0`` when ``d > delta``, else 1.
* ``two_proportion``: unpaired counts, ``z = (p1 - p2 - delta) / se`` with the
  pooled standard error when ``delta == 0`` (the standard test of equal rates)
  and the unpooled one otherwise (pooling assumes equal rates, which
  ``delta != 0`` denies). An unpooled standard error of zero (every rate 0 or 1)
  falls back to the pooled one, so that 1/1 against 0/1 is not "certain"; if
  that is zero too the rates are equal and ``p = 1``.
* ``paired_t``: ``scipy.stats.ttest_1samp(d - delta, 0, alternative="greater")``
  on ``d_i = production_loss_i - candidate_loss_i``. Differences that are
  constant (within floating-point resolution, where scipy would warn of
  catastrophic cancellation) give ``p = 0`` if their mean exceeds delta, else 1.
* ``wilcoxon``: ``scipy.stats.wilcoxon(d - delta, alternative="greater")``
  (zero differences dropped, scipy's default); all differences zero gives 1.
* ``bootstrap``: ``bootstrap_resamples`` means of ``d`` resampled with
  replacement from ``numpy.random.default_rng(seed)``;
  ``p = (1 + #{mean* <= delta}) / (1 + resamples)``. Counting the observed sample
  as one more resample (the ``1 +``) keeps the p-value away from zero, so
  ``p < alpha`` needs at least ``alpha * (resamples + 1)`` resamples;
  with 9,999 resamples the smallest p-value is 1e-4. Resamples are drawn in
  chunks of about a million indices to bound memory; the result is
  deterministic for a given seed, data and number of resamples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sized
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import numpy.typing as npt
from pydantic import Field

from app.gates._numbers import as_count
from app.gates.evidence import Correctness, Counts, Evidence, Losses
from app.gates.facts import Facts, VersionFacts
from app.gates.fields import Finite, Label
from app.gates.result import RuleResult
from app.gates.rules._common import _num, _num_pair, _policy_number
from app.gates.rules.base import RuleConfig

if TYPE_CHECKING:
    from types import ModuleType

SignificanceTest = Literal["mcnemar", "two_proportion", "paired_t", "wilcoxon", "bootstrap"]

SIGNIFICANCE_TESTS: Mapping[str, type[Correctness] | type[Counts] | type[Losses]] = {
    "mcnemar": Correctness,
    "two_proportion": Counts,
    "paired_t": Losses,
    "wilcoxon": Losses,
    "bootstrap": Losses,
}
"""Each significance test and the kind of evidence it needs (its ``KIND`` is the stored kind)."""

assert set(SIGNIFICANCE_TESTS) == set(get_args(SignificanceTest))


class SignificanceRule(RuleConfig):
    kind: Literal["significance"]
    test: SignificanceTest
    dataset: Label
    delta: Finite = Field(default=0.0, description="Improvement the test must show.")
    alpha: Finite = Field(default=0.05, gt=0.0, lt=1.0, description="Significance level.")
    min_samples: int = Field(default=0, ge=0, description="Fewest paired examples accepted.")
    when_no_production: Literal["pass", "fail"] = "pass"
    seed: int = Field(default=0, ge=0, description="Seed of the bootstrap.")

    def label(self) -> str:
        return self.test

    def evaluate(self, name: str, facts: Facts) -> RuleResult:
        if facts.production is None:
            passed = self.when_no_production == "pass"
            return RuleResult(
                name,
                "significance",
                passed,
                f"no production version to compare with; the policy says {self.when_no_production}",
                {"test": self.test, "alpha": self.alpha, "dataset": self.dataset},
                delta=self.delta,
            )
        candidate = load_evidence(facts.candidate, self.dataset, self.test)
        production = load_evidence(facts.production, self.dataset, self.test)
        for who, ev in (("candidate", candidate), ("production", production)):
            n = evidence_size(ev)
            if ev is not None and n < self.min_samples:
                return RuleResult(
                    name,
                    "significance",
                    False,
                    f"{who} evidence on {self.dataset!r} has {n} examples; the rule needs at "
                    f"least {self.min_samples}",
                    {
                        "test": self.test,
                        "dataset": self.dataset,
                        "n": n,
                        "min_samples": self.min_samples,
                    },
                    delta=self.delta,
                )
        result = significance(
            rule=name,
            test=self.test,
            delta=self.delta,
            alpha=self.alpha,
            candidate=candidate,
            production=production,
            seed=self.seed,
        )
        return replace(result, observed={**result.observed, "dataset": self.dataset})


def load_evidence(version: VersionFacts, dataset: str, test: str) -> Evidence | None:
    """The version's evidence for ``test`` on ``dataset``; counts follow from per-example
    correctness when only that was sent."""
    needed = SIGNIFICANCE_TESTS[test]
    payload = version.evidence(dataset, needed.KIND)
    if payload is None and needed is Counts:
        payload = version.evidence(dataset, Correctness.KIND)
        if payload is not None:
            values = payload["values"]
            return Counts(successes=sum(1 for v in values if v), total=len(values))
    if payload is None:
        return None
    if needed is Correctness:
        return Correctness(values=payload["values"])
    if needed is Counts:
        return Counts(successes=payload["successes"], total=payload["total"])
    return Losses(values=payload["values"])


def evidence_size(evidence: Evidence | None) -> int:
    if evidence is None:
        return 0
    if isinstance(evidence, Counts):
        return evidence.total
    return len(evidence.values)


def _stats() -> ModuleType:
    """``scipy.stats``, imported by the first significance test that needs it: importing
    it costs 1-2 s, which a process whose policies have no significance rule never pays."""
    from scipy import stats

    return stats


EXACT_MCNEMAR_MAX_DISCORDANT = 24
"""Largest ``b + c`` for which McNemar's test (with ``delta == 0``) uses the exact binomial."""

BOOTSTRAP_CHUNK_ELEMENTS = 1 << 20
"""Resampled indices drawn at once by the bootstrap (bounds its memory to tens of MB)."""


@dataclass(frozen=True)
class _Outcome:
    """A test that ran."""

    p_value: float
    statistic: float | None
    n: int
    mean_difference: float
    method: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _NoTest:
    """A test that could not run on this evidence."""

    reason: str
    details: dict[str, Any] = field(default_factory=dict)


def _paired_lengths(what: str, candidate: Sized, production: Sized, minimum: int) -> _NoTest | None:
    if len(candidate) != len(production):
        return _NoTest(
            f"candidate and production {what} differ in length "
            f"({len(candidate)} and {len(production)}); a paired test needs the same "
            "examples in the same order",
            {"candidate_n": len(candidate), "production_n": len(production)},
        )
    if len(candidate) < minimum:
        return _NoTest(
            f"{len(candidate)} paired example(s); the test needs at least {minimum}",
            {"n": len(candidate)},
        )
    return None


def _mcnemar(candidate: Correctness, production: Correctness, delta: float) -> _Outcome | _NoTest:
    short = _paired_lengths("correctness", candidate.values, production.values, 1)
    if short is not None:
        return short
    cand = np.asarray(candidate.values, dtype=bool)
    prod = np.asarray(production.values, dtype=bool)
    n = int(cand.size)
    b = int(np.count_nonzero(cand & ~prod))
    c = int(np.count_nonzero(~cand & prod))
    d = (b - c) / n
    details: dict[str, Any] = {"b": b, "c": c, "d": d}
    if b + c == 0:
        return _Outcome(1.0, None, n, d, "no_discordant_pairs", details)
    if delta == 0 and b + c <= EXACT_MCNEMAR_MAX_DISCORDANT:
        exact = _stats().binomtest(b, b + c, 0.5, alternative="greater")
        return _Outcome(float(exact.pvalue), float(b), n, d, "exact_binomial", details)
    variance = ((b + c) / n - d * d) / n
    if variance <= 0:
        # Every example discordant in one direction: no sampling spread to test.
        return _Outcome(0.0 if d > delta else 1.0, None, n, d, "zero_variance", details)
    se = math.sqrt(variance)
    z = (d - delta) / se
    details["se"] = se
    return _Outcome(float(_stats().norm.sf(z)), z, n, d, "normal_approximation", details)


def _two_proportion(candidate: Counts, production: Counts, delta: float) -> _Outcome:
    n1, n2 = candidate.total, production.total
    p1, p2 = candidate.successes / n1, production.successes / n2
    diff = p1 - p2
    pooled_rate = (candidate.successes + production.successes) / (n1 + n2)
    pooled = pooled_rate * (1 - pooled_rate) * (1 / n1 + 1 / n2)
    if delta == 0:
        variance, method = pooled, "pooled"
    else:
        variance, method = p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2, "unpooled"
        if variance <= 0:
            variance, method = pooled, "pooled_fallback"
    details: dict[str, Any] = {
        "candidate_successes": candidate.successes,
        "candidate_total": n1,
        "candidate_rate": p1,
        "production_successes": production.successes,
        "production_total": n2,
        "production_rate": p2,
        "standard_error": method,
    }
    if variance <= 0:
        return _Outcome(1.0, None, n1 + n2, diff, "zero_variance", details)
    z = (diff - delta) / math.sqrt(variance)
    return _Outcome(float(_stats().norm.sf(z)), z, n1 + n2, diff, "normal_approximation", details)


def _loss_differences(
    candidate: Losses, production: Losses, minimum: int
) -> npt.NDArray[np.float64] | _NoTest:
    short = _paired_lengths("losses", candidate.values, production.values, minimum)
    if short is not None:
        return short
    # Positive = the candidate's loss is lower on that example.
    return np.asarray(production.values, dtype=np.float64) - np.asarray(
        candidate.values, dtype=np.float64
    )


def _is_constant(values: npt.NDArray[np.float64]) -> bool:
    """Constant up to rounding: scipy's own test for catastrophic cancellation, inclusive."""
    mean = float(np.mean(values))
    spread = float(np.max(np.abs(values - mean)))
    return spread <= 10 * float(np.finfo(np.float64).eps) * abs(mean)


def _paired_t(candidate: Losses, production: Losses, delta: float) -> _Outcome | _NoTest:
    d = _loss_differences(candidate, production, 2)
    if isinstance(d, _NoTest):
        return d
    n, mean = int(d.size), float(np.mean(d))
    shifted = d - delta
    if _is_constant(shifted):
        p = 0.0 if float(np.mean(shifted)) > 0 else 1.0
        return _Outcome(p, None, n, mean, "zero_variance", {"df": n - 1})
    res = _stats().ttest_1samp(shifted, 0.0, alternative="greater")
    return _Outcome(float(res.pvalue), float(res.statistic), n, mean, "student_t", {"df": n - 1})


def _wilcoxon(candidate: Losses, production: Losses, delta: float) -> _Outcome | _NoTest:
    d = _loss_differences(candidate, production, 1)
    if isinstance(d, _NoTest):
        return d
    n, mean = int(d.size), float(np.mean(d))
    shifted = d - delta
    nonzero = int(np.count_nonzero(shifted))
    details: dict[str, Any] = {"nonzero_differences": nonzero}
    if nonzero == 0:
        return _Outcome(1.0, None, n, mean, "all_differences_zero", details)
    res = _stats().wilcoxon(shifted, alternative="greater")
    return _Outcome(float(res.pvalue), float(res.statistic), n, mean, "signed_rank", details)


def _bootstrap(
    candidate: Losses, production: Losses, delta: float, alpha: float, seed: int, resamples: int
) -> _Outcome | _NoTest:
    d = _loss_differences(candidate, production, 2)
    if isinstance(d, _NoTest):
        return d
    n, mean = int(d.size), float(np.mean(d))
    details: dict[str, Any] = {"resamples": resamples, "seed": seed}
    if _is_constant(d):
        # Every resample has the same mean; decide in exact arithmetic rather
        # than on how the rounding of n equal summands happens to fall.
        exceeds = float(d[0]) > delta
        at_or_below = 0 if exceeds else resamples
        details["lower_bound"] = float(d[0])
    else:
        rng = np.random.default_rng(seed)
        means = np.empty(resamples, dtype=np.float64)
        rows = max(1, BOOTSTRAP_CHUNK_ELEMENTS // n)
        for start in range(0, resamples, rows):
            stop = min(start + rows, resamples)
            indices = rng.integers(0, n, size=(stop - start, n))
            means[start:stop] = d[indices].mean(axis=1)
        at_or_below = int(np.count_nonzero(means <= delta))
        # One-sided percentile bound: the test passes iff delta lies below it
        # (up to the +1 correction), which reviewers read more easily than p.
        details["lower_bound"] = float(np.quantile(means, alpha))
    details["at_or_below_delta"] = at_or_below
    p = (1 + at_or_below) / (1 + resamples)
    return _Outcome(p, mean, n, mean, "percentile_bootstrap", details)


def _evidence_name(evidence: object) -> str:
    return "nothing" if evidence is None else type(evidence).__name__


def significance(
    *,
    rule: str,
    test: SignificanceTest,
    delta: float,
    alpha: float,
    candidate: Evidence | None,
    production: Evidence | None,
    seed: int = 0,
    bootstrap_resamples: int = 9999,
) -> RuleResult:
    """The candidate's improvement over production must exceed ``delta`` at level ``alpha``.

    One-sided; passes when ``p_value < alpha``. See the module docstring for each
    test. Evidence that is missing, of the wrong kind for the test, or unpaired
    fails the rule with a reason; a bad ``test``, ``alpha``, ``delta`` or
    ``bootstrap_resamples`` raises ``ValueError``. The caller applies any
    "no production model" policy before calling: without production evidence
    this rule fails.
    """
    if test not in SIGNIFICANCE_TESTS:
        raise ValueError(
            f"unknown significance test {test!r}; expected one of {sorted(SIGNIFICANCE_TESTS)}"
        )
    delta = _policy_number("delta", delta)
    alpha = _policy_number("alpha", alpha)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    seed_value = as_count(seed)
    if seed_value is None or seed_value < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    resamples = as_count(bootstrap_resamples)
    if resamples is None or resamples < 1:
        raise ValueError(
            f"bootstrap_resamples must be a positive integer, got {bootstrap_resamples!r}"
        )

    observed: dict[str, Any] = {"test": test, "alpha": alpha}

    def failed(reason: str, details: Mapping[str, Any] | None = None) -> RuleResult:
        observed.update(details or {})
        return RuleResult(rule, "significance", False, f"{test}: {reason}", observed, delta=delta)

    needed = SIGNIFICANCE_TESTS[test]
    if candidate is None or production is None:
        missing = [
            who
            for who, evidence in (("candidate", candidate), ("production", production))
            if evidence is None
        ]
        return failed(f"no evidence from {' or '.join(missing)}")
    if not isinstance(candidate, needed) or not isinstance(production, needed):
        return failed(
            f"needs {needed.__name__} evidence from both models; got "
            f"{_evidence_name(candidate)} (candidate) and {_evidence_name(production)} "
            "(production)"
        )

    outcome: _Outcome | _NoTest
    if isinstance(candidate, Correctness) and isinstance(production, Correctness):
        outcome = _mcnemar(candidate, production, delta)
    elif isinstance(candidate, Counts) and isinstance(production, Counts):
        outcome = _two_proportion(candidate, production, delta)
    elif isinstance(candidate, Losses) and isinstance(production, Losses):
        if test == "paired_t":
            outcome = _paired_t(candidate, production, delta)
        elif test == "wilcoxon":
            outcome = _wilcoxon(candidate, production, delta)
        else:
            outcome = _bootstrap(candidate, production, delta, alpha, seed_value, resamples)
    else:  # pragma: no cover - excluded by the isinstance check above
        raise AssertionError("unreachable")

    if isinstance(outcome, _NoTest):
        return failed(outcome.reason, outcome.details)

    p_value = min(1.0, max(0.0, outcome.p_value))
    observed.update(
        {
            "method": outcome.method,
            "statistic": outcome.statistic,
            "n": outcome.n,
            "mean_difference": outcome.mean_difference,
            **outcome.details,
        }
    )
    passed = p_value < alpha
    improvement = "accuracy gain" if test in ("mcnemar", "two_proportion") else "loss reduction"
    shown_p, shown_alpha = _num_pair(p_value, alpha, 3)
    if passed:
        reason = (
            f"{test}: {improvement} {_num(outcome.mean_difference)} exceeds delta {_num(delta)} "
            f"significantly (one-sided p = {shown_p} < alpha {shown_alpha}, n = {outcome.n})"
        )
    else:
        reason = (
            f"{test}: no significant evidence that the {improvement} "
            f"({_num(outcome.mean_difference)}) exceeds delta {_num(delta)} "
            f"(one-sided p = {shown_p} >= alpha {shown_alpha}, n = {outcome.n})"
        )
    return RuleResult(rule, "significance", passed, reason, observed, delta=delta, p_value=p_value)
