"""The gate rules: one pure function per rule kind, each returning a :class:`RuleResult`.

Conventions shared by every rule:

* Arguments that come from the gate policy (limits, deltas, alpha, ...) are
  checked, and a bad one raises ``ValueError``: a policy with a NaN threshold is
  a bug to refuse when the policy is saved, not a gate that fails later.
* Arguments that come from the versions (metric values, evidence, lineage,
  signatures, checksums) never raise: missing, undefined or malformed data make
  the rule fail, and the reason says what is missing.
* Comparing a value with a constant from the policy is exact. Comparing it with
  a bound the rule computes (production + delta, a gap between two slices)
  tolerates a relative error of 1e-9, so that floating-point rounding
  (``0.2 + 0.1 == 0.30000000000000004``) does not fail a candidate that meets the
  bound exactly.

Significance tests
------------------
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
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from app.gates._numbers import as_count, as_finite, as_real
from app.gates.catalogue import Direction
from app.gates.evidence import Correctness, Counts, Evidence, Losses
from app.gates.result import RuleResult
from app.gates.signature import Column, Signature, normalise_type, type_accepts

__all__ = [
    "BOOTSTRAP_CHUNK_ELEMENTS",
    "EXACT_MCNEMAR_MAX_DISCORDANT",
    "SIGNIFICANCE_TESTS",
    "Column",
    "Correctness",
    "Counts",
    "Evidence",
    "Losses",
    "RuleResult",
    "Signature",
    "SignificanceTest",
    "approvals",
    "artifact_intact",
    "fairness",
    "lineage_complete",
    "no_regression",
    "schema_compatible",
    "significance",
    "threshold",
]

SignificanceTest = Literal["mcnemar", "two_proportion", "paired_t", "wilcoxon", "bootstrap"]

SIGNIFICANCE_TESTS: Mapping[str, type[Correctness] | type[Counts] | type[Losses]] = {
    "mcnemar": Correctness,
    "two_proportion": Counts,
    "paired_t": Losses,
    "wilcoxon": Losses,
    "bootstrap": Losses,
}
"""Each significance test and the kind of evidence it needs."""

EXACT_MCNEMAR_MAX_DISCORDANT = 24
"""Largest ``b + c`` for which McNemar's test (with ``delta == 0``) uses the exact binomial."""

BOOTSTRAP_CHUNK_ELEMENTS = 1 << 20
"""Resampled indices drawn at once by the bootstrap (bounds its memory to tens of MB)."""

_REL_TOL = 1e-9
_ABS_TOL = 1e-12


# Helpers ----------------------------------------------------------------------


if TYPE_CHECKING:
    from types import ModuleType


def _stats() -> ModuleType:
    """``scipy.stats``, imported by the first significance test that needs it: importing
    it costs 1-2 s, which a process whose policies have no significance rule never pays."""
    from scipy import stats

    return stats


def _num(value: float, digits: int = 6) -> str:
    return format(value, f".{digits}g")


def _num_pair(a: float, b: float, digits: int = 6) -> tuple[str, str]:
    """Format two numbers so that different values never print the same."""
    sa, sb = _num(a, digits), _num(b, digits)
    if sa == sb and a != b:
        return repr(a), repr(b)
    return sa, sb


def _policy_number(name: str, value: object) -> float:
    number = as_real(value)
    if number is None:
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number!r}")
    return number


def _data_number(value: object) -> float | None:
    """A finite float, or None for a missing or unusable value."""
    return as_finite(value)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _at_least(value: float, bound: float) -> bool:
    return value >= bound or math.isclose(value, bound, rel_tol=_REL_TOL, abs_tol=_ABS_TOL)


def _at_most(value: float, bound: float) -> bool:
    return value <= bound or math.isclose(value, bound, rel_tol=_REL_TOL, abs_tol=_ABS_TOL)


def _direction(direction: Direction | str) -> Direction:
    try:
        return Direction(direction)
    except ValueError:
        raise ValueError(f"direction must be 'higher' or 'lower', got {direction!r}") from None


def _better_word(direction: Direction) -> str:
    return "higher is better" if direction is Direction.HIGHER else "lower is better"


def _unusable(metric: str, dataset: str, value: object, who: str = "") -> str:
    prefix = f"{who} " if who else ""
    if value is None:
        return f"{prefix}{metric} missing on dataset {dataset!r}"
    return f"{prefix}{metric} on dataset {dataset!r} is not a finite number ({value!r})"


# threshold --------------------------------------------------------------------


def threshold(
    *,
    rule: str,
    metric: str,
    dataset: str,
    value: float | None,
    undefined_reason: str | None,
    limit: float,
    direction: Direction,
) -> RuleResult:
    """A metric must reach a fixed limit: ``value >= limit`` (or ``<=`` when lower is better).

    ``value=None`` means the metric is missing, or undefined when
    ``undefined_reason`` says why; either fails, quoting the reason.
    """
    direction = _direction(direction)
    limit = _policy_number("limit", limit)
    number = _data_number(value)
    observed: dict[str, Any] = {
        "metric": metric,
        "dataset": dataset,
        "direction": direction.value,
        "value": number,
    }

    def result(passed: bool, reason: str) -> RuleResult:
        return RuleResult(rule, "threshold", passed, reason, observed, threshold=limit)

    if value is None and undefined_reason:
        observed["undefined_reason"] = undefined_reason
        return result(False, f"{undefined_reason} (dataset {dataset!r})")
    if number is None:
        return result(False, _unusable(metric, dataset, value))
    if direction is Direction.HIGHER:
        passed = number >= limit
        op = ">=" if passed else "<"
    else:
        passed = number <= limit
        op = "<=" if passed else ">"
    shown, shown_limit = _num_pair(number, limit)
    return result(
        passed,
        f"{metric} {shown} {op} {shown_limit} on dataset {dataset!r} ({_better_word(direction)})",
    )


# no_regression ----------------------------------------------------------------


def no_regression(
    *,
    rule: str,
    metric: str,
    dataset: str,
    candidate: float | None,
    production: float | None,
    delta: float,
    direction: Direction,
    has_production: bool,
    when_no_production: Literal["pass", "fail"],
) -> RuleResult:
    """The candidate must beat production by ``delta`` on the same dataset.

    Higher is better: ``candidate >= production + delta``; lower is better:
    ``candidate <= production - delta``. A negative ``delta`` tolerates a loss
    of up to ``-delta``. Without a production model the policy's
    ``when_no_production`` decides; a production model without the metric on
    this dataset fails, because the comparison the policy asks for is impossible.
    """
    direction = _direction(direction)
    delta = _policy_number("delta", delta)
    if when_no_production not in ("pass", "fail"):
        raise ValueError(f"when_no_production must be 'pass' or 'fail', got {when_no_production!r}")
    if not has_production and production is not None:
        raise ValueError("a production value was given but has_production is False")
    cand = _data_number(candidate)
    prod = _data_number(production)
    observed: dict[str, Any] = {
        "metric": metric,
        "dataset": dataset,
        "direction": direction.value,
        "candidate": cand,
        "production": prod,
        "has_production": has_production,
    }

    def result(passed: bool, reason: str, bound: float | None = None) -> RuleResult:
        return RuleResult(
            rule, "no_regression", passed, reason, observed, threshold=bound, delta=delta
        )

    if not has_production:
        observed["when_no_production"] = when_no_production
        verdict = "passes" if when_no_production == "pass" else "fails"
        return result(
            when_no_production == "pass",
            f"no production model to compare {metric} with; the policy {verdict} "
            "when there is none",
        )
    problems = []
    if cand is None:
        problems.append(_unusable(metric, dataset, candidate, "candidate"))
    if prod is None:
        problems.append(_unusable(metric, dataset, production, "production"))
    if cand is None or prod is None:
        return result(False, "; ".join(problems))

    if direction is Direction.HIGHER:
        bound = prod + delta
        passed = _at_least(cand, bound)
        improvement = cand - prod
        op = ">=" if passed else "<"
    else:
        bound = prod - delta
        passed = _at_most(cand, bound)
        improvement = prod - cand
        op = "<=" if passed else ">"
    observed["improvement"] = _finite_or_none(improvement)
    shown, shown_bound = _num_pair(cand, bound)
    return result(
        passed,
        f"candidate {metric} {shown} {op} {shown_bound} required (production {_num(prod)}, "
        f"delta {_num(delta)}, {_better_word(direction)}) on dataset {dataset!r}",
        _finite_or_none(bound),
    )


# significance -----------------------------------------------------------------


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


def _paired_lengths(
    what: str, candidate: Sequence[object], production: Sequence[object], minimum: int
) -> _NoTest | None:
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


# fairness ---------------------------------------------------------------------


def fairness(
    *,
    rule: str,
    metric: str,
    direction: Direction,
    slices: Mapping[str, float | None],
    floor: float | None,
    max_gap: float | None,
    production_slices: Mapping[str, float | None] | None = None,
    max_slice_regression: float | None = None,
    min_slices: int = 2,
) -> RuleResult:
    """Every slice (subgroup) must do well enough, and no slice much worse than the others.

    Checks, all of which must hold: at least ``min_slices`` slices; every slice
    defined; every slice meets ``floor`` (``>=``, or ``<=`` when lower is better);
    the best-worst gap is at most ``max_gap``; and, when ``production_slices``
    and ``max_slice_regression`` are both given, no slice is worse than
    production's same slice by more than ``max_slice_regression``. A slice that
    production measured but the candidate did not fails the rule (dropping a
    slice must not dodge the gate); a slice production did not measure has no
    baseline and is only listed in ``observed``. The reason names the worst
    offending slice of each failed check.
    """
    direction = _direction(direction)
    if floor is not None:
        floor = _policy_number("floor", floor)
    if max_gap is not None:
        max_gap = _policy_number("max_gap", max_gap)
        if max_gap < 0:
            raise ValueError(f"max_gap must not be negative, got {max_gap!r}")
    if max_slice_regression is not None:
        max_slice_regression = _policy_number("max_slice_regression", max_slice_regression)
    if floor is None and max_gap is None and max_slice_regression is None:
        raise ValueError("a fairness rule needs a floor, a max_gap or a max_slice_regression")
    slice_count = as_count(min_slices)
    if slice_count is None or slice_count < 1:
        raise ValueError(f"min_slices must be a positive integer, got {min_slices!r}")

    higher = direction is Direction.HIGHER
    values = {name: _data_number(value) for name, value in slices.items()}
    defined = {name: value for name, value in values.items() if value is not None}
    observed: dict[str, Any] = {
        "metric": metric,
        "direction": direction.value,
        "slices": dict(values),
        "floor": floor,
        "max_gap": max_gap,
    }
    problems: list[str] = []

    if len(values) < slice_count:
        problems.append(f"{len(values)} slice(s) evaluated; the rule needs at least {slice_count}")
    undefined = [name for name, value in values.items() if value is None]
    if undefined:
        observed["undefined_slices"] = undefined
        problems.append(
            f"{metric} missing or undefined for slice(s) " + ", ".join(map(repr, undefined))
        )

    def badness(item: tuple[str, float]) -> float:
        return -item[1] if higher else item[1]

    if floor is not None:
        below = sorted(
            ((name, v) for name, v in defined.items() if (v < floor if higher else v > floor)),
            key=badness,
            reverse=True,
        )
        observed["below_floor"] = [name for name, _ in below]
        if below:
            worst, value = below[0]
            side = "below" if higher else "above"
            problems.append(
                f"slice {worst!r} {metric} {_num(value)} is {side} the floor {_num(floor)}"
                + (f" ({len(below)} slices fail the floor)" if len(below) > 1 else "")
            )

    if len(defined) >= 2:
        ordered = sorted(defined.items(), key=badness)
        (best, best_value), (worst, worst_value) = ordered[0], ordered[-1]
        gap = abs(best_value - worst_value)
        observed.update({"best_slice": best, "worst_slice": worst, "gap": _finite_or_none(gap)})
        if max_gap is not None and not _at_most(gap, max_gap):
            problems.append(
                f"gap {_num(gap)} between slice {best!r} ({_num(best_value)}) and slice "
                f"{worst!r} ({_num(worst_value)}) exceeds {_num(max_gap)}"
            )
    elif len(defined) == 1:
        only = next(iter(defined))
        observed.update({"best_slice": only, "worst_slice": only, "gap": 0.0})

    observed["compared_with_production"] = (
        production_slices is not None and max_slice_regression is not None
    )
    if production_slices is not None and max_slice_regression is not None:
        observed["max_slice_regression"] = max_slice_regression
        baseline = {name: _data_number(value) for name, value in production_slices.items()}
        dropped = [name for name in baseline if name not in values]
        if dropped:
            observed["dropped_slices"] = dropped
            problems.append(
                "slice(s) evaluated for production but not for the candidate: "
                + ", ".join(map(repr, dropped))
            )
        observed["no_baseline"] = [name for name in defined if baseline.get(name) is None]
        regressions: list[tuple[str, float, float, float]] = []
        for name, value in defined.items():
            before = baseline.get(name)
            if before is None:
                continue
            loss = before - value if higher else value - before
            if not _at_most(loss, max_slice_regression):
                regressions.append((name, before, value, loss))
        regressions.sort(key=lambda item: item[3], reverse=True)
        observed["regressed_slices"] = [name for name, *_ in regressions]
        if regressions:
            name, before, value, loss = regressions[0]
            problems.append(
                f"slice {name!r} {metric} went from {_num(before)} (production) to "
                f"{_num(value)}, a regression of {_num(loss)} over the allowed "
                f"{_num(max_slice_regression)}"
                + (f" ({len(regressions)} slices regressed)" if len(regressions) > 1 else "")
            )

    observed["problems"] = problems
    if problems:
        return RuleResult(rule, "fairness", False, "; ".join(problems), observed, threshold=floor)
    summary = f"all {len(values)} slices pass on {metric}"
    if floor is not None:
        summary += f" (floor {_num(floor)}"
        summary += (
            f", gap {_num(observed['gap'])} <= {_num(max_gap)})" if max_gap is not None else ")"
        )
    elif max_gap is not None:
        summary += f" (gap {_num(observed['gap'])} <= {_num(max_gap)})"
    return RuleResult(rule, "fairness", True, summary, observed, threshold=floor)


# lineage_complete -------------------------------------------------------------


_MISSING = object()


def _lookup(lineage: Mapping[str, Any], name: str) -> Any:
    if name in lineage:
        return lineage[name]
    node: Any = lineage
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _is_blank(value: Any) -> bool:
    if value is None or value is _MISSING:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, Mapping | list | tuple | set | frozenset | bytes | bytearray):
        return len(value) == 0
    return False


def lineage_complete(
    *, rule: str, lineage: Mapping[str, Any], required: Sequence[str]
) -> RuleResult:
    """The named lineage fields must be present and non-empty.

    Empty means absent, ``None``, a blank string or an empty container; ``0`` and
    ``False`` are values. A dotted name (``data.train_uri``) reaches into nested
    mappings when no key has that exact name.
    """
    if isinstance(required, str):
        raise ValueError("required must be a list of field names, not a string")
    wanted = list(dict.fromkeys(required))
    missing = [name for name in wanted if _is_blank(_lookup(lineage, name))]
    observed = {"required": wanted, "missing": missing}
    if missing:
        return RuleResult(
            rule,
            "lineage_complete",
            False,
            "lineage is missing " + ", ".join(map(repr, missing)),
            observed,
        )
    reason = (
        f"all {len(wanted)} required lineage field(s) present"
        if wanted
        else "no lineage fields are required"
    )
    return RuleResult(rule, "lineage_complete", True, reason, observed)


# schema_compatible ------------------------------------------------------------


def _input_problems(candidate: Signature, production: Signature) -> list[str]:
    problems: list[str] = []
    new_inputs = {column.name: column for column in candidate.inputs}
    old_names = {column.name for column in production.inputs}
    for old in production.inputs:
        new = new_inputs.get(old.name)
        if new is None:
            if old.required:
                problems.append(f"input column {old.name!r} was removed")
            continue
        problems.extend(_column_problems(new, old))
    for new in candidate.inputs:
        if new.name not in old_names and new.required:
            problems.append(
                f"new input column {new.name!r} is required; production callers do not send it"
            )
    return problems


def _column_problems(new: Column, old: Column) -> list[str]:
    problems: list[str] = []
    name = old.name
    if not type_accepts(new.type, old.type):
        problems.append(
            f"input column {name!r} changed type from {normalise_type(old.type)!r} to "
            f"{normalise_type(new.type)!r}"
        )
    if new.required and not old.required:
        problems.append(f"input column {name!r} is now required (it was optional)")
    if old.nullable and not new.nullable:
        problems.append(f"input column {name!r} no longer accepts null")
    if new.categories is not None:
        if old.categories is None:
            problems.append(
                f"input column {name!r} is now restricted to categories {list(new.categories)} "
                "(production accepts any value)"
            )
        else:
            removed = [value for value in old.categories if value not in set(new.categories)]
            if removed:
                problems.append(f"input column {name!r} no longer accepts categories {removed}")
    return problems


def _output_problems(candidate: Signature, production: Signature) -> list[str]:
    problems: list[str] = []
    new_outputs = {column.name: column for column in candidate.outputs}
    for old in production.outputs:
        new = new_outputs.get(old.name)
        if new is None:
            problems.append(f"output column {old.name!r} was removed")
            continue
        if normalise_type(new.type) != normalise_type(old.type):
            problems.append(
                f"output column {old.name!r} changed type from {normalise_type(old.type)!r} "
                f"to {normalise_type(new.type)!r}"
            )
        if new.nullable and not old.nullable:
            problems.append(f"output column {old.name!r} may now be null")
    return problems


def schema_compatible(
    *, rule: str, candidate: Signature | None, production: Signature | None
) -> RuleResult:
    """The candidate must accept every input production accepts and keep production's outputs.

    Inputs: no required production column removed; types equal or widened (see
    :data:`app.gates.signature.TYPE_WIDENINGS`); no column made required or
    non-nullable; no category removed (or a closed set imposed on an open
    column); no new required column. Outputs: none removed, none retyped, none
    made nullable. Without a production signature there is nothing to break.
    """
    if production is None:
        return RuleResult(
            rule,
            "schema_compatible",
            True,
            "no production signature to compare with",
            {"problems": []},
        )
    if candidate is None:
        problem = "the candidate has no signature but production has one"
        return RuleResult(rule, "schema_compatible", False, problem, {"problems": [problem]})
    problems = _input_problems(candidate, production) + _output_problems(candidate, production)
    if problems:
        return RuleResult(
            rule, "schema_compatible", False, "; ".join(problems), {"problems": problems}
        )
    return RuleResult(
        rule,
        "schema_compatible",
        True,
        "the candidate accepts every input production accepts and keeps its outputs",
        {"problems": []},
    )


# artifact_intact --------------------------------------------------------------

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _normalise_digest(digest: str | None) -> str | None:
    if digest is None:
        return None
    text = digest.strip().lower()
    text = text.removeprefix("sha256:")
    return text if _SHA256_HEX.fullmatch(text) else None


def artifact_intact(
    *,
    rule: str,
    present: bool,
    sha256_expected: str | None,
    sha256_observed: str | None,
    detail: str | None = None,
) -> RuleResult:
    """The stored artifact must exist and hash to the sha256 recorded at upload.

    Digests compare case-insensitively and may carry a ``sha256:`` prefix. A
    missing or malformed digest on either side fails: an artifact that cannot be
    verified is not known to be intact. ``detail`` (e.g. a storage error) is
    appended to the reason.
    """
    expected = _normalise_digest(sha256_expected)
    observed_digest = _normalise_digest(sha256_observed)
    observed = {
        "present": bool(present),
        "sha256_expected": sha256_expected,
        "sha256_observed": sha256_observed,
        "detail": detail,
    }
    if not present:
        reason = "the artifact is missing from storage"
        passed = False
    elif sha256_expected is None:
        reason, passed = "no sha256 was recorded for the artifact", False
    elif expected is None:
        reason, passed = f"the recorded sha256 {sha256_expected!r} is not a sha256 digest", False
    elif sha256_observed is None:
        reason, passed = "the artifact's sha256 was not computed", False
    elif observed_digest is None:
        reason, passed = f"the computed sha256 {sha256_observed!r} is not a sha256 digest", False
    elif expected != observed_digest:
        reason = (
            f"sha256 mismatch: recorded {expected}, stored artifact hashes to {observed_digest}"
        )
        passed = False
    else:
        reason, passed = f"artifact present, sha256 {expected} matches", True
    if detail:
        reason = f"{reason} ({detail})"
    return RuleResult(rule, "artifact_intact", passed, reason, observed)


# approvals --------------------------------------------------------------------


def approvals(*, rule: str, required: int, approvers: Sequence[str], submitter: str) -> RuleResult:
    """At least ``required`` distinct reviewers other than the submitter must approve.

    Self-approvals and repeated approvals by one reviewer do not count: four eyes
    means two people.
    """
    needed = as_count(required)
    if needed is None or needed < 0:
        raise ValueError(f"required must be a non-negative integer, got {required!r}")
    names: object = approvers
    if isinstance(names, str):
        raise ValueError("approvers must be a list of names, not a string")
    distinct = list(dict.fromkeys(name for name in approvers if name))
    counted = [name for name in distinct if name != submitter]
    self_approved = submitter in distinct
    observed = {
        "required": needed,
        "approvers": counted,
        "ignored_self_approval": self_approved,
        "submitter": submitter,
    }
    reason = (
        f"{len(counted)} of {needed} required approval(s) from reviewers other than the submitter"
    )
    if self_approved:
        reason += " (the submitter's own approval does not count)"
    return RuleResult(
        rule, "approvals", len(counted) >= needed, reason, observed, threshold=float(needed)
    )
