"""Print the Monte Carlo table of the delivery decision rules (``scripts/delivery-stats``).

The scenarios and seeds are those of ``tests/gates/test_delivery_montecarlo.py``; see
``app/gates/delivery_sim.py`` for what each simulates.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from app.gates import delivery_sim as sim

ROWS: list[tuple[str, str, Callable[[], float]]] = [
    ("shadow_agreement, agreement", "true 95 % = min_agreement, 1,000 pairs (false pass)",
     lambda: sim.shadow_gate(true_agreement=0.95, pairs=1000, min_agreement=0.95, runs=2000,
                             seed=1).share),
    ("shadow_agreement, agreement", "true 97 %, min 95 %, 1,000 pairs (power)",
     lambda: sim.shadow_gate(true_agreement=0.97, pairs=1000, min_agreement=0.95, runs=2000,
                             seed=2).share),
    ("shadow_agreement, MAE", "true MAE = max_mae, 1,000 pairs (false pass)",
     lambda: sim.shadow_gate_mae(true_mae=0.1, pairs=1000, max_mae=0.1, runs=2000, seed=3).share),
    ("shadow_agreement, MAE", "true MAE 10 % under max_mae, 1,000 pairs (power)",
     lambda: sim.shadow_gate_mae(true_mae=0.09, pairs=1000, max_mae=0.1, runs=1000,
                                 seed=4).share),
    ("A/B error rate, always-valid", "identical arms at 1 %, 10 looks x 1,000 a side",
     lambda: sim.ab_error_rate(rate_a=0.01, rate_b=0.01, per_look=1000, looks=10, runs=2000,
                               seed=5)[0].share),
    ("A/B error rate, fixed-sample p", "identical arms at 1 %, 10 looks x 1,000 a side",
     lambda: sim.ab_error_rate(rate_a=0.01, rate_b=0.01, per_look=1000, looks=10, runs=2000,
                               seed=5)[1].share),
    ("A/B error rate, always-valid", "1 % -> 2 %, 10 looks x 1,000 a side (power)",
     lambda: sim.ab_error_rate(rate_a=0.01, rate_b=0.02, per_look=1000, looks=10, runs=1000,
                               seed=6)[0].share),
    ("A/B latency, always-valid", "identical arms, 5 looks x 200 a side",
     lambda: sim.ab_latency(ratio=1.0, per_look=200, looks=5, runs=300, seed=9).share),
    ("A/B latency, always-valid", "b 15 % slower, 5 looks x 200 a side (power)",
     lambda: sim.ab_latency(ratio=1.15, per_look=200, looks=5, runs=200, seed=10).share),
    ("degradation, error rate", "as good as the baseline (1 %), 20 checks x 500",
     lambda: sim.degradation(baseline_rate=0.01, production_rate=0.01, baseline_requests=20_000,
                             per_check=500, checks=20, runs=2000, seed=7).share),
    ("degradation, error rate", "1 % -> 2 %, 20 checks x 500 (power)",
     lambda: sim.degradation(baseline_rate=0.01, production_rate=0.02, baseline_requests=20_000,
                             per_check=500, checks=20, runs=1000, seed=8).share),
    ("degradation, latency (10 % tolerated)", "as fast as the baseline, 5 checks x 200",
     lambda: sim.degradation_latency(ratio=1.0, baseline_samples=2000, per_check=200, checks=5,
                                     runs=300, seed=11).share),
    ("degradation, latency (10 % tolerated)", "30 % slower, 5 checks x 200 (power)",
     lambda: sim.degradation_latency(ratio=1.3, baseline_samples=2000, per_check=200, checks=5,
                                     runs=200, seed=12).share),
]  # fmt: skip


def main() -> None:
    print("| rule | scenario | share decided |")
    print("|---|---|---:|")
    for rule, scenario, run in ROWS:
        started = time.monotonic()
        share = run()
        print(f"| {rule} | {scenario} | {share:.2%} |  ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
