"""A/B analysis: two versions served side by side on a fixed split, per-arm report.

Pure functions (numpy, scipy). An A/B report can be read at any time while the test
runs, and people do read it often: a fixed-sample p-value read at every look declares a
difference between identical arms far more often than its alpha (the peeking problem of
decision record 0018). So the verdict of each metric (``significant``) uses the
*two-sided* always-valid test, the normal-mixture SPRT

    Lambda(t) = 1 / sqrt(1 + tau^2 t) * exp(tau^2 B^2 / (2 (1 + tau^2 t))),

with ``B = effect * t`` the evidence on the information scale ``t = 1 / se^2``; by
Ville's inequality ``P(Lambda >= 1/alpha at any look) <= alpha`` for identical arms,
however often the report is read. Its confidence interval is the matching confidence
sequence (it covers the true effect at every look at once with probability
``1 - alpha``):

    effect +- sqrt((1 + tau^2 t) (2 log(1/alpha) + log(1 + tau^2 t))) / (tau t).

Beside them every metric reports the fixed-sample two-sided p-value and Wald interval
(valid for one look planned in advance, e.g. at the end of a test of fixed size).

* ``error_rate`` and ``accuracy``: the difference of rates ``b - a``; the test uses the
  pooled standard error (the standard test of equal rates), the intervals the unpooled one.
* ``latency``: Mann-Whitney U of b against a (tie-corrected, no continuity correction);
  the effect is the probability of superiority ``P(latency_b > latency_a)`` (0.5: no
  difference), tested on the standardised scale ``sqrt(12) (P - 1/2)`` with information
  ``n_a n_b / (n_a + n_b + 1)``; the Hodges-Lehmann relative shift is reported too.

Nothing here promotes anything: the report says which arm is better on which metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import stats

from app.gates.canary import ArmData, Rates, hodges_lehmann_shift, mann_whitney_z

# Mixing scales (the size of difference each test is most sensitive to).
TAU_ERROR_RATE = 0.01
TAU_ACCURACY = 0.02
TAU_LATENCY = 0.2
SQRT12 = math.sqrt(12.0)


def two_sided_log_lr(b: Any, info: Any, tau: float) -> Any:
    """log Lambda of the two-sided normal-mixture SPRT; works on numpy arrays."""
    b_arr = np.asarray(b, dtype=np.float64)
    t = np.asarray(info, dtype=np.float64)
    s = 1.0 + tau * tau * t
    return -0.5 * np.log(s) + tau * tau * b_arr * b_arr / (2.0 * s)


def two_sided_always_valid_p(b: Any, info: Any, tau: float) -> Any:
    return np.minimum(1.0, np.exp(-two_sided_log_lr(b, info, tau)))


def confidence_sequence_radius(info: float, tau: float, alpha: float) -> float:
    """Half-width of the always-valid interval of an effect with information ``info``."""
    if info <= 0:
        return math.inf
    s = 1.0 + tau * tau * info
    return math.sqrt(s * (2.0 * math.log(1.0 / alpha) + math.log(s))) / (tau * info)


@dataclass(frozen=True)
class MetricComparison:
    metric: str
    a: float | None
    b: float | None
    effect: float | None
    effect_name: str
    confidence_interval: tuple[float, float] | None
    fixed_confidence_interval: tuple[float, float] | None
    p_value: float | None
    fixed_p_value: float | None
    significant: bool
    better: str | None
    samples: tuple[int, int]
    reason: str
    extra: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        def pair(v: tuple[float, float] | None) -> list[float] | None:
            return None if v is None else [float(v[0]), float(v[1])]

        return {
            "metric": self.metric,
            "a": self.a,
            "b": self.b,
            "effect": self.effect,
            "effect_name": self.effect_name,
            "confidence_interval": pair(self.confidence_interval),
            "fixed_confidence_interval": pair(self.fixed_confidence_interval),
            "p_value": self.p_value,
            "fixed_p_value": self.fixed_p_value,
            "significant": self.significant,
            "better": self.better,
            "samples": list(self.samples),
            "reason": self.reason,
            **dict(self.extra),
        }


def _clip(lo: float, hi: float, low: float, high: float) -> tuple[float, float]:
    return max(low, lo), min(high, hi)


def compare_rates(
    metric: str,
    a: Rates | None,
    b: Rates | None,
    *,
    alpha: float,
    min_sample: int,
    lower_is_better: bool,
    tau: float,
) -> MetricComparison:
    """Rates of arm b against arm a: the difference ``b - a``, tested two-sided."""
    n_a = a.trials if a else 0
    n_b = b.trials if b else 0
    rate_a = a.rate if a else None
    rate_b = b.rate if b else None
    empty = MetricComparison(
        metric=metric, a=rate_a, b=rate_b, effect=None, effect_name="difference b - a",
        confidence_interval=None, fixed_confidence_interval=None, p_value=None,
        fixed_p_value=None, significant=False, better=None, samples=(n_a, n_b),
        reason=f"{metric}: {n_a} and {n_b} observations; judged from {min_sample} on each side",
        extra={},
    )  # fmt: skip
    if a is None or b is None or min(n_a, n_b) < min_sample:
        return empty
    pa, pb = a.events / n_a, b.events / n_b
    diff = pb - pa
    pooled = (a.events + b.events) / (n_a + n_b)
    var_test = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    var_ci = pa * (1 - pa) / n_a + pb * (1 - pb) / n_b
    if var_ci <= 0:
        var_ci = var_test
    if var_test <= 0:
        # Every observation the same on both sides: no evidence of a difference.
        return replace(
            empty, effect=0.0, p_value=1.0, fixed_p_value=1.0,
            reason=f"{metric}: {pa:.4%} on both arms (n {n_a} / {n_b}); no difference",
        )  # fmt: skip
    info = 1.0 / var_test
    z = diff / math.sqrt(var_test)
    p_seq = float(two_sided_always_valid_p(z * math.sqrt(info), info, tau))
    p_fixed = float(2 * stats.norm.sf(abs(z)))
    radius = confidence_sequence_radius(1.0 / var_ci, tau, alpha)
    wald = float(stats.norm.isf(alpha / 2)) * math.sqrt(var_ci)
    significant = p_seq <= alpha
    better = None
    if significant:
        b_better = diff < 0 if lower_is_better else diff > 0
        better = "b" if b_better else "a"
    reason = (
        f"{metric}: a {pa:.4%} vs b {pb:.4%} (n {n_a} / {n_b}); b - a = {diff:+.4%}; "
        f"always-valid p = {p_seq:.3g} " + ("<=" if significant else ">") + f" alpha {alpha:.3g}"
        + (f": {better} is better" if better else ": no significant difference")
    )  # fmt: skip
    return MetricComparison(
        metric=metric,
        a=pa,
        b=pb,
        effect=diff,
        effect_name="difference b - a",
        confidence_interval=_clip(diff - radius, diff + radius, -1.0, 1.0),
        fixed_confidence_interval=_clip(diff - wald, diff + wald, -1.0, 1.0),
        p_value=p_seq,
        fixed_p_value=p_fixed,
        significant=significant,
        better=better,
        samples=(n_a, n_b),
        reason=reason,
        extra={},
    )


def compare_latency(
    a: list[float] | tuple[float, ...],
    b: list[float] | tuple[float, ...],
    *,
    alpha: float,
    min_sample: int,
    tau: float = TAU_LATENCY,
) -> MetricComparison:
    """Latency of b against a: probability of superiority ``P(b > a)``, two-sided."""
    x = np.maximum(np.asarray(a, dtype=np.float64), 1e-3)
    y = np.maximum(np.asarray(b, dtype=np.float64), 1e-3)
    n_a, n_b = int(x.size), int(y.size)
    med_a = float(np.median(x)) if n_a else None
    med_b = float(np.median(y)) if n_b else None
    if min(n_a, n_b) < min_sample:
        return MetricComparison(
            metric="latency", a=med_a, b=med_b, effect=None,
            effect_name="P(latency b > latency a)", confidence_interval=None,
            fixed_confidence_interval=None, p_value=None, fixed_p_value=None,
            significant=False, better=None, samples=(n_a, n_b),
            reason=f"latency: {n_a} and {n_b} samples; judged from {min_sample} on each side",
            extra={"shift": None},
        )  # fmt: skip
    z, info = mann_whitney_z(np.log(y), np.log(x))
    theta = z / math.sqrt(info) if info > 0 else 0.0
    superiority = 0.5 + theta / SQRT12
    p_seq = float(two_sided_always_valid_p(z * math.sqrt(info), info, tau)) if info else 1.0
    p_fixed = float(2 * stats.norm.sf(abs(z)))
    radius = confidence_sequence_radius(info, tau, alpha) / SQRT12
    wald = float(stats.norm.isf(alpha / 2)) / math.sqrt(info) / SQRT12 if info else math.inf
    shift = hodges_lehmann_shift(y, x)
    significant = p_seq <= alpha
    better = ("a" if superiority > 0.5 else "b") if significant else None
    reason = (
        f"latency: median a {med_a:.4g} ms vs b {med_b:.4g} ms (n {n_a} / {n_b}); "
        f"P(b > a) = {superiority:.4f}, shift {shift:+.2%}; always-valid p = {p_seq:.3g} "
        + ("<=" if significant else ">")
        + f" alpha {alpha:.3g}"
        + (f": {better} is faster" if better else ": no significant difference")
    )
    return MetricComparison(
        metric="latency",
        a=med_a,
        b=med_b,
        effect=superiority,
        effect_name="P(latency b > latency a)",
        confidence_interval=_clip(superiority - radius, superiority + radius, 0.0, 1.0),
        fixed_confidence_interval=_clip(superiority - wald, superiority + wald, 0.0, 1.0),
        p_value=p_seq,
        fixed_p_value=p_fixed,
        significant=significant,
        better=better,
        samples=(n_a, n_b),
        reason=reason,
        extra={"shift": shift if math.isfinite(shift) else None},
    )


def ab_report(a: ArmData, b: ArmData, *, alpha: float, min_sample: int) -> list[MetricComparison]:
    """Error rate, accuracy (when labelled) and latency of arm b against arm a; each at
    level ``alpha`` (no correction across the metrics: each answers its own question)."""
    if not 0 < alpha < 0.5:
        raise ValueError("alpha must be between 0 and 0.5")
    out = [
        compare_rates("error_rate", a.errors, b.errors, alpha=alpha, min_sample=min_sample,
                      lower_is_better=True, tau=TAU_ERROR_RATE),
    ]  # fmt: skip
    if a.correct is not None or b.correct is not None:
        out.append(
            compare_rates("accuracy", a.correct, b.correct, alpha=alpha, min_sample=min_sample,
                          lower_is_better=False, tau=TAU_ACCURACY)
        )  # fmt: skip
    out.append(
        compare_latency(list(a.latency_sample), list(b.latency_sample), alpha=alpha,
                        min_sample=min_sample)
    )  # fmt: skip
    return out
