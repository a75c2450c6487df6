"""Blue-green, A/B and shadow rollouts with a fleet: two server processes on one
PostgreSQL, and Router replicas of the real client that follow the plan by long poll,
score requests with a deterministic fake model and post their observations through their
own batching (tests/support/fleet.py)."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.settings import Settings
from modelgate_client.router import key_point
from tests.rollouts.conftest import API, model_with_candidate
from tests.security.conftest import module_database, module_settings, module_store
from tests.serving.conftest import admin, server_settings
from tests.support.api import audit_events
from tests.support.fleet import FakeModel, Fleet, fleet_servers
from tests.support.flows import production_version, read_version, start_rollout
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.postgres_only
__all__ = ["module_database", "module_settings", "module_store"]  # fixtures, shared

ERRORS_ONLY = {
    "metrics": [{"name": "errors", "kind": "error_rate", "critical": True}],
    "interval_seconds": 0.3,
}
ROUND = 300
MAX_ROUNDS = 40


@pytest.fixture(scope="module")
def servers(module_settings: Settings) -> Iterator[list[ServerProcess]]:
    with fleet_servers(server_settings(module_settings)) as started:
        yield started


@pytest.fixture
def client(servers: list[ServerProcess]) -> Iterator[httpx.Client]:
    with admin(servers[1].base_url) as made:
        yield made


def _rollout(client: httpx.Client, rid: int) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"{API}/rollouts/{rid}").json()
    return body


def _serve_until(
    fleet: Fleet, client: httpx.Client, rid: int, done: Any, prefix: str
) -> dict[str, Any]:
    """Serve rounds of requests until ``done(rollout)``; each round is flushed, so the
    servers' drivers look at it before the next."""
    for r in range(MAX_ROUNDS):
        rollout = _rollout(client, rid)
        if done(rollout):
            return rollout
        fleet.serve(ROUND, f"{prefix}{r}")
        fleet.flush()
    raise AssertionError(f"rollout {rid} not done after {MAX_ROUNDS} rounds: {rollout}")


def _wait(client: httpx.Client, rid: int, done: Any) -> dict[str, Any]:
    """The rollout once ``done(rollout)`` (polling, for at most a minute)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rollout = _rollout(client, rid)
        if done(rollout):
            return rollout
        time.sleep(0.05)
    raise AssertionError(f"rollout {rid} not done: {rollout}")


def _ended(rollout: dict[str, Any]) -> bool:
    return rollout["state"] in ("completed", "aborted")


# Blue-green ----------------------------------------------------------------------------


def _blue_green(
    client: httpx.Client, model: str, duration: float, warm_up: int = 250
) -> dict[str, Any]:
    steps = [{"weight": 100, "hold": {"min_observations": warm_up, "duration_seconds": duration}}]
    return start_rollout(client, model, strategy="blue_green", steps=steps, analysis=ERRORS_ONLY)


def _routes_seen(fleet: Fleet) -> list[list[tuple[int, dict[int, float], dict[int, float]]]]:
    return [[(s.revision, s.routes, s.shadows) for s in seen] for seen in fleet.seen]


def test_blue_green_switches_the_whole_share_at_once_and_switches_back_in_one_call(
    servers: list[ServerProcess], client: httpx.Client
) -> None:
    model = model_with_candidate(client)
    started = _blue_green(client, model, duration=3600)
    rid, first = started["id"], started["serving_revision"]
    fleet = Fleet(servers, model, FakeModel(model, {1: 0.02, 2: 0.01}))
    try:
        rollout = _serve_until(fleet, client, rid, lambda r: r["switched"] or _ended(r), "w")
        assert rollout["state"] == "running", rollout
        assert rollout["switched"] is True
        assert rollout["serving_revision"] == first + 1
        fleet.wait_for_revision(first + 1)
        # The warm-up: green scored every request as a shadow and answered none.
        assert fleet.fake.tally.requests[(2, "shadow")] >= 250
        assert fleet.fake.tally.requests[(2, "primary")] == 0
        # Every router: blue alone with green shadowing everything, then green alone, in
        # one revision (0 -> 100).
        for seen in _routes_seen(fleet):
            assert seen == [
                (first, {1: 100.0}, {2: 100.0}), (first + 1, {2: 100.0}, {}),
            ], seen  # fmt: skip
        fleet.serve(ROUND, "after")
        assert fleet.fake.tally.requests[(2, "primary")] == ROUND
        # The hold: green serves everything, blue is still production; one call goes back.
        assert production_version(client, model) == 1
        back = client.post(f"{API}/rollouts/{rid}/abort", json={"reason": "switch back"})
        assert back.status_code == 200, back.text
        assert back.json()["state"] == "aborted"
        fleet.wait_for_revision(first + 2)
        for router in fleet.routers:
            assert router.plan is not None
            assert [(r.version, r.weight) for r in router.plan.routes] == [(1, 100.0)]
            assert router.plan.shadows == ()
    finally:
        fleet.close()
    assert production_version(client, model) == 1
    assert read_version(client, model, 2)["stage"] == "candidate"
    rollout = _rollout(client, rid)
    assert [(d["action"], d["automatic"]) for d in rollout["decisions"]] == [
        ("started", False), ("advanced", True), ("aborted", False),
    ]  # fmt: skip
    events = [e for e in audit_events(client, model=model) if e["action"].startswith("rollout.")]
    assert [e["action"] for e in events] == [
        "rollout.started", "rollout.advanced", "rollout.aborted",
    ]  # fmt: skip
    assert events[-1]["reason"] == "switch back"


def test_blue_green_completes_after_the_hold_green_production_blue_archived(
    servers: list[ServerProcess], client: httpx.Client
) -> None:
    model = model_with_candidate(client)
    started = _blue_green(client, model, duration=1.0)
    rid, first = started["id"], started["serving_revision"]
    fleet = Fleet(servers, model, FakeModel(model, {1: 0.02, 2: 0.01}))
    try:
        rollout = _serve_until(fleet, client, rid, _ended, "c")
        fleet.wait_for_revision(rollout["serving_revision"])
    finally:
        fleet.close()
    assert rollout["state"] == "completed", rollout
    assert production_version(client, model) == 2
    assert read_version(client, model, 1)["stage"] == "archived"
    assert [(d["action"], d["automatic"]) for d in rollout["decisions"]] == [
        ("started", False), ("advanced", True), ("completed", True),
    ]  # fmt: skip
    # Whatever revisions a router saw, green went from 0 to 100 between two of them.
    for seen in _routes_seen(fleet):
        assert seen[0] == (first, {1: 100.0}, {2: 100.0})
        assert all(s[1] == {2: 100.0} and s[2] == {} for s in seen[1:]), seen
        assert len(seen) >= 2


def test_a_green_that_errs_more_never_takes_the_share(
    servers: list[ServerProcess], client: httpx.Client
) -> None:
    model = model_with_candidate(client)
    # A warm-up long enough to tell 8 % from 2 % (a short one passes an underpowered look).
    started = _blue_green(client, model, duration=1.0, warm_up=3000)
    rid, first = started["id"], started["serving_revision"]
    fleet = Fleet(servers, model, FakeModel(model, {1: 0.02, 2: 0.08}))
    try:
        rollout = _serve_until(fleet, client, rid, _ended, "b")
        fleet.wait_for_revision(first + 1)
    finally:
        fleet.close()
    assert rollout["state"] == "aborted", rollout
    assert rollout["switched"] is False
    assert fleet.fake.tally.requests[(2, "primary")] == 0
    for seen in _routes_seen(fleet):
        assert all(s[1] == {1: 100.0} for s in seen), seen
        assert seen[-1] == (first + 1, {1: 100.0}, {})
    assert production_version(client, model) == 1
    assert read_version(client, model, 2)["stage"] == "candidate"
    (event,) = [e for e in audit_events(client, model=model) if e["action"] == "rollout.aborted"]
    assert event["actor"] == "system"
    assert "critical metric failed (errors)" in event["reason"]


# A/B -----------------------------------------------------------------------------------

N_AB = 3000


def _binomial_bounds(n: int, p: float) -> tuple[float, float]:
    spread = 4 * math.sqrt(n * p * (1 - p))
    return n * p - spread, n * p + spread


@pytest.mark.parametrize("promote", [False, True], ids=["report-only", "policy-promotes"])
def test_ab_holds_a_fixed_split_reports_per_arm_and_promotes_only_if_asked(
    servers: list[ServerProcess], client: httpx.Client, promote: bool
) -> None:
    model = model_with_candidate(client)
    # The fixed split: 30 % to b, by the key's point in [0, 1) (routes in version order).
    # The test's sample size: every request below that goes to b, plus one, so the test
    # ends when one more request of b is reported after the report was read.
    n_b = sum(1 for i in range(N_AB) if key_point(model, f"ab-{i}") >= 0.7)
    extra = next(f"ab-extra-{j}" for j in range(100) if key_point(model, f"ab-extra-{j}") >= 0.7)
    body: dict[str, Any] = {"strategy": "ab", "analysis": ERRORS_ONLY}
    if promote:
        body["promote_on_complete"] = True
    steps = [{"weight": 30, "hold": {"min_observations": n_b + 1}}]
    started = start_rollout(client, model, steps=steps, **body)
    rid, first = started["id"], started["serving_revision"]
    assert started["promote_on_complete"] is promote
    fleet = Fleet(servers, model, FakeModel(model, {1: 0.06, 2: 0.01}))
    try:
        for seen in fleet.seen:
            assert seen[-1].routes == {1: 70.0, 2: 30.0}
        picked = fleet.serve(N_AB, "ab")
        fleet.flush()
        assert fleet.stats()["sent"] == N_AB
        assert fleet.stats()["rejected"] == fleet.stats()["failed"] == 0
    finally:
        fleet.close()
    assert picked[2] == n_b
    low, high = _binomial_bounds(N_AB, 0.3)
    assert low <= picked[2] <= high, picked
    tally = fleet.fake.tally
    assert tally.requests[(1, "primary")] == picked[1]
    assert tally.requests[(2, "primary")] == picked[2]

    report = client.get(f"{API}/models/{model}/ab-report", params={"a": 1, "b": 2})
    assert report.status_code == 200, report.text
    arms = {arm["version"]: arm for arm in report.json()["arms"]}
    for version in (1, 2):
        assert arms[version]["requests"] == tally.requests[(version, "primary")]
        assert arms[version]["errors"] == tally.errors[(version, "primary")]
    errors = {m["metric"]: m for m in report.json()["metrics"]}["error_rate"]
    rate_a = tally.errors[(1, "primary")] / picked[1]
    rate_b = tally.errors[(2, "primary")] / picked[2]
    assert errors["a"] == pytest.approx(rate_a)
    assert errors["b"] == pytest.approx(rate_b)
    assert errors["effect"] == pytest.approx(rate_b - rate_a)
    assert errors["significant"] is True
    assert errors["better"] == "b"
    assert errors["p_value"] is not None
    assert errors["p_value"] <= 0.05

    # The split held for the whole test: still running, the plan unchanged.
    rollout = _rollout(client, rid)
    assert rollout["state"] == "running"
    assert rollout["serving_revision"] == first
    # One more request of b reaches the sample size: the drivers end the test on their
    # own, and only a policy that says so promotes.
    last = Fleet(servers, model, fleet.fake, replicas=1)
    try:
        assert last.routers[0].pick(extra) == 2
        last.routers[0].record(extra, 2, latency_ms=1.0)
        last.flush()
        rollout = _wait(client, rid, _ended)
    finally:
        last.close()
    assert rollout["state"] == "completed", rollout
    assert rollout["decisions"][-1]["automatic"] is True
    if promote:
        assert production_version(client, model) == 2
        assert read_version(client, model, 1)["stage"] == "archived"
    else:
        assert production_version(client, model) == 1
        assert read_version(client, model, 2)["stage"] == "candidate"
    plan = client.get(f"{API}/models/{model}/serving").json()
    assert [(r["version"], r["weight"]) for r in plan["routes"]] == [(2 if promote else 1, 100.0)]
    completed = [e for e in audit_events(client, model=model) if e["action"] == "rollout.completed"]
    assert completed[0]["details"]["promoted"] is promote


# Shadow --------------------------------------------------------------------------------


def test_the_shadow_report_matches_what_the_fleet_fed_in(
    servers: list[ServerProcess], client: httpx.Client
) -> None:
    model = model_with_candidate(client)
    steps = [{"weight": 50, "hold": {"min_observations": 10**9}}]
    started = start_rollout(client, model, strategy="shadow", steps=steps, analysis=ERRORS_ONLY)
    rid = started["id"]
    # The shadow errs no more than production (the analysis would abort it otherwise).
    fake = FakeModel(model, {1: 0.04, 2: 0.03}, flip={2: 0.1})
    fleet = Fleet(servers, model, fake)
    try:
        picked = fleet.serve(1500, "sh")
    finally:
        fleet.close()  # every shadow scoring finished and every observation sent
    stats = fleet.stats()
    assert stats["sent"] == stats["queued"], (stats, [r.observation_stats for r in fleet.routers])
    assert picked == Counter({1: 1500})
    tally = fake.tally
    shadowed = tally.requests[(2, "shadow")]
    low, high = _binomial_bounds(1500, 0.5)
    assert low <= shadowed <= high

    response = client.get(f"{API}/models/{model}/versions/2/shadow-report", params={"primary": 1})
    assert response.status_code == 200, response.text
    report = response.json()
    primary = tally.answers[(1, "primary")]
    shadow = tally.answers[(2, "shadow")]
    paired = primary.keys() & shadow.keys()
    agreeing = sum(1 for k in paired if primary[k] == shadow[k])
    assert report["pairs"]["pairs"] == len(paired)
    assert report["pairs"]["class_pairs"] == len(paired)
    assert report["pairs"]["agreeing"] == agreeing
    assert report["pairs"]["agreement"] == pytest.approx(agreeing / len(paired))
    assert report["shadow"]["requests"] == shadowed
    assert report["shadow"]["errors"] == tally.errors[(2, "shadow")]
    assert report["primary"]["requests"] == 1500
    assert report["primary"]["errors"] == tally.errors[(1, "primary")]
    assert report["primary"]["predictions"] == dict(Counter(primary.values()))
    assert report["shadow"]["predictions"] == dict(Counter(shadow.values()))
    assert report["error_rate"]["rate_a"] == pytest.approx(tally.errors[(1, "primary")] / 1500)
    assert report["error_rate"]["rate_b"] == pytest.approx(tally.errors[(2, "shadow")] / shadowed)
    # About 10 % flipped answers: agreement near 0.9.
    assert 0.85 < report["pairs"]["agreement"] < 0.95
    assert _rollout(client, rid)["state"] == "running"
    assert client.post(f"{API}/rollouts/{rid}/abort", json={"reason": "seen"}).status_code == 200
