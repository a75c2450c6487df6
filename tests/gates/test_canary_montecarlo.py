"""Monte Carlo of whole rollouts (fixed seeds): the canary analysis's false-abort rate
and power, with the per-interval judge's figure beside it.

The same simulation, larger and with more scenarios, is ``scripts/rollout-stats``;
its figures are in docs/canary-analysis.md.
"""

from __future__ import annotations

from app.gates.canary_sim import Scenario, simulate

ALPHA = 0.05
ROLLOUTS = 2000


def test_identical_canary_is_aborted_in_at_most_alpha_of_whole_rollouts() -> None:
    # Latency tolerance 0 is the edge of "no worse", the hardest case for the claim.
    outcome = simulate(Scenario(), rollouts=ROLLOUTS, seed=20261203, alpha=ALPHA)
    print(  # noqa: T201
        f"\nsound canary, {outcome.looks} looks: sequential aborts "
        f"{outcome.sequential_aborts:.2%}, per-interval judge {outcome.per_interval_aborts:.2%}"
    )
    assert outcome.looks == 18
    assert outcome.sequential_aborts <= ALPHA
    # Judging every interval on its own at the same alpha aborts most sound canaries.
    assert outcome.per_interval_aborts >= 0.5


def test_doubled_error_rate_is_caught_in_at_least_90_percent_of_rollouts() -> None:
    outcome = simulate(
        Scenario(incumbent_error_rate=0.01, canary_error_rate=0.02),
        rollouts=ROLLOUTS,
        seed=20261204,
        alpha=ALPHA,
    )
    print(  # noqa: T201
        f"\nerror rate 1% -> 2%: aborted {outcome.sequential_aborts:.2%} "
        f"(median at look {outcome.median_abort_look})"
    )
    assert outcome.error_rate_aborts >= 0.90


def test_a_slower_canary_is_caught_and_a_sound_one_rarely_on_latency() -> None:
    slow = simulate(Scenario(latency_ratio=1.1), rollouts=500, seed=20261205, alpha=ALPHA)
    assert slow.latency_aborts >= 0.90
    # Within tolerance: 5 % slower with 10 % tolerated is not harm.
    tolerated = simulate(
        Scenario(latency_ratio=1.05),
        rollouts=500,
        seed=20261206,
        alpha=ALPHA,
        latency_tolerance=0.10,
    )
    assert tolerated.latency_aborts <= ALPHA / 2
