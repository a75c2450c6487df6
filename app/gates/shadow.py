"""Shadow analysis: a shadow version against the primary over the same requests.

Pure functions over counts and samples (numpy, scipy); no database. A shadow version
scores the requests the primary answered without affecting the answers; serving posts
both predictions under the request's key. The observation store pairs them by key
(primary and shadow rows of one key, kept for the observation retention) and hands
these functions the paired counts:

* **agreement** (classification): the share of paired requests on which the shadow's
  class equals the primary's (a score: the same side of 0.5);
* **mean absolute difference** (regression, and scores): ``mean |shadow - primary|``;
* **latency**: Mann-Whitney U (two-sided) of the shadow's latencies against the
  primary's over the same windows, with the Hodges-Lehmann relative shift;
* **error rate**: the two-proportion z test (two-sided, pooled standard error);
* **prediction distributions**: Jensen-Shannon distance and the chi-square test of
  homogeneity of the two histograms.

The ``shadow_agreement`` gate decides on confidence bounds, not on point estimates, so
that a shadow that is only lucky on a few hundred requests does not pass: the exact
(Clopper-Pearson) lower bound of the agreement must reach ``min_agreement`` and, when
``max_mae`` is set, the one-sided t upper bound of the mean absolute difference must be
at most ``max_mae``; ``alpha`` is split between the two bounds when both are used. A
shadow whose true agreement is below ``min_agreement`` passes with probability at most
``alpha`` (see ``tests/gates/test_shadow_montecarlo.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from app.gates.canary import Rates, hodges_lehmann_shift, jensen_shannon_distance
from app.gates.result import RuleResult


@dataclass(frozen=True)
class ShadowPairs:
    """Primary and shadow predictions of the same requests, paired by request key.

    ``agreeing`` out of ``class_pairs`` (both class predictions, or both scores);
    ``abs_diff_sum`` and ``abs_diff_sq_sum`` over ``value_pairs`` (both values, or both
    scores); ``primary_versions`` counts the pairs by the version that answered.
    """

    pairs: int = 0
    class_pairs: int = 0
    agreeing: int = 0
    value_pairs: int = 0
    abs_diff_sum: float = 0.0
    abs_diff_sq_sum: float = 0.0
    primary_versions: Mapping[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.agreeing <= self.class_pairs <= self.pairs:
            raise ValueError("need 0 <= agreeing <= class_pairs <= pairs")
        if not 0 <= self.value_pairs <= self.pairs:
            raise ValueError("need 0 <= value_pairs <= pairs")

    @property
    def agreement(self) -> float | None:
        return self.agreeing / self.class_pairs if self.class_pairs else None

    @property
    def mean_absolute_difference(self) -> float | None:
        return self.abs_diff_sum / self.value_pairs if self.value_pairs else None


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


# Bounds of the gate --------------------------------------------------------------------


def agreement_lower_bound(agreeing: int, pairs: int, alpha: float) -> float:
    """One-sided exact (Clopper-Pearson) lower confidence bound of a proportion at level
    ``1 - alpha``: ``P(bound > p) <= alpha`` for every true ``p``."""
    if pairs <= 0 or agreeing <= 0:
        return 0.0
    return float(stats.beta.ppf(alpha, agreeing, pairs - agreeing + 1))


def mae_upper_bound(n: int, abs_sum: float, abs_sq_sum: float, alpha: float) -> float | None:
    """One-sided t upper confidence bound of a mean absolute difference (``None`` below
    two pairs). The variance is clamped at 0 against rounding."""
    if n < 2:
        return None
    mean = abs_sum / n
    var = max(0.0, (abs_sq_sum - n * mean * mean) / (n - 1))
    return float(mean + stats.t.ppf(1 - alpha, n - 1) * math.sqrt(var / n))


def shadow_agreement(
    *,
    rule: str,
    pairs: ShadowPairs | None,
    min_agreement: float | None,
    min_pairs: int,
    max_mae: float | None,
    alpha: float,
    shadow_version: int,
) -> RuleResult:
    """The ``shadow_agreement`` gate on the paired predictions of a shadow version."""
    if not 0 < alpha < 0.5:
        raise ValueError("alpha must be between 0 and 0.5")
    checks = [c for c in (min_agreement, max_mae) if c is not None]
    if not checks:
        raise ValueError("a shadow_agreement rule needs min_agreement or max_mae")
    level = alpha / len(checks)
    observed: dict[str, Any] = {
        "shadow_version": shadow_version,
        "pairs": pairs.pairs if pairs else 0,
        "min_pairs": min_pairs,
        "alpha": alpha,
    }

    def result(passed: bool, reason: str) -> RuleResult:
        return RuleResult(
            rule, "shadow_agreement", passed, reason, observed, threshold=min_agreement
        )

    if pairs is None or pairs.pairs == 0:
        return result(
            False,
            f"no request was scored by version {shadow_version} in shadow and answered by "
            "the primary (post both predictions under the request key)",
        )
    reasons: list[str] = []
    passed = True
    if min_agreement is not None:
        n, k = pairs.class_pairs, pairs.agreeing
        bound = agreement_lower_bound(k, n, level)
        observed.update(
            class_pairs=n,
            agreeing=k,
            agreement=pairs.agreement,
            agreement_lower_bound=bound,
            min_agreement=min_agreement,
        )
        if n < min_pairs:
            passed = False
            reasons.append(f"{n} paired class predictions; the rule needs at least {min_pairs}")
        else:
            ok = bound >= min_agreement
            passed = passed and ok
            reasons.append(
                f"agreement {k}/{n} = {k / n:.4%}, lower {1 - level:.4g} bound {bound:.4%} "
                + (">=" if ok else "<")
                + f" {min_agreement:.4%}"
            )
    if max_mae is not None:
        n = pairs.value_pairs
        upper = mae_upper_bound(n, pairs.abs_diff_sum, pairs.abs_diff_sq_sum, level)
        observed.update(
            value_pairs=n,
            mean_absolute_difference=pairs.mean_absolute_difference,
            mae_upper_bound=upper,
            max_mae=max_mae,
        )
        if n < min_pairs or upper is None:
            passed = False
            reasons.append(f"{n} paired values; the rule needs at least {max(min_pairs, 2)}")
        else:
            ok = upper <= max_mae
            passed = passed and ok
            mae = pairs.abs_diff_sum / n
            reasons.append(
                f"mean absolute difference {mae:.6g} over {n} pairs, upper {1 - level:.4g} "
                f"bound {upper:.6g} " + ("<=" if ok else ">") + f" {max_mae:.6g}"
            )
    return result(passed, f"shadow version {shadow_version}: " + "; ".join(reasons))


# The report ----------------------------------------------------------------------------


def two_proportion_test(a: Rates, b: Rates) -> dict[str, Any]:
    """Two-sided z test of equal rates (pooled standard error); ``difference`` is b - a."""
    out: dict[str, Any] = {
        "rate_a": a.rate,
        "rate_b": b.rate,
        "difference": None,
        "z": None,
        "p_value": None,
    }
    if not a.trials or not b.trials:
        return out
    pa, pb = a.events / a.trials, b.events / b.trials
    pooled = (a.events + b.events) / (a.trials + b.trials)
    var = pooled * (1 - pooled) * (1 / a.trials + 1 / b.trials)
    out["difference"] = pb - pa
    if var <= 0:
        out.update(z=0.0, p_value=1.0)
        return out
    z = (pb - pa) / math.sqrt(var)
    out.update(z=z, p_value=float(2 * stats.norm.sf(abs(z))))
    return out


def latency_comparison(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Medians, the Hodges-Lehmann relative shift of b over a, and the two-sided
    Mann-Whitney p-value (asymptotic, tie-corrected)."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    out: dict[str, Any] = {
        "median_a": float(np.median(x)) if x.size else None,
        "median_b": float(np.median(y)) if y.size else None,
        "samples": [int(x.size), int(y.size)],
        "shift": None,
        "p_value": None,
    }
    if x.size < 2 or y.size < 2:
        return out
    xp, yp = np.maximum(x, 1e-3), np.maximum(y, 1e-3)
    out["shift"] = _finite(hodges_lehmann_shift(yp, xp))
    if np.all(np.concatenate([x, y]) == x[0]):
        out["p_value"] = 1.0
    else:
        p = stats.mannwhitneyu(y, x, alternative="two-sided", method="asymptotic").pvalue
        out["p_value"] = _finite(float(p))
    return out


def distribution_comparison(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, Any]:
    """Jensen-Shannon distance (base 2, in [0, 1]) and the chi-square test of homogeneity
    of two histograms (class or score bin -> count)."""
    n_a, n_b = sum(a.values()), sum(b.values())
    out: dict[str, Any] = {
        "samples": [n_a, n_b],
        "jensen_shannon": None,
        "chi_square": None,
        "p_value": None,
    }
    if not n_a or not n_b:
        return out
    keys = sorted(set(a) | set(b))
    table = np.array([[a.get(k, 0) for k in keys], [b.get(k, 0) for k in keys]], dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    out["jensen_shannon"] = jensen_shannon_distance(table[0], table[1])
    if table.shape[1] < 2:
        out.update(chi_square=0.0, p_value=1.0)
    else:
        test = stats.chi2_contingency(table, correction=False)
        out.update(chi_square=float(test.statistic), p_value=float(test.pvalue))
    return out


def pairs_summary(pairs: ShadowPairs) -> dict[str, Any]:
    return {
        "pairs": pairs.pairs,
        "class_pairs": pairs.class_pairs,
        "agreeing": pairs.agreeing,
        "agreement": pairs.agreement,
        "value_pairs": pairs.value_pairs,
        "mean_absolute_difference": pairs.mean_absolute_difference,
        "primary_versions": {str(k): v for k, v in sorted(pairs.primary_versions.items())},
    }
