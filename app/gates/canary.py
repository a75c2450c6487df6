"""Canary analysis: a new version against the incumbent, judged on what serving saw.

Pure functions over counts and samples (numpy, scipy); no database, no HTTP. A
rollout calls :func:`judge` once per analysis look with the *cumulative*
observations of both arms since the rollout started, and :func:`decide` with the
looks so far. The design follows Kayenta (each metric classified, a weighted score,
pass and marginal thresholds) and Argo Rollouts (``failure_limit`` failed looks in a
row abort), with one difference that matters: the stated ``alpha`` holds for the
whole rollout, however many times it is looked at (decision record 0018).

Why: a fixed-sample test at level ``alpha`` judged on every interval aborts a sound
canary with probability ``1 - (1 - alpha)**k`` over ``k`` independent looks (about
64 % after twenty looks at 5 %). Here every scalar metric is judged with an
*always-valid* one-sided test, the mixture sequential probability ratio test
(mSPRT): with ``B`` the cumulative evidence on the information scale and a
half-normal mixing distribution of scale ``tau`` over the harmful effect ``theta >= 0``,

    Lambda(t) = 2 / sqrt(1 + tau^2 t) * exp(B^2 / (2 a)) * Phi(B / sqrt(a)),
    a = t + 1 / tau^2,

is a non-negative martingale under ``theta <= tolerance`` (a supermartingale below
it), so by Ville's inequality ``P(Lambda(t) >= 1/alpha for some t) <= alpha``, for any
number of looks at any times. Metrics share ``alpha`` by weight (Bonferroni), so a
whole rollout of a version no worse than the incumbent is aborted with probability
at most ``alpha``. Prediction distributions (no scalar drift) spend
``alpha_m / (k (k + 1))`` at look ``k`` (these sum to ``alpha_m`` over all looks).

Per metric kind:

* ``error_rate`` (lower is better): errors over requests; ``theta`` is the canary's
  rate minus the incumbent's; harmful when ``theta > tolerance`` (absolute).
* ``accuracy`` (higher is better, needs labels): correct over labelled; harmful when
  the incumbent's accuracy minus the canary's exceeds ``tolerance``.
* ``latency`` (lower is better): the Mann-Whitney U statistic of
  ``log(canary) - log(1 + tolerance)`` against ``log(incumbent)``; ``theta`` is
  ``sqrt(12) (P(X > Y) - 1/2)``, the standardised effect whose U estimate has unit
  variance per unit of information ``n1 n2 / (n1 + n2 + 1)``. The effect reported is
  the Hodges-Lehmann estimate of the relative shift.
* ``prediction_distribution``: chi-square test of homogeneity of the two histograms
  (classes or score bins) and the Jensen-Shannon distance; harmful when the distance
  exceeds ``tolerance`` and the test rejects at the look's share of alpha.

Each result also carries the fixed-sample p-value of the same data: the number a
per-interval judge (Kayenta, Argo) would have used, reported for comparison only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special, stats

FloatArray = npt.NDArray[np.float64]


class MetricKind(StrEnum):
    ERROR_RATE = "error_rate"
    ACCURACY = "accuracy"
    LATENCY = "latency"
    PREDICTION_DISTRIBUTION = "prediction_distribution"


class Verdict(StrEnum):
    PASS = "pass"  # noqa: S105 (a verdict, not a secret)
    FAIL = "fail"
    NODATA = "nodata"


class LookStatus(StrEnum):
    PASS = "pass"  # noqa: S105 (a look status, not a secret)
    MARGINAL = "marginal"
    FAIL = "fail"
    NODATA = "nodata"


class Action(StrEnum):
    ADVANCE = "advance"
    HOLD = "hold"
    ABORT = "abort"


# Default mixing scales: the size of harm the test is most sensitive to.
DEFAULT_TAU: Mapping[MetricKind, float] = {
    MetricKind.ERROR_RATE: 0.01,  # one percentage point
    MetricKind.ACCURACY: 0.02,  # two percentage points
    MetricKind.LATENCY: 0.2,  # standardised effect (about a 6 % shift in P(X > Y))
}


@dataclass(frozen=True)
class MetricSpec:
    """One metric of an analysis: what is compared, how much harm is tolerated."""

    name: str
    kind: MetricKind
    tolerance: float = 0.0
    weight: float = 1.0
    min_sample: int = 200
    critical: bool = False
    tau: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", MetricKind(self.kind))
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ValueError(f"metric {self.name!r}: tolerance must be a finite number >= 0")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"metric {self.name!r}: weight must be > 0")
        if self.min_sample < 1:
            raise ValueError(f"metric {self.name!r}: min_sample must be >= 1")
        if self.tau is not None and not (math.isfinite(self.tau) and self.tau > 0):
            raise ValueError(f"metric {self.name!r}: tau must be > 0")
        if self.kind is MetricKind.PREDICTION_DISTRIBUTION and self.tolerance > 1:
            raise ValueError(f"metric {self.name!r}: a Jensen-Shannon distance is at most 1")

    @property
    def mixing_scale(self) -> float:
        return self.tau if self.tau is not None else DEFAULT_TAU.get(self.kind, 0.2)


@dataclass(frozen=True)
class AnalysisPlan:
    """Metrics, the rollout-wide alpha and the score thresholds (Kayenta's names)."""

    metrics: tuple[MetricSpec, ...]
    alpha: float = 0.05
    pass_score: float = 95.0
    marginal_score: float = 75.0
    failure_limit: int = 1

    def __post_init__(self) -> None:
        if not self.metrics:
            raise ValueError("an analysis needs at least one metric")
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError("metric names must be unique")
        if not 0 < self.alpha < 0.5:
            raise ValueError("alpha must be between 0 and 0.5")
        if not 0 <= self.marginal_score <= self.pass_score <= 100:
            raise ValueError("need 0 <= marginal_score <= pass_score <= 100")
        if self.failure_limit < 1:
            raise ValueError("failure_limit must be >= 1")

    @property
    def critical(self) -> bool:
        """Whether a metric's failure aborts on its own (then every batch may be judged)."""
        return any(m.critical for m in self.metrics)

    def alpha_of(self, metric: MetricSpec) -> float:
        """The metric's share of the rollout-wide alpha (by weight)."""
        total = sum(m.weight for m in self.metrics)
        return self.alpha * metric.weight / total


@dataclass(frozen=True)
class Rates:
    """Events (errors, or correct predictions) out of trials, for one arm."""

    events: int
    trials: int

    def __post_init__(self) -> None:
        if self.trials < 0 or not 0 <= self.events <= self.trials:
            raise ValueError(f"need 0 <= events <= trials, got {self.events}/{self.trials}")

    @property
    def rate(self) -> float | None:
        return self.events / self.trials if self.trials else None


@dataclass(frozen=True)
class ArmData:
    """What one arm (canary or incumbent) was seen doing, cumulative since the start.

    ``latency_sample`` is a bounded random sample of latencies (milliseconds);
    ``predictions`` a histogram: class or score bin -> count.
    """

    errors: Rates | None = None
    correct: Rates | None = None
    latency_sample: Sequence[float] = ()
    predictions: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricResult:
    metric: str
    kind: MetricKind
    verdict: Verdict
    reason: str
    canary: float | None
    incumbent: float | None
    effect: float | None
    tolerance: float
    p_value: float | None  # always-valid (sequential) p-value
    fixed_p_value: float | None  # what a per-interval judge would have used
    alpha: float  # this metric's level at this look
    samples: tuple[int, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "kind": str(self.kind),
            "verdict": str(self.verdict),
            "reason": self.reason,
            "canary": _finite(self.canary),
            "incumbent": _finite(self.incumbent),
            "effect": _finite(self.effect),
            "tolerance": self.tolerance,
            "p_value": _finite(self.p_value),
            "fixed_p_value": _finite(self.fixed_p_value),
            "alpha": self.alpha,
            "samples": list(self.samples),
        }


@dataclass(frozen=True)
class Look:
    """One analysis look: every metric's result, the score and the look's status."""

    number: int
    results: tuple[MetricResult, ...]
    score: float | None
    status: LookStatus
    critical_failure: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "score": self.score,
            "status": str(self.status),
            "critical_failure": self.critical_failure,
            "metrics": [r.to_dict() for r in self.results],
        }


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


# The sequential test ---------------------------------------------------------------


def msprt_log_lr(b: Any, info: Any, tau: float) -> Any:
    """log Lambda of the one-sided normal-mixture SPRT (see the module docstring).

    ``b`` is the evidence on the information scale (``z * sqrt(info)``), ``info`` the
    information (``1 / se**2`` for a difference of rates). Works on numpy arrays.
    """
    b_arr = np.asarray(b, dtype=np.float64)
    t = np.asarray(info, dtype=np.float64)
    a = t + 1.0 / (tau * tau)
    return (
        math.log(2.0)
        - 0.5 * np.log1p(tau * tau * t)
        + b_arr * b_arr / (2.0 * a)
        + special.log_ndtr(b_arr / np.sqrt(a))
    )


def always_valid_p(b: Any, info: Any, tau: float) -> Any:
    """``min(1, 1 / Lambda)``: the sequential p-value of one look."""
    return np.minimum(1.0, np.exp(-msprt_log_lr(b, info, tau)))


def rate_statistics(
    x_canary: Any, n_canary: Any, x_incumbent: Any, n_incumbent: Any, tolerance: float
) -> tuple[Any, Any, Any]:
    """``(difference, z, information)`` for ``H0: p_c - p_i <= tolerance``.

    Pooled standard error when ``tolerance == 0`` (the standard test of equal rates,
    best calibrated for rare events), unpooled otherwise; an unpooled standard error
    of zero falls back to the pooled one; both zero means no evidence (z = 0).
    Works on numpy arrays (the Monte Carlo runs thousands of rollouts at once).
    """
    xc = np.asarray(x_canary, dtype=np.float64)
    nc = np.asarray(n_canary, dtype=np.float64)
    xi = np.asarray(x_incumbent, dtype=np.float64)
    ni = np.asarray(n_incumbent, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pc = xc / nc
        pi = xi / ni
        diff = pc - pi
        pooled = (xc + xi) / (nc + ni)
        var_pooled = pooled * (1 - pooled) * (1 / nc + 1 / ni)
        var = var_pooled if tolerance == 0 else pc * (1 - pc) / nc + pi * (1 - pi) / ni
        var = np.where(var > 0, var, var_pooled)
        ok = var > 0
        z = np.where(ok, (diff - tolerance) / np.sqrt(np.where(ok, var, 1.0)), 0.0)
        info = np.where(ok, 1.0 / np.where(ok, var, 1.0), 0.0)
    return diff, z, info


def _fixed_p(z: float) -> float:
    return float(stats.norm.sf(z))


# Per-metric judgements -------------------------------------------------------------


def _nodata(
    spec: MetricSpec,
    *,
    alpha: float,
    samples: tuple[int, int],
    seen: str,
    canary: float | None = None,
    incumbent: float | None = None,
) -> MetricResult:
    """Too little data on a side to judge: what was seen, and from how much it is judged."""
    return MetricResult(
        metric=spec.name,
        kind=spec.kind,
        verdict=Verdict.NODATA,
        reason=f"{seen}; judged from {spec.min_sample} on each side",
        canary=canary,
        incumbent=incumbent,
        effect=None,
        tolerance=spec.tolerance,
        p_value=None,
        fixed_p_value=None,
        alpha=alpha,
        samples=samples,
    )


def _judged(
    spec: MetricSpec,
    *,
    alpha: float,
    samples: tuple[int, int],
    z: float,
    info: float,
    seen: str,
    canary: float | None,
    incumbent: float | None,
    effect: float,
) -> MetricResult:
    """A metric judged by the always-valid test of its statistic ``(z, info)``: it fails
    when the sequential p-value is at most ``alpha``; ``seen`` opens the reason."""
    p = float(always_valid_p(z * math.sqrt(info), info, spec.mixing_scale))
    failed = p <= alpha
    return MetricResult(
        metric=spec.name,
        kind=spec.kind,
        verdict=Verdict.FAIL if failed else Verdict.PASS,
        reason=f"{seen}; sequential p = {p:.3g} "
        + ("<=" if failed else ">")
        + f" alpha {alpha:.3g}",
        canary=canary,
        incumbent=incumbent,
        effect=effect,
        tolerance=spec.tolerance,
        p_value=p,
        fixed_p_value=_fixed_p(z),
        alpha=alpha,
        samples=samples,
    )


def _rate_metric(
    spec: MetricSpec, canary: Rates | None, incumbent: Rates | None, alpha: float
) -> MetricResult:
    higher_is_harm = spec.kind is MetricKind.ERROR_RATE
    what = "error rate" if higher_is_harm else "accuracy"
    n_c = canary.trials if canary else 0
    n_i = incumbent.trials if incumbent else 0
    if canary is None or incumbent is None or min(n_c, n_i) < spec.min_sample:
        return _nodata(
            spec,
            alpha=alpha,
            samples=(n_c, n_i),
            seen=f"{what}: {n_c} canary and {n_i} incumbent observations",
            canary=canary.rate if canary else None,
            incumbent=incumbent.rate if incumbent else None,
        )
    # Harm is oriented so that a positive difference is bad.
    if higher_is_harm:
        diff, z, info = rate_statistics(canary.events, n_c, incumbent.events, n_i, spec.tolerance)
    else:
        diff, z, info = rate_statistics(incumbent.events, n_i, canary.events, n_c, spec.tolerance)
    diff_f = float(diff)
    c_rate, i_rate = canary.rate, incumbent.rate
    worse = "higher" if higher_is_harm else "lower"
    return _judged(
        spec,
        alpha=alpha,
        samples=(n_c, n_i),
        z=float(z),
        info=float(info),
        seen=f"{what} canary {c_rate:.4%} vs incumbent {i_rate:.4%} "
        f"(n {n_c} / {n_i}); canary {worse} by {diff_f:+.4%} with {spec.tolerance:.4%} "
        "tolerated",
        canary=c_rate,
        incumbent=i_rate,
        effect=diff_f,
    )


def hodges_lehmann_shift(canary: FloatArray, incumbent: FloatArray, limit: int = 500) -> float:
    """Relative shift of canary over incumbent: ``exp(median(log c_i - log y_j)) - 1``.

    Uses evenly spaced order statistics of at most ``limit`` values per side, so the
    cost is bounded whatever the sample sizes.
    """

    def thin(values: FloatArray) -> FloatArray:
        ordered: FloatArray = np.sort(values)
        if len(ordered) <= limit:
            return ordered
        picked: FloatArray = ordered[np.linspace(0, len(ordered) - 1, limit).round().astype(int)]
        return picked

    lc, li = np.log(thin(canary)), np.log(thin(incumbent))
    return float(math.expm1(float(np.median(lc[:, None] - li[None, :]))))


def _latency_metric(
    spec: MetricSpec, canary: Sequence[float], incumbent: Sequence[float], alpha: float
) -> MetricResult:
    c = np.asarray(canary, dtype=np.float64)
    y = np.asarray(incumbent, dtype=np.float64)
    n_c, n_i = len(c), len(y)
    if min(n_c, n_i) < spec.min_sample:
        return _nodata(
            spec,
            alpha=alpha,
            samples=(n_c, n_i),
            seen=f"latency: {n_c} canary and {n_i} incumbent samples",
            canary=float(np.median(c)) if n_c else None,
            incumbent=float(np.median(y)) if n_i else None,
        )
    if np.any(c <= 0) or np.any(y <= 0):
        # Latencies are positive; a zero would break the logarithm. Clamp to 1 us.
        c, y = np.maximum(c, 1e-3), np.maximum(y, 1e-3)
    z, info = mann_whitney_z(np.log(c) - math.log1p(spec.tolerance), np.log(y))
    shift = hodges_lehmann_shift(c, y)
    med_c, med_y = float(np.median(c)), float(np.median(y))
    return _judged(
        spec,
        alpha=alpha,
        samples=(n_c, n_i),
        z=z,
        info=info,
        seen=f"latency median canary {med_c:.4g} ms vs incumbent {med_y:.4g} ms "
        f"(n {n_c} / {n_i}); shift {shift:+.2%} with {spec.tolerance:.2%} tolerated",
        canary=med_c,
        incumbent=med_y,
        effect=shift,
    )


def mann_whitney_z(x: FloatArray, y: FloatArray) -> tuple[float, float]:
    """``(z, information)`` of the one-sided Mann-Whitney test that x is larger.

    ``z`` is scipy's normal approximation with the tie correction (no continuity
    correction, so that it is a smooth process over looks); the information is
    ``n1 n2 / (n1 + n2 + 1)`` so that ``z * sqrt(info)`` estimates
    ``info * sqrt(12) (P(X > Y) - 1/2)``.
    """
    n1, n2 = len(x), len(y)
    u = float(stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic").statistic)
    ranks = stats.rankdata(np.concatenate([x, y]))
    _, counts = np.unique(ranks, return_counts=True)
    n = n1 + n2
    tie_term = float(np.sum(counts**3 - counts)) / (n * (n - 1))
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term)
    if var <= 0:
        return 0.0, 0.0
    z = (u - n1 * n2 / 2.0) / math.sqrt(var)
    return z, n1 * n2 / (n + 1.0)


def jensen_shannon_distance(p: FloatArray, q: FloatArray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two count vectors."""
    p = p / p.sum()
    q = q / q.sum()
    m = (p + q) / 2

    def kl(a: FloatArray, b: FloatArray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return math.sqrt(max(0.0, (kl(p, m) + kl(q, m)) / 2))


def _distribution_metric(
    spec: MetricSpec,
    canary: Mapping[str, int],
    incumbent: Mapping[str, int],
    alpha: float,
) -> MetricResult:
    n_c, n_i = sum(canary.values()), sum(incumbent.values())
    base = {
        "metric": spec.name,
        "kind": spec.kind,
        "tolerance": spec.tolerance,
        "alpha": alpha,
        "samples": (n_c, n_i),
    }
    if min(n_c, n_i) < spec.min_sample:
        return _nodata(
            spec,
            alpha=alpha,
            samples=(n_c, n_i),
            seen=f"predictions: {n_c} canary and {n_i} incumbent",
        )
    keys = sorted(set(canary) | set(incumbent))
    table = np.array(
        [[canary.get(k, 0) for k in keys], [incumbent.get(k, 0) for k in keys]], dtype=float
    )
    table = table[:, table.sum(axis=0) > 0]
    distance = jensen_shannon_distance(table[0], table[1])
    p = 1.0 if table.shape[1] < 2 else float(stats.chi2_contingency(table, correction=False).pvalue)
    failed = p <= alpha and distance > spec.tolerance
    reason = (
        f"prediction distributions: Jensen-Shannon distance {distance:.4f} "
        f"({spec.tolerance:.4f} tolerated), chi-square p = {p:.3g} at this look's "
        f"alpha {alpha:.3g} (n {n_c} / {n_i})"
    )
    return MetricResult(
        verdict=Verdict.FAIL if failed else Verdict.PASS,
        reason=reason,
        canary=None,
        incumbent=None,
        effect=distance,
        p_value=p,
        fixed_p_value=p,
        **base,  # type: ignore[arg-type]
    )


def judge_metric(
    spec: MetricSpec, canary: ArmData, incumbent: ArmData, *, alpha: float, look: int
) -> MetricResult:
    """One metric at one look; ``alpha`` is the metric's share of the rollout's alpha."""
    if spec.kind is MetricKind.ERROR_RATE:
        return _rate_metric(spec, canary.errors, incumbent.errors, alpha)
    if spec.kind is MetricKind.ACCURACY:
        return _rate_metric(spec, canary.correct, incumbent.correct, alpha)
    if spec.kind is MetricKind.LATENCY:
        return _latency_metric(spec, canary.latency_sample, incumbent.latency_sample, alpha)
    # No scalar drift to mix over: spend alpha / (k (k + 1)) at look k.
    return _distribution_metric(
        spec, canary.predictions, incumbent.predictions, alpha / (look * (look + 1))
    )


# The look and the decision ---------------------------------------------------------


def judge(plan: AnalysisPlan, canary: ArmData, incumbent: ArmData, *, look: int) -> Look:
    """Every metric of the plan at look number ``look`` (1-based), and the score.

    The score is 100 times the weight of passing metrics over the weight of judged
    ones (metrics without enough data are left out, as Kayenta's Nodata). A look
    with nothing judged is ``nodata``; a failed critical metric fails the look
    whatever the score.
    """
    if look < 1:
        raise ValueError("looks are numbered from 1")
    results = tuple(
        judge_metric(spec, canary, incumbent, alpha=plan.alpha_of(spec), look=look)
        for spec in plan.metrics
    )
    weights = {spec.name: spec.weight for spec in plan.metrics}
    critical = {spec.name for spec in plan.metrics if spec.critical}
    judged = [r for r in results if r.verdict is not Verdict.NODATA]
    critical_failure = any(r.verdict is Verdict.FAIL and r.metric in critical for r in results)
    if not judged:
        return Look(look, results, None, LookStatus.NODATA, False)
    total = sum(weights[r.metric] for r in judged)
    passed = sum(weights[r.metric] for r in judged if r.verdict is Verdict.PASS)
    score = round(100.0 * passed / total, 6)
    if critical_failure or score < plan.marginal_score:
        status = LookStatus.FAIL
    elif score < plan.pass_score:
        status = LookStatus.MARGINAL
    else:
        status = LookStatus.PASS
    return Look(look, results, score, status, critical_failure)


def decide(plan: AnalysisPlan, looks: Sequence[Look], *, hold_satisfied: bool) -> Decision:
    """Advance, hold or abort after the latest look.

    Abort on a failed critical metric, or on ``failure_limit`` failed looks in a row.
    Advance when the step's hold is satisfied and the latest look passed with every
    metric judged. Otherwise hold, saying what is awaited.
    """
    if not looks:
        return Decision(Action.HOLD, "no analysis yet")
    last = looks[-1]
    failing = [r for r in last.results if r.verdict is Verdict.FAIL]
    if last.critical_failure:
        names = ", ".join(r.metric for r in failing)
        return Decision(Action.ABORT, f"critical metric failed ({names}): {failing[0].reason}")
    streak = 0
    for look in reversed(looks):
        if look.status is not LookStatus.FAIL:
            break
        streak += 1
    if streak >= plan.failure_limit:
        detail = "; ".join(r.reason for r in failing)
        return Decision(
            Action.ABORT,
            f"{streak} failed look(s) in a row (failure_limit {plan.failure_limit}); "
            f"score {last.score}: {detail}",
        )
    if last.status is LookStatus.FAIL:
        return Decision(
            Action.HOLD,
            f"look {last.number} failed (score {last.score}); "
            f"{streak} of {plan.failure_limit} failed looks before an abort",
        )
    waiting = [r.metric for r in last.results if r.verdict is Verdict.NODATA]
    if waiting:
        return Decision(Action.HOLD, f"waiting for enough observations: {', '.join(waiting)}")
    if last.status is LookStatus.MARGINAL:
        return Decision(Action.HOLD, f"score {last.score} is marginal (pass at {plan.pass_score})")
    if not hold_satisfied:
        return Decision(Action.HOLD, f"analysis passes (score {last.score}); step hold not over")
    return Decision(Action.ADVANCE, f"analysis passes (score {last.score}) and the hold is over")
