"""Monte Carlo of whole rollouts: how often the canary analysis aborts.

Simulates many rollouts at once (numpy, seeded) through the same statistics as
:mod:`app.gates.canary` and counts how many are aborted, with the sequential
(always-valid) judgement used by rollouts and, beside it, with a per-interval
judge that tests each interval's data alone at the full alpha (what Kayenta and
Argo Rollouts do). ``scripts/rollout-stats`` prints the table; the tests in
``tests/gates/test_canary_montecarlo.py`` hold the figures with fixed seeds.

A simulated rollout goes through ``weights`` (the canary's share of traffic at
each step); each step is looked at ``looks_per_step`` times, every look after
``canary_per_look`` more canary requests (and the incumbent's share of the same
traffic). Errors are Bernoulli per request; latencies log-normal, kept as a
bounded sample of ``latency_per_look`` values per arm and look (the bounded sample
the observation store keeps for rank tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from app.gates.canary import always_valid_p, rate_statistics


@dataclass(frozen=True)
class Scenario:
    incumbent_error_rate: float = 0.01
    canary_error_rate: float = 0.01
    latency_ratio: float = 1.0  # canary latency / incumbent latency
    weights: tuple[int, ...] = (10, 25, 50)
    looks_per_step: int = 6
    canary_per_look: int = 250
    latency_per_look: int = 100
    min_sample: int = 500


@dataclass(frozen=True)
class Outcome:
    rollouts: int
    looks: int
    sequential_aborts: float  # share of rollouts aborted, always-valid judgement
    per_interval_aborts: float  # share aborted by a per-interval judge at the full alpha
    error_rate_aborts: float  # sequential, error-rate metric alone
    latency_aborts: float  # sequential, latency metric alone
    median_abort_look: float | None  # sequential, among aborted rollouts


def _mann_whitney_z(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Row-wise one-sided Mann-Whitney z (x larger) and the information (no ties)."""
    n1, n2 = x.shape[1], y.shape[1]
    ranks = stats.rankdata(np.concatenate([x, y], axis=1), axis=1)
    u = ranks[:, :n1].sum(axis=1) - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    z = (u - n1 * n2 / 2.0) / math.sqrt(n1 * n2 * (n + 1) / 12.0)
    return z, n1 * n2 / (n + 1.0)


def simulate(
    scenario: Scenario,
    *,
    rollouts: int,
    seed: int,
    alpha: float = 0.05,
    error_tau: float = 0.01,
    latency_tau: float = 0.2,
    latency_tolerance: float = 0.0,
    error_weight: float = 1.0,
    latency_weight: float = 1.0,
    with_latency: bool = True,
) -> Outcome:
    """Run ``rollouts`` rollouts of ``scenario``; a rollout aborts at its first failed
    look (``failure_limit`` 1, the strictest setting), so the counts are upper bounds
    for larger limits."""
    rng = np.random.default_rng(seed)
    weight_total = error_weight + (latency_weight if with_latency else 0.0)
    alpha_err = alpha * error_weight / weight_total
    alpha_lat = alpha * latency_weight / weight_total
    steps = [w for w in scenario.weights for _ in range(scenario.looks_per_step)]
    looks = len(steps)

    cum_xc = np.zeros(rollouts)
    cum_nc = 0.0
    cum_xi = np.zeros(rollouts)
    cum_ni = 0.0
    lat_c = np.empty((rollouts, 0))
    lat_i = np.empty((rollouts, 0))
    seq_abort_look = np.full(rollouts, -1)
    err_abort = np.zeros(rollouts, dtype=bool)
    lat_abort = np.zeros(rollouts, dtype=bool)
    naive_abort = np.zeros(rollouts, dtype=bool)

    for k, weight in enumerate(steps, start=1):
        n_c = scenario.canary_per_look
        n_i = round(n_c * (100 - weight) / weight)
        xc = rng.binomial(n_c, scenario.canary_error_rate, size=rollouts).astype(float)
        xi = rng.binomial(n_i, scenario.incumbent_error_rate, size=rollouts).astype(float)
        cum_xc += xc
        cum_xi += xi
        cum_nc += n_c
        cum_ni += n_i

        # Sequential: cumulative data, always-valid p at the metric's share of alpha.
        _, z, info = rate_statistics(cum_xc, cum_nc, cum_xi, cum_ni, 0.0)
        p_err = always_valid_p(z * np.sqrt(info), info, error_tau)
        judged = min(cum_nc, cum_ni) >= scenario.min_sample
        fail_err = judged & (p_err <= alpha_err)
        # Per-interval: this interval's data alone, fixed-sample test at the full alpha.
        _, z_int, _ = rate_statistics(xc, n_c, xi, n_i, 0.0)
        naive = stats.norm.sf(z_int) <= alpha

        fail_lat = np.zeros(rollouts, dtype=bool)
        if with_latency:
            m = scenario.latency_per_look
            new_i = rng.lognormal(3.0, 0.5, size=(rollouts, m))
            new_c = rng.lognormal(3.0 + math.log(scenario.latency_ratio), 0.5, size=(rollouts, m))
            lat_c = np.concatenate([lat_c, np.log(new_c)], axis=1)
            lat_i = np.concatenate([lat_i, np.log(new_i)], axis=1)
            if lat_c.shape[1] >= scenario.min_sample:
                zl, info_l = _mann_whitney_z(lat_c - math.log1p(latency_tolerance), lat_i)
                p_lat = always_valid_p(zl * math.sqrt(info_l), info_l, latency_tau)
                fail_lat = p_lat <= alpha_lat
            z_lat_int, _ = _mann_whitney_z(np.log(new_c), np.log(new_i))
            naive = naive | (stats.norm.sf(z_lat_int) <= alpha)

        live = seq_abort_look < 0
        seq_abort_look[live & (fail_err | fail_lat)] = k
        err_abort |= fail_err
        lat_abort |= fail_lat
        naive_abort |= naive

    aborted = seq_abort_look > 0
    return Outcome(
        rollouts=rollouts,
        looks=looks,
        sequential_aborts=float(aborted.mean()),
        per_interval_aborts=float(naive_abort.mean()),
        error_rate_aborts=float(err_abort.mean()),
        latency_aborts=float(lat_abort.mean()),
        median_abort_look=float(np.median(seq_abort_look[aborted])) if aborted.any() else None,
    )
