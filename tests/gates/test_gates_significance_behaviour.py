"""Statistical behaviour of the significance gate, by seeded Monte Carlo simulation.

Two properties, per test:

* size: when the candidate is truly no better than production by more than
  delta (equal models with delta = 0, or a true improvement of exactly delta),
  the gate passes in at most alpha of the trials, within Monte Carlo error:
  ``rate <= alpha + 3 * sqrt(alpha * (1 - alpha) / trials)``;
* power: when the candidate is truly better by 2 * delta and the sample is large
  enough, the gate passes in more than 80% of the trials.

Every simulation draws from ``numpy.random.default_rng`` with a fixed seed, so
the outcome is the same on every run.
"""

import math
from collections.abc import Callable

import numpy as np
import pytest

from app.gates import Correctness, Counts, Losses, significance
from app.gates.rules.significance import SignificanceTest

ALPHA = 0.05


def size_bound(trials: int) -> float:
    return ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / trials)


def pass_rate(trials: int, trial: Callable[[int], bool]) -> float:
    return sum(trial(i) for i in range(trials)) / trials


# McNemar on paired correctness -------------------------------------------------


def correctness_trial(
    rng: np.random.Generator,
    n: int,
    p_only_candidate: float,
    p_only_production: float,
    delta: float,
) -> bool:
    """One evaluation of two models on n shared examples.

    Each example is right for the candidate only, for production only, for both
    (p = 0.75) or for neither, so the true accuracy gain is the difference of the
    first two probabilities.
    """
    u = rng.random(n)
    b_end = p_only_candidate
    c_end = b_end + p_only_production
    both_end = c_end + 0.75
    candidate = (u < b_end) | ((u >= c_end) & (u < both_end))
    production = (u >= b_end) & (u < both_end)
    return significance(
        rule="s",
        test="mcnemar",
        delta=delta,
        alpha=ALPHA,
        candidate=Correctness(candidate),
        production=Correctness(production),
    ).passed


@pytest.mark.parametrize(
    ("n", "p_b", "p_c", "delta", "seed"),
    [
        pytest.param(500, 0.05, 0.05, 0.0, 11, id="equal-normal-approximation"),
        pytest.param(100, 0.05, 0.05, 0.0, 12, id="equal-mostly-exact"),
        pytest.param(2000, 0.06, 0.04, 0.02, 13, id="gain-equals-delta"),
    ],
)
def test_mcnemar_size(n: int, p_b: float, p_c: float, delta: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    trials = 2000
    rate = pass_rate(trials, lambda _: correctness_trial(rng, n, p_b, p_c, delta))
    assert rate <= size_bound(trials)


def test_mcnemar_power() -> None:
    rng = np.random.default_rng(14)
    delta = 0.02
    rate = pass_rate(500, lambda _: correctness_trial(rng, 2000, 0.06, 0.06 - 2 * delta, delta))
    assert rate > 0.8


# Two proportions on counts ----------------------------------------------------


def counts_trial(rng: np.random.Generator, n: int, p1: float, p2: float, delta: float) -> bool:
    return significance(
        rule="s",
        test="two_proportion",
        delta=delta,
        alpha=ALPHA,
        candidate=Counts(int(rng.binomial(n, p1)), n),
        production=Counts(int(rng.binomial(n, p2)), n),
    ).passed


@pytest.mark.parametrize(
    ("p1", "p2", "delta", "seed"),
    [
        pytest.param(0.7, 0.7, 0.0, 21, id="equal-pooled"),
        pytest.param(0.73, 0.7, 0.03, 22, id="gain-equals-delta-unpooled"),
    ],
)
def test_two_proportion_size(p1: float, p2: float, delta: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    trials = 2000
    rate = pass_rate(trials, lambda _: counts_trial(rng, 1000, p1, p2, delta))
    assert rate <= size_bound(trials)


def test_two_proportion_power() -> None:
    rng = np.random.default_rng(23)
    delta = 0.03
    rate = pass_rate(500, lambda _: counts_trial(rng, 5000, 0.70 + 2 * delta, 0.70, delta))
    assert rate > 0.8


# Paired losses: t, Wilcoxon, bootstrap -----------------------------------------


def losses_trial(
    rng: np.random.Generator,
    test: SignificanceTest,
    n: int,
    gain: float,
    delta: float,
    seed: int = 0,
) -> bool:
    """Per-example losses sharing a difficulty term; the candidate's are lower by ``gain``."""
    difficulty = rng.gamma(2.0, 0.5, n)
    production = difficulty + rng.normal(0.0, 0.2, n)
    candidate = difficulty + rng.normal(0.0, 0.2, n) - gain
    return significance(
        rule="s",
        test=test,
        delta=delta,
        alpha=ALPHA,
        candidate=Losses(candidate),
        production=Losses(production),
        seed=seed,
        bootstrap_resamples=999,
    ).passed


@pytest.mark.parametrize(
    ("test", "trials", "n", "gain", "delta", "seed"),
    [
        pytest.param("paired_t", 2000, 50, 0.0, 0.0, 31, id="paired_t-equal"),
        pytest.param("paired_t", 2000, 50, 0.05, 0.05, 32, id="paired_t-gain-equals-delta"),
        pytest.param("wilcoxon", 500, 40, 0.0, 0.0, 33, id="wilcoxon-equal"),
        pytest.param("wilcoxon", 500, 40, 0.05, 0.05, 34, id="wilcoxon-gain-equals-delta"),
        pytest.param("bootstrap", 200, 100, 0.0, 0.0, 35, id="bootstrap-equal"),
    ],
)
def test_paired_losses_size(
    test: SignificanceTest, trials: int, n: int, gain: float, delta: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    rate = pass_rate(trials, lambda i: losses_trial(rng, test, n, gain, delta, seed=i))
    assert rate <= size_bound(trials)


@pytest.mark.parametrize(
    ("test", "trials", "seed"),
    [
        pytest.param("paired_t", 500, 41, id="paired_t"),
        pytest.param("wilcoxon", 300, 42, id="wilcoxon"),
        pytest.param("bootstrap", 200, 43, id="bootstrap"),
    ],
)
def test_paired_losses_power(test: SignificanceTest, trials: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    delta = 0.05
    rate = pass_rate(trials, lambda i: losses_trial(rng, test, 400, 2 * delta, delta, seed=i))
    assert rate > 0.8
