"""The router's picks: deterministic, sticky while weights hold, shares within binomial
bounds of the weights over 100,000 keys; shadow samples likewise."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest

from modelgate_client.router import NoRoute, Router

KEYS = [f"user-{i}" for i in range(100_000)]


def plan(revision: int, routes: dict[int, float], shadows: dict[int, float] | None = None) -> Any:
    def entry(version: int) -> dict[str, Any]:
        return {
            "version": version,
            "stage": "production",
            "artifact": {
                "sha256": f"{version:064x}",
                "size": 1,
                "media_type": None,
                "download_path": f"/api/v1/models/m/versions/{version}/artifact",
            },
        }

    return {
        "model": "fraud",
        "revision": revision,
        "production": entry(min(routes)) if routes else None,
        "routes": [{**entry(v), "weight": w} for v, w in routes.items()],
        "shadows": [{**entry(v), "share": s} for v, s in (shadows or {}).items()],
        "aliases": [],
    }


def offline(document: dict[str, Any]) -> Router:
    router = Router("http://127.0.0.1:9", "fraud", start=False)
    router.set_plan(document)
    return router


def within_binomial(count: int, n: int, p: float, sigmas: float = 4.5) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_nothing_to_pick_without_a_plan_or_a_route() -> None:
    router = Router("http://127.0.0.1:9", "fraud", start=False)
    with pytest.raises(NoRoute):
        router.pick("k")
    assert router.shadows("k") == []
    router.set_plan(plan(0, {}))
    with pytest.raises(NoRoute):
        router.pick("k")


def test_one_route_takes_every_key() -> None:
    router = offline(plan(1, {3: 100.0}))
    assert {router.pick(k) for k in KEYS[:1000]} == {3}


@pytest.mark.parametrize(
    "weights", [{1: 90.0, 2: 10.0}, {1: 50.0, 2: 30.0, 3: 20.0}, {4: 99.0, 7: 1.0}]
)
def test_shares_are_within_binomial_bounds(weights: dict[int, float]) -> None:
    router = offline(plan(1, weights))
    counts = Counter(router.pick(k) for k in KEYS)
    total = sum(weights.values())
    for version, weight in weights.items():
        assert within_binomial(counts[version], len(KEYS), weight / total), (version, counts)


def test_picks_are_deterministic_across_routers() -> None:
    a = offline(plan(1, {1: 50.0, 2: 50.0}))
    b = offline(plan(9, {2: 50.0, 1: 50.0}))  # order in the document does not matter
    assert [a.pick(k) for k in KEYS[:5000]] == [b.pick(k) for k in KEYS[:5000]]
    assert [a.pick(k.encode()) for k in KEYS[:100]] == [a.pick(k) for k in KEYS[:100]]


def test_a_key_keeps_its_version_while_weights_hold_and_few_move_when_they_change() -> None:
    router = offline(plan(1, {1: 90.0, 2: 10.0}))
    before = [router.pick(k) for k in KEYS]
    router.set_plan(plan(2, {1: 90.0, 2: 10.0}))  # a new revision, same weights
    assert [router.pick(k) for k in KEYS] == before
    router.set_plan(plan(3, {1: 80.0, 2: 20.0}))
    after = [router.pick(k) for k in KEYS]
    # Every key on the canary stays there; the keys that move are about 10 %.
    assert all(a == 2 for b, a in zip(before, after, strict=True) if b == 2)
    moved = sum(1 for b, a in zip(before, after, strict=True) if b != a)
    assert within_binomial(moved, len(KEYS), 0.10)


def test_shadow_samples_are_within_binomial_bounds_and_independent_of_the_route() -> None:
    router = offline(plan(1, {1: 50.0, 2: 50.0}, shadows={5: 25.0, 6: 100.0}))
    sampled: Counter[int] = Counter()
    both = 0
    for key in KEYS:
        shadows = router.shadows(key)
        assert 6 in shadows
        if 5 in shadows:
            sampled[router.pick(key)] += 1
            both += 1
    assert within_binomial(both, len(KEYS), 0.25)
    # Among the sampled keys, the routes keep their 50/50 split.
    assert within_binomial(sampled[1], both, 0.5)
    assert router.shadows("k") == router.shadows("k")
