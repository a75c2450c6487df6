"""Monte Carlo of the delivery decision rules: how often each decides wrongly.

Three rules, each simulated through its own code (seeded numpy draws fed to the real
functions, one call per simulated decision):

* the ``shadow_agreement`` gate (:func:`app.gates.shadow.shadow_agreement`): share of
  shadows passed whose true agreement is exactly ``min_agreement`` (a false pass; the
  bound says at most alpha), and of shadows that agree better (power);
* the A/B test (:func:`app.gates.ab.compare_rates`, :func:`app.gates.ab.compare_latency`):
  share of A/B tests between identical arms declared significant at *any* of the looks
  (someone reading the report after every batch), and the share that detect a stated
  difference;
* the degradation detector (:func:`app.gates.canary.judge` with a fixed baseline as the
  incumbent, as :mod:`app.monitoring.service` runs it): share of production periods
  flagged degraded, every check included, when production is as good as the baseline,
  and when it is worse.

``scripts/delivery-stats`` prints the table; ``tests/gates/test_delivery_montecarlo.py``
holds the figures with fixed seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.gates.ab import TAU_ERROR_RATE, compare_latency, compare_rates
from app.gates.canary import AnalysisPlan, ArmData, MetricKind, MetricSpec, Rates, Verdict, judge
from app.gates.shadow import ShadowPairs, shadow_agreement


@dataclass(frozen=True)
class Rate:
    runs: int
    share: float  # share of runs with the decision counted


def shadow_gate(
    *,
    true_agreement: float,
    pairs: int,
    min_agreement: float,
    runs: int,
    seed: int,
    alpha: float = 0.05,
) -> Rate:
    """Share of shadows passed by a ``shadow_agreement`` rule on agreement alone."""
    rng = np.random.default_rng(seed)
    agreeing = rng.binomial(pairs, true_agreement, size=runs)
    passed = sum(
        shadow_agreement(
            rule="shadow_agreement", min_agreement=min_agreement, max_mae=None,
            min_pairs=pairs, alpha=alpha, shadow_version=2,
            pairs=ShadowPairs(pairs=pairs, class_pairs=pairs, agreeing=int(k)),
        ).passed
        for k in agreeing
    )  # fmt: skip
    return Rate(runs, passed / runs)


def shadow_gate_mae(
    *,
    true_mae: float,
    pairs: int,
    max_mae: float,
    runs: int,
    seed: int,
    alpha: float = 0.05,
) -> Rate:
    """Share of shadows passed on ``max_mae`` with agreement also checked (alpha split);
    absolute differences are half-normal with mean ``true_mae``; agreement is perfect."""
    rng = np.random.default_rng(seed)
    scale = true_mae / np.sqrt(2 / np.pi)
    passed = 0
    for _ in range(runs):
        d = np.abs(rng.normal(0.0, scale, size=pairs))
        result = shadow_agreement(
            rule="shadow_agreement", min_agreement=0.5, max_mae=max_mae, min_pairs=pairs,
            alpha=alpha, shadow_version=2,
            pairs=ShadowPairs(pairs=pairs, class_pairs=pairs, agreeing=pairs, value_pairs=pairs,
                              abs_diff_sum=float(d.sum()), abs_diff_sq_sum=float((d * d).sum())),
        )  # fmt: skip
        passed += result.passed
    return Rate(runs, passed / runs)


def ab_error_rate(
    *,
    rate_a: float,
    rate_b: float,
    per_look: int,
    looks: int,
    runs: int,
    seed: int,
    alpha: float = 0.05,
    min_sample: int = 200,
) -> tuple[Rate, Rate]:
    """(always-valid, fixed-sample) shares of A/B tests on error rate declared significant
    at any look, the report read after every ``per_look`` requests per arm."""
    rng = np.random.default_rng(seed)
    xa = rng.binomial(per_look, rate_a, size=(runs, looks)).cumsum(axis=1)
    xb = rng.binomial(per_look, rate_b, size=(runs, looks)).cumsum(axis=1)
    seq = fixed = 0
    for i in range(runs):
        hit_seq = hit_fixed = False
        for k in range(looks):
            n = per_look * (k + 1)
            r = compare_rates(
                "error_rate", Rates(int(xa[i, k]), n), Rates(int(xb[i, k]), n), alpha=alpha,
                min_sample=min_sample, lower_is_better=True, tau=TAU_ERROR_RATE,
            )  # fmt: skip
            hit_seq = hit_seq or r.significant
            hit_fixed = hit_fixed or (r.fixed_p_value is not None and r.fixed_p_value <= alpha)
        seq += hit_seq
        fixed += hit_fixed
    return Rate(runs, seq / runs), Rate(runs, fixed / runs)


def ab_latency(
    *,
    ratio: float,
    per_look: int,
    looks: int,
    runs: int,
    seed: int,
    alpha: float = 0.05,
) -> Rate:
    """Share of A/B tests on latency (log-normal, b = a x ``ratio``) declared significant
    at any look."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(runs):
        a = rng.lognormal(3.0, 0.5, size=per_look * looks)
        b = rng.lognormal(3.0 + np.log(ratio), 0.5, size=per_look * looks)
        for k in range(1, looks + 1):
            n = per_look * k
            if compare_latency(
                a[:n].tolist(), b[:n].tolist(), alpha=alpha, min_sample=100
            ).significant:
                hits += 1
                break
    return Rate(runs, hits / runs)


def degradation(
    *,
    baseline_rate: float,
    production_rate: float,
    baseline_requests: int,
    per_check: int,
    checks: int,
    runs: int,
    seed: int,
    alpha: float = 0.05,
    min_sample: int = 500,
) -> Rate:
    """Share of production periods flagged degraded on error rate (any check), with the
    baseline fixed (the previous version's period) and production accumulating."""
    rng = np.random.default_rng(seed)
    plan = AnalysisPlan(
        metrics=(MetricSpec("errors", MetricKind.ERROR_RATE, min_sample=min_sample),),
        alpha=alpha,
    )
    base = rng.binomial(baseline_requests, baseline_rate, size=runs)
    prod = rng.binomial(per_check, production_rate, size=(runs, checks)).cumsum(axis=1)
    flagged = 0
    for i in range(runs):
        incumbent = ArmData(errors=Rates(int(base[i]), baseline_requests))
        for k in range(checks):
            current = ArmData(errors=Rates(int(prod[i, k]), per_check * (k + 1)))
            look = judge(plan, current, incumbent, look=k + 1)
            if any(r.verdict is Verdict.FAIL for r in look.results):
                flagged += 1
                break
    return Rate(runs, flagged / runs)


def degradation_latency(
    *,
    ratio: float,
    baseline_samples: int,
    per_check: int,
    checks: int,
    runs: int,
    seed: int,
    alpha: float = 0.05,
    tolerance: float = 0.1,
) -> Rate:
    """Share of production periods flagged degraded on latency (log-normal, production =
    baseline x ``ratio``) at any check."""
    rng = np.random.default_rng(seed)
    plan = AnalysisPlan(
        metrics=(MetricSpec("latency", MetricKind.LATENCY, tolerance=tolerance, min_sample=200),),
        alpha=alpha,
    )
    flagged = 0
    for _ in range(runs):
        incumbent = ArmData(latency_sample=tuple(rng.lognormal(3.0, 0.5, size=baseline_samples)))
        prod = rng.lognormal(3.0 + np.log(ratio), 0.5, size=per_check * checks)
        for k in range(1, checks + 1):
            current = ArmData(latency_sample=tuple(prod[: per_check * k]))
            look = judge(plan, current, incumbent, look=k)
            if any(r.verdict is Verdict.FAIL for r in look.results):
                flagged += 1
                break
    return Rate(runs, flagged / runs)
