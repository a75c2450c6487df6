"""Print the canary analysis's Monte Carlo table (run it through ``scripts/rollout-stats``).

Every scenario simulates whole rollouts through steps of 10, 25 and 50 % canary
traffic, six looks a step, 250 canary requests between looks, metrics error rate and
latency at alpha 0.05 shared by weight; see app/gates/canary_sim.py. Columns: the share
of rollouts aborted with the sequential (always-valid) analysis that rollouts use, by
metric, and the share a per-interval judge at the full alpha would abort.
"""

from __future__ import annotations

import argparse
import time

from app.gates.canary_sim import Scenario, simulate

SCENARIOS: list[tuple[str, Scenario, float]] = [
    ("sound canary (identical arms)", Scenario(), 0.0),
    ("sound canary, 5 % latency tolerated", Scenario(), 0.05),
    ("error rate 1 % -> 1.5 %", Scenario(canary_error_rate=0.015), 0.05),
    ("error rate 1 % -> 2 %", Scenario(canary_error_rate=0.02), 0.05),
    ("error rate 1 % -> 3 %", Scenario(canary_error_rate=0.03), 0.05),
    ("latency x1.05, 5 % tolerated", Scenario(latency_ratio=1.05), 0.05),
    ("latency x1.10, 5 % tolerated", Scenario(latency_ratio=1.10), 0.05),
    ("latency x1.20, 5 % tolerated", Scenario(latency_ratio=1.20), 0.05),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rollouts", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()

    header = (
        f"{'scenario':<38} {'aborted':>8} {'by errors':>10} {'by latency':>11} "
        f"{'median look':>12} {'per-interval':>13}"
    )
    print(f"{args.rollouts} rollouts a scenario, alpha {args.alpha}, seed {args.seed}")
    print(header)
    print("-" * len(header))
    started = time.monotonic()
    for i, (name, scenario, tolerance) in enumerate(SCENARIOS):
        outcome = simulate(
            scenario,
            rollouts=args.rollouts,
            seed=args.seed + i,
            alpha=args.alpha,
            latency_tolerance=tolerance,
        )
        look = "-" if outcome.median_abort_look is None else f"{outcome.median_abort_look:.0f}"
        print(
            f"{name:<38} {outcome.sequential_aborts:>8.2%} {outcome.error_rate_aborts:>10.2%} "
            f"{outcome.latency_aborts:>11.2%} {look:>12} {outcome.per_interval_aborts:>13.2%}"
        )
    print(f"({outcome.looks} looks a rollout; {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
