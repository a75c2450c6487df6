"""Monte Carlo, fixed seeds: every decision rule of progressive delivery decides wrongly at
most as often as its stated alpha, and catches a stated harm (docs/canary-analysis.md,
"Shadow, A/B and after release"; ``scripts/delivery-stats`` prints the same figures)."""

from __future__ import annotations

from app.gates import delivery_sim as sim

ALPHA = 0.05


def test_the_shadow_gate_passes_a_shadow_at_the_limit_at_most_alpha_of_the_time() -> None:
    # True agreement exactly at min_agreement: any pass is a false pass.
    at_limit = sim.shadow_gate(
        true_agreement=0.95, pairs=1000, min_agreement=0.95, runs=2000, seed=1
    )
    assert at_limit.share <= ALPHA
    # Two points better: passed in at least 90 % of gates.
    better = sim.shadow_gate(true_agreement=0.97, pairs=1000, min_agreement=0.95, runs=2000, seed=2)
    assert better.share >= 0.90


def test_the_shadow_gate_on_mean_absolute_difference() -> None:
    at_limit = sim.shadow_gate_mae(true_mae=0.1, pairs=1000, max_mae=0.1, runs=2000, seed=3)
    assert at_limit.share <= ALPHA
    better = sim.shadow_gate_mae(true_mae=0.09, pairs=1000, max_mae=0.1, runs=1000, seed=4)
    assert better.share >= 0.90


def test_the_ab_test_on_error_rate_holds_alpha_however_often_it_is_read() -> None:
    # Identical arms at 1 %, the report read after every 1,000 requests per arm (10 looks).
    always_valid, fixed = sim.ab_error_rate(
        rate_a=0.01, rate_b=0.01, per_look=1000, looks=10, runs=2000, seed=5
    )
    assert always_valid.share <= ALPHA
    assert fixed.share > 2 * ALPHA  # the peeking a fixed-sample p-value suffers
    # A doubled error rate (1 % -> 2 %) is declared by 10,000 requests per arm.
    doubled, _ = sim.ab_error_rate(
        rate_a=0.01, rate_b=0.02, per_look=1000, looks=10, runs=1000, seed=6
    )
    assert doubled.share >= 0.90


def test_the_ab_test_on_latency() -> None:
    same = sim.ab_latency(ratio=1.0, per_look=200, looks=5, runs=300, seed=9)
    assert same.share <= ALPHA
    slower = sim.ab_latency(ratio=1.15, per_look=200, looks=5, runs=200, seed=10)
    assert slower.share >= 0.90


def test_the_degradation_detector_holds_alpha_over_a_whole_production_period() -> None:
    # Production as good as the baseline (1 % errors, 20,000 baseline requests), checked
    # after every 500 requests, 20 checks: flagged in at most alpha of the periods.
    same = sim.degradation(
        baseline_rate=0.01, production_rate=0.01, baseline_requests=20_000, per_check=500,
        checks=20, runs=2000, seed=7,
    )  # fmt: skip
    assert same.share <= ALPHA
    doubled = sim.degradation(
        baseline_rate=0.01, production_rate=0.02, baseline_requests=20_000, per_check=500,
        checks=20, runs=1000, seed=8,
    )  # fmt: skip
    assert doubled.share >= 0.90


def test_the_degradation_detector_on_latency() -> None:
    same = sim.degradation_latency(
        ratio=1.0, baseline_samples=2000, per_check=200, checks=5, runs=300, seed=11
    )
    assert same.share <= ALPHA
    slower = sim.degradation_latency(
        ratio=1.3, baseline_samples=2000, per_check=200, checks=5, runs=200, seed=12
    )
    assert slower.share >= 0.90
