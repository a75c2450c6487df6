"""The drift statistics against numpy and scipy computed by hand on the same data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from scipy.spatial.distance import jensenshannon

from app.drift import stats


def hand_psi(expected: np.ndarray, actual: np.ndarray, eps: float = 1e-4) -> float:
    e = np.clip(expected / expected.sum(), eps, None)
    a = np.clip(actual / actual.sum(), eps, None)
    total = 0.0
    for ei, ai in zip(e, a, strict=True):
        total += (ai - ei) * math.log(ai / ei)
    return total


def test_quantile_edges_cut_at_deciles_and_bins_are_open_ended() -> None:
    rng = np.random.default_rng(1)
    data = rng.normal(size=10_000)
    edges = stats.quantile_edges(data)
    assert len(edges) == 11
    assert edges[0] == data.min()
    assert edges[-1] == data.max()
    values = set(data.tolist())
    assert all(e in values for e in edges)  # cut points are observed values
    counts = stats.bin_counts(data, edges)
    assert sum(counts) == 10_000
    assert all(999 <= c <= 1001 for c in counts)
    # Outside the reference's range: the outer bins, not lost.
    assert stats.bin_counts([-100.0, 100.0], edges) == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert stats.bin_counts([edges[1]], edges)[1] == 1  # a cut point opens its bin
    assert stats.bin_counts([np.nextafter(edges[1], -np.inf)], edges)[0] == 1


def test_edges_of_discrete_and_constant_samples() -> None:
    binary = [0.0] * 70 + [1.0] * 30
    edges = stats.quantile_edges(binary)
    assert edges == [0.0, 1.0, 1.0]
    assert stats.bin_counts(binary, edges) == [70, 30]
    constant = [5.0] * 10
    edges = stats.quantile_edges(constant)
    assert stats.bin_counts(constant, edges) == [0, 10, 0]
    assert stats.bin_counts([4.0, 5.0, 6.0], edges) == [1, 1, 1]
    with pytest.raises(ValueError, match="no values"):
        stats.quantile_edges([])


def test_psi_matches_the_formula_by_hand_with_epsilon_for_empty_bins() -> None:
    ref = np.array([100.0, 200.0, 300.0, 400.0])
    win = np.array([120.0, 180.0, 0.0, 700.0])
    assert stats.psi(ref, win) == pytest.approx(hand_psi(ref, win), rel=1e-12)
    assert stats.psi(ref, ref * 3) == pytest.approx(0.0, abs=1e-15)
    # The empty window bin contributes (eps - 0.3) * ln(eps / 0.3), large but finite.
    term = (1e-4 - 0.3) * math.log(1e-4 / 0.3)
    assert stats.psi(ref, win) > term > 2.0


def test_null_distribution_of_psi_agrees_with_chi_square_for_large_windows() -> None:
    counts = [1000.0] * 10
    null = stats.null_psi(counts, 500, 10_000)
    assert null.shape == (stats.NULL_SIMULATIONS,)
    assert np.array_equal(null, stats.null_psi(counts, 500, 10_000))  # seeded
    scale = 1 / 500 + 1 / 10_000
    assert float(null.mean()) == pytest.approx(9 * scale, rel=0.1)
    critical = stats.psi_critical(null, 0.01)
    assert critical == pytest.approx(scipy_stats.chi2.ppf(0.99, 9) * scale, rel=0.2)
    assert float(np.mean(null > critical)) <= 0.01


def test_small_windows_are_noisy_and_their_score_is_scaled_down() -> None:
    counts = [1000.0] * 10
    small = stats.psi_critical(stats.null_psi(counts, 20, 10_000), 0.01)
    assert small > 0.2  # noise alone passes tau = 0.2 often
    large = stats.psi_critical(stats.null_psi(counts, 5000, 10_000), 0.01)
    assert large < 0.2
    assert stats.feature_score(0.3, large, 0.2) == 0.3  # the PSI itself
    assert stats.feature_score(0.5, small, 0.2) == pytest.approx(0.5 * 0.2 / small)
    assert stats.feature_score(small, small, 0.2) == pytest.approx(0.2)


def test_ks_chi_square_and_jensen_shannon_match_scipy() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(size=2000)
    win = rng.normal(0.3, 1.0, size=500)
    ks = stats.ks_test(ref, win)
    expected = scipy_stats.ks_2samp(win, ref, method="asymp")
    assert (ks.statistic, ks.p_value) == (expected.statistic, expected.pvalue)

    ref_counts = np.array([500.0, 300.0, 200.0, 0.0])
    win_counts = np.array([40.0, 35.0, 20.0, 5.0])
    chi = stats.chi_square_test(ref_counts, win_counts)
    p = np.clip(ref_counts / ref_counts.sum(), 1e-4, None)
    f_exp = p / p.sum() * win_counts.sum()
    by_hand = float(np.sum((win_counts - f_exp) ** 2 / f_exp))
    assert chi.statistic == pytest.approx(by_hand, rel=1e-12)
    assert chi.p_value == pytest.approx(scipy_stats.chi2.sf(by_hand, 3), rel=1e-9)
    assert chi.dof == 3

    js = stats.js_distance(ref_counts, win_counts)
    a, b = win_counts / win_counts.sum(), ref_counts / ref_counts.sum()
    m = (a + b) / 2

    def kl(x: np.ndarray, y: np.ndarray) -> float:
        return float(sum(xi * math.log2(xi / yi) for xi, yi in zip(x, y, strict=True) if xi > 0))

    assert js == pytest.approx(math.sqrt((kl(a, m) + kl(b, m)) / 2), rel=1e-9)
    assert js == pytest.approx(float(jensenshannon(a, b, base=2)), rel=1e-12)
    assert 0.0 <= js <= 1.0


def test_categories_are_aligned_with_unseen_ones_pooled() -> None:
    cells, ref, win, unseen = stats.align_categories(
        {"DE": 50.0, "FR": 30.0, "US": 20.0}, {"FR": 4.0, "DE": 5.0, "XX": 1.0, "YY": 2.0}
    )
    assert cells == ["DE", "FR", "US", stats.UNSEEN]
    assert ref == [50.0, 30.0, 20.0, 0.0]
    assert win == [5.0, 4.0, 0.0, 3.0]
    assert unseen == ["XX", "YY"]
    cells, _, _, unseen = stats.align_categories({"a": 1.0}, {"a": 3.0})
    assert cells == ["a"]
    assert unseen == []


def test_subsample_is_seeded_and_bounded() -> None:
    data = np.arange(10_000, dtype=float)
    one = stats.subsample(data, 500)
    assert len(one) == 500 == len(set(one))
    assert one == stats.subsample(data, 500)
    assert stats.subsample([1.0, 2.0], 500) == [1.0, 2.0]
