"""How often drift is reported, measured over seeded trials on the pure functions.

Reference: 20,000 rows of two numeric features (normal, exponential), a categorical one
and a numeric prediction. Each trial draws a production window and runs the same
comparison a drift report runs.

Why tau = 0.2 gives few false alarms: without drift, ``PSI * n*m/(n+m)`` is close to
chi-square with ``k - 1`` degrees of freedom (k bins), so one feature passes tau with
probability about ``P(chi2_{k-1} > tau * n*m/(n+m))``. For k = 10, n = 500, m = 20,000
that is ``P(chi2_9 > 97.6)`` ~ 1e-16: with four compared columns, the union bound leaves
the false-alarm rate at ~0, far below the 5 % the test allows. For a window too small
for tau to stand above the noise, the score is scaled so that a feature alarms only when
its PSI also passes the alpha-level critical value: the rate stays below
``columns * alpha`` whatever the window size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats as scipy_stats

from app.drift import compare, stats

M = 20_000
TRIALS = 200
TAU = 0.2
THRESHOLDS = compare.Thresholds(tau=TAU, max_null_rate=0.05, alpha=0.01)
CATEGORIES = ["A", "B", "C", "D"]
REFERENCE_MIX = [0.5, 0.3, 0.15, 0.05]
SIGNATURE = {
    "inputs": [
        {"name": "x1", "type": "float"},
        {"name": "x2", "type": "float"},
        {"name": "c", "type": "categorical", "categories": CATEGORIES},
    ],
    "outputs": [{"name": "score", "type": "float"}],
}


def draw(
    rng: np.random.Generator, n: int, *, shift: float = 0.0, mix: list[float] = REFERENCE_MIX
) -> tuple[dict[str, list[Any]], list[float]]:
    x1 = rng.normal(shift, 1.0, n)
    x2 = rng.exponential(1.0, n)
    c = rng.choice(CATEGORIES, size=n, p=mix)
    score = 1.0 / (1.0 + np.exp(-(x1 + 0.5 * x2 + rng.normal(0.0, 0.5, n))))
    return {"x1": x1.tolist(), "x2": x2.tolist(), "c": c.tolist()}, score.tolist()


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    sample, predictions = draw(np.random.default_rng(12345), M)
    return compare.build_reference(
        features=None,
        prediction=None,
        sample=sample,
        predictions=predictions,
        signature=SIGNATURE,
        sample_size=5_000,
    )


def alarm_rate(reference: dict[str, Any], n: int, seed: int, **shift: Any) -> float:
    rng = np.random.default_rng(seed)
    alarms = 0
    for _ in range(TRIALS):
        sample, predictions = draw(rng, n, **shift)
        columns, prediction, _ = compare.window_columns(
            features=None, prediction=None, sample=sample, predictions=predictions
        )
        report = compare.compare(
            reference=reference,
            columns=columns,
            prediction=prediction,
            signature=SIGNATURE,
            thresholds=THRESHOLDS,
        )
        alarms += bool(report["drifted"])
    return alarms / TRIALS


def counts_of(profile: dict[str, Any]) -> list[float]:
    if profile["kind"] == "numeric":
        return list(profile["counts"])
    return list(profile["frequencies"].values())


def implied_false_alarm_bound(reference: dict[str, Any], n: int) -> float:
    """Union bound over the compared columns of what tau (and alpha) allow: a column
    alarms only when its PSI passes both tau and the alpha-level critical value."""
    bound = 0.0
    for profile in [*reference["features"].values(), reference["prediction"]]:
        null = stats.null_psi(counts_of(profile), n, profile["count"])
        bound += min(float(np.mean(null > TAU)), THRESHOLDS.alpha)
    return bound


def chi_square_bound(reference: dict[str, Any], n: int) -> float:
    """The same bound from the chi-square approximation, by hand (large windows)."""
    bound = 0.0
    for profile in [*reference["features"].values(), reference["prediction"]]:
        k, m = len(counts_of(profile)), profile["count"]
        bound += float(scipy_stats.chi2.sf(TAU / (1 / n + 1 / m), k - 1))
    return bound


def test_no_drift_rarely_alarms(reference: dict[str, Any]) -> None:
    bound = implied_false_alarm_bound(reference, 500)
    assert bound == 0.0  # not one of 2000 simulated windows per column passed tau
    assert chi_square_bound(reference, 500) < 1e-12
    rate = alarm_rate(reference, 500, seed=1)
    assert rate <= 0.05
    assert rate <= bound + 3 * np.sqrt(max(bound, 1 / TRIALS) / TRIALS)


def test_small_windows_stay_under_the_alpha_bound(reference: dict[str, Any]) -> None:
    # 40 rows: PSI noise alone passes tau in a large share of windows.
    x1 = reference["features"]["x1"]
    assert float(np.mean(stats.null_psi(x1["counts"], 40, M) > TAU)) > 0.2
    bound = implied_false_alarm_bound(reference, 40)
    assert bound <= 4 * THRESHOLDS.alpha
    rate = alarm_rate(reference, 40, seed=2)
    assert rate <= bound + 3 * np.sqrt(bound * (1 - bound) / TRIALS)


def test_a_mean_shift_of_one_sd_is_caught(reference: dict[str, Any]) -> None:
    assert alarm_rate(reference, 500, seed=3, shift=1.0) >= 0.95


def test_a_change_of_category_mix_is_caught(reference: dict[str, Any]) -> None:
    assert alarm_rate(reference, 500, seed=4, mix=[0.2, 0.3, 0.3, 0.2]) >= 0.95
