"""Drift statistics: pure functions over counts and samples (numpy, scipy); no DB, no HTTP.

Definitions (docs/decisions/0005-drift-scores.md explains the choices):

- **Bins.** A numeric reference is cut at its deciles (inverted CDF, so cut points are
  observed values) into (up to) 10 bins. ``edges`` holds ``k + 1`` values: the
  reference's minimum, the inner cut points, its maximum.
  Only the inner cut points bin a value: bin ``i`` is ``[edges[i], edges[i+1])`` for
  the inner bins, and the first and last bins are open towards minus and plus infinity,
  so window values outside the reference's range still land in a bin.
- **PSI** (population stability index) of window proportions ``a`` against reference
  proportions ``e`` over the same bins: ``sum((a_i - e_i) * ln(a_i / e_i))``, each
  proportion first raised to at least ``EPSILON = 1e-4`` so that an empty bin gives a
  large but finite term instead of an infinite one.
- **PSI without drift**: the PSI of a window drawn from the reference distribution is
  not zero: it is noise of size about ``(k - 1) * (1/n + 1/m)`` (``n`` window and ``m``
  reference values; ``PSI * n*m/(n+m)`` is roughly chi-square with ``k - 1`` degrees of
  freedom), and much larger for small windows, where a bin the window leaves empty
  costs a whole epsilon term. Its distribution is simulated exactly instead: ``2000``
  pairs of multinomial draws of the window's and the reference's sizes from the
  reference proportions (seeded, so reports are reproducible).
  ``psi_critical`` is the ``1 - alpha`` quantile of that distribution, and
  ``false_alarm_probability`` the share of it above ``tau``.
- **Feature score**: ``psi * min(1, tau / psi_critical)``; equal to the PSI whenever the
  window is large enough for ``tau`` to stand above the noise (the usual case), and
  scaled down when the window is so small that noise alone could pass ``tau``. A feature
  has drifted when its score exceeds ``tau``, i.e. when its PSI exceeds both ``tau`` and
  ``psi_critical``: without drift that happens with probability at most
  ``min(alpha, false_alarm_probability)``.
- **Delta**, the report's overall score, is the largest feature score over the input
  features and the prediction.
- **KS**: ``scipy.stats.ks_2samp(window, reference, method="asymp")`` on the raw
  samples: the asymptotic p-value, accurate at the sizes drift windows have and fast
  (the exact one costs tens of milliseconds per feature at 500 x 5000 values).
- **Chi-square**: ``scipy.stats.chisquare`` of the window's category counts against the
  reference proportions (each at least ``EPSILON``, renormalised) times the window
  size; categories absent from the reference are pooled into one ``__unseen__`` cell.
- **Jensen-Shannon distance**: ``scipy.spatial.distance.jensenshannon`` of the two
  proportion vectors over the same cells, base 2 (so it lies in [0, 1]).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

EPSILON = 1e-4
DEFAULT_BINS = 10
UNSEEN = "__unseen__"

FloatArray = NDArray[np.float64]


# Profiles ---------------------------------------------------------------------------------


def quantile_edges(values: ArrayLike, bins: int = DEFAULT_BINS) -> list[float]:
    """``[min, inner cut points..., max]`` of ``values`` at its ``bins``-quantiles.

    Repeated quantiles (many equal values) collapse into one cut, so there may be fewer
    bins. A constant sample gets cuts just around its value, so that any other value
    in a window falls into a bin of its own."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        raise ValueError("no values to bin")
    lo, hi = float(data.min()), float(data.max())
    if lo == hi:
        return [lo, lo, float(np.nextafter(lo, np.inf)), float(np.nextafter(lo, np.inf))]
    probs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    # Cut points are observed values (inverted CDF), so that discrete data gets one bin
    # per value rather than empty bins between values.
    inner = np.unique(np.quantile(data, probs, method="inverted_cdf"))
    # A cut at the minimum would leave the open lower bin empty by construction.
    inner = inner[inner > lo]
    return [lo, *(float(x) for x in inner), hi]


def bin_counts(values: ArrayLike, edges: Sequence[float]) -> list[int]:
    """Counts of ``values`` in the bins of ``edges`` (outer bins open-ended)."""
    data = np.asarray(values, dtype=np.float64)
    k = len(edges) - 1
    if k < 1:
        raise ValueError("edges need at least two values")
    inner = np.asarray(edges[1:-1], dtype=np.float64)
    index = np.searchsorted(inner, data, side="right")
    return [int(c) for c in np.bincount(index, minlength=k)]


def subsample(values: ArrayLike, size: int, seed: int = 0) -> list[float]:
    """At most ``size`` of ``values``, chosen without replacement by a seeded generator
    (the same data always gives the same sample)."""
    data = np.asarray(values, dtype=np.float64)
    if data.size <= size:
        return [float(x) for x in data]
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(data.size, size=size, replace=False))
    return [float(x) for x in data[index]]


def category_counts(values: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


# Divergences and tests ----------------------------------------------------------------------


def proportions(counts: ArrayLike) -> FloatArray:
    data = np.asarray(counts, dtype=np.float64)
    total = data.sum()
    if total <= 0:
        raise ValueError("counts must not all be zero")
    return np.asarray(data / total, dtype=np.float64)


def psi(reference_counts: ArrayLike, window_counts: ArrayLike, epsilon: float = EPSILON) -> float:
    """Population stability index of the window against the reference (same cells)."""
    e = np.maximum(proportions(reference_counts), epsilon)
    a = np.maximum(proportions(window_counts), epsilon)
    if e.shape != a.shape:
        raise ValueError("reference and window need the same number of cells")
    return float(np.sum((a - e) * np.log(a / e)))


NULL_SIMULATIONS = 2000
_MAX_CELLS_PER_CHUNK = 2_000_000


def null_psi(
    reference_counts: ArrayLike,
    n: float,
    m: float,
    *,
    simulations: int = NULL_SIMULATIONS,
    seed: int = 0,
    epsilon: float = EPSILON,
) -> FloatArray:
    """PSI values of ``simulations`` windows of size ``n`` against references of size
    ``m``, both drawn from the reference proportions: the PSI's distribution without drift.

    Seeded, hence a function of its arguments: cached, since successive reports of one
    model usually share the reference and the window size."""
    key = np.asarray(reference_counts, dtype=np.float64).tobytes()
    cached = _null_psi(key, max(round(n), 1), max(round(m), 1), simulations, seed, epsilon)
    return cached.copy()


@functools.lru_cache(maxsize=256)
def _null_psi(
    counts: bytes, window_size: int, reference_size: int, simulations: int, seed: int,
    epsilon: float,
) -> FloatArray:  # fmt: skip
    e = proportions(np.frombuffer(counts, dtype=np.float64))
    rng = np.random.default_rng(seed)
    chunk = max(1, min(simulations, _MAX_CELLS_PER_CHUNK // max(e.size, 1)))
    out: list[FloatArray] = []
    done = 0
    while done < simulations:
        size = min(chunk, simulations - done)
        a = np.maximum(rng.multinomial(window_size, e, size=size) / window_size, epsilon)
        b = np.maximum(rng.multinomial(reference_size, e, size=size) / reference_size, epsilon)
        out.append(np.asarray(np.sum((a - b) * np.log(a / b), axis=1), dtype=np.float64))
        done += size
    return np.concatenate(out)


def psi_critical(null: ArrayLike, alpha: float) -> float:
    """The PSI that sampling noise alone exceeds with probability ``alpha``."""
    return float(np.quantile(np.asarray(null, dtype=np.float64), 1.0 - alpha, method="higher"))


def feature_score(psi_value: float, critical: float, tau: float) -> float:
    """The PSI, scaled down when the window is too small for ``tau`` to beat the noise."""
    if critical <= tau or critical <= 0.0:
        return psi_value
    return psi_value * tau / critical


@dataclass(frozen=True)
class StatResult:
    statistic: float
    p_value: float
    dof: int | None = None


def ks_test(reference_sample: ArrayLike, window_sample: ArrayLike) -> StatResult:
    from scipy import stats as scipy_stats  # first use pays the 1-2 s import, not start-up

    result = scipy_stats.ks_2samp(
        np.asarray(window_sample, dtype=np.float64),
        np.asarray(reference_sample, dtype=np.float64),
        method="asymp",
    )
    return StatResult(statistic=float(result.statistic), p_value=float(result.pvalue))


def reference_expected(
    reference_counts: ArrayLike, window_total: float, epsilon: float = EPSILON
) -> FloatArray:
    """Expected window counts under the reference proportions (each at least epsilon)."""
    p = np.maximum(proportions(reference_counts), epsilon)
    return np.asarray(p / p.sum() * window_total, dtype=np.float64)


def chi_square_test(
    reference_counts: ArrayLike, window_counts: ArrayLike, epsilon: float = EPSILON
) -> StatResult:
    observed = np.asarray(window_counts, dtype=np.float64)
    expected = reference_expected(reference_counts, float(observed.sum()), epsilon)
    from scipy import stats as scipy_stats

    result = scipy_stats.chisquare(observed, expected)
    return StatResult(
        statistic=float(result.statistic), p_value=float(result.pvalue), dof=observed.size - 1
    )


def js_distance(reference_counts: ArrayLike, window_counts: ArrayLike) -> float:
    from scipy.spatial import distance

    value = distance.jensenshannon(proportions(window_counts), proportions(reference_counts), 2.0)
    return float(value) if math.isfinite(value) else 0.0


def align_categories(
    reference: Mapping[str, float], window: Mapping[str, float]
) -> tuple[list[str], list[float], list[float], list[str]]:
    """Cells for comparing two category counts: the reference's categories in its order,
    then one ``__unseen__`` cell pooling the window's categories the reference lacks
    (only when there are some). Returns cells, reference counts, window counts, and the
    unseen categories."""
    cells = list(reference)
    ref = [float(reference[c]) for c in cells]
    win = [float(window.get(c, 0.0)) for c in cells]
    unseen = [c for c in window if c not in reference and window[c] > 0]
    if unseen:
        cells.append(UNSEEN)
        ref.append(0.0)
        win.append(float(sum(window[c] for c in unseen)))
    return cells, ref, win, unseen


# Per feature ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureStats:
    """The drift numbers of one feature (or of the prediction)."""

    cells: int
    n: float
    m: float
    psi: float
    psi_critical: float
    false_alarm_probability: float
    score: float
    ks: StatResult | None = None
    chi_square: StatResult | None = None
    js_distance: float | None = None


def _psi_stats(
    reference_counts: Sequence[float],
    window_counts: Sequence[float],
    *,
    tau: float,
    alpha: float,
    ks: StatResult | None = None,
    chi_square: StatResult | None = None,
    js_distance: float | None = None,
) -> FeatureStats:
    """What every feature kind reports: the PSI of the window against the reference, its
    critical value and false-alarm probability under the null of no drift, and the score;
    the kind's own tests (KS; chi-square and JS distance) are passed in."""
    n, m = float(sum(window_counts)), float(sum(reference_counts))
    value = psi(reference_counts, window_counts)
    null = null_psi(reference_counts, n, m)
    critical = psi_critical(null, alpha)
    return FeatureStats(
        cells=len(reference_counts),
        n=n,
        m=m,
        psi=value,
        psi_critical=critical,
        false_alarm_probability=float(np.mean(null > tau)),
        score=feature_score(value, critical, tau),
        ks=ks,
        chi_square=chi_square,
        js_distance=js_distance,
    )


def numeric_stats(
    *,
    reference_counts: Sequence[float],
    window_counts: Sequence[float],
    tau: float,
    alpha: float,
    reference_sample: Sequence[float] | None = None,
    window_sample: Sequence[float] | None = None,
) -> FeatureStats:
    ks = None
    if reference_sample and window_sample:
        ks = ks_test(reference_sample, window_sample)
    return _psi_stats(reference_counts, window_counts, tau=tau, alpha=alpha, ks=ks)


def categorical_stats(
    *, reference_counts: Sequence[float], window_counts: Sequence[float], tau: float, alpha: float
) -> FeatureStats:
    chi = chi_square_test(reference_counts, window_counts) if len(reference_counts) > 1 else None
    return _psi_stats(
        reference_counts,
        window_counts,
        tau=tau,
        alpha=alpha,
        chi_square=chi,
        js_distance=js_distance(reference_counts, window_counts),
    )


def overall_score(scores: Sequence[float]) -> float:
    """Delta: the largest feature score (0 when nothing could be compared)."""
    return max(scores, default=0.0)
