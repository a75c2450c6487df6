"""A simulated fleet against two server processes on one PostgreSQL: routers read the
serving plan from either process, split requests by its routes and post what they saw to
either process; the drivers of both processes judge the rollout."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import numpy as np
import pytest

from app.settings import Settings
from tests.rollouts.conftest import API, model_with_candidate, observations
from tests.security.conftest import module_database, module_settings, module_store
from tests.serving.conftest import admin, server_settings
from tests.support.api import audit_events
from tests.support.fleet import fleet_servers
from tests.support.flows import HELD_STEP, production_version, race, read_version, start_rollout
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.postgres_only
__all__ = ["module_database", "module_settings", "module_store"]  # fixtures, shared

BATCH = 4000
MAX_BATCHES = 80


# One database and one pair of servers for the module (each test has a model of its own):
# starting two servers is most of a test's time on a busy machine.
@pytest.fixture(scope="module")
def servers(module_settings: Settings) -> Iterator[list[ServerProcess]]:
    with fleet_servers(server_settings(module_settings)) as started:
        yield started


@pytest.fixture
def clients(servers: list[ServerProcess]) -> Iterator[list[httpx.Client]]:
    made = [admin(s.base_url) for s in servers]
    yield made
    for c in made:
        c.close()


@pytest.fixture
def own_servers(module_settings: Settings) -> Iterator[list[ServerProcess]]:
    """A pair of its own, for a test that kills one."""
    with fleet_servers(server_settings(module_settings)) as started:
        yield started


def _wait_for_look(client: httpx.Client, rollout_id: int, after: int) -> dict[str, Any]:
    """The rollout once a look after ``after`` was taken or it ended (bounded polling)."""
    body: dict[str, Any] = {}
    for _ in range(100):
        body = client.get(f"{API}/rollouts/{rollout_id}").json()
        if body["look_count"] > after or body["state"] in ("completed", "aborted"):
            return body
        client.get("/readyz")  # a short pause that is a request, not a sleep
    return body


def fly(
    clients: list[httpx.Client], model: str, rollout_id: int, error_rates: dict[int, float],
    seed: int,
) -> tuple[dict[str, Any], list[tuple[int, dict[int, float]]]]:  # fmt: skip
    """Route and report batches until the rollout ends; returns it and the plans seen."""
    rng = np.random.default_rng(seed)
    plans: list[tuple[int, dict[int, float]]] = []
    rollout: dict[str, Any] = {"look_count": 0}
    for i in range(MAX_BATCHES):
        client = clients[i % len(clients)]
        plan = client.get(f"{API}/models/{model}/serving").json()
        routes = {r["version"]: r["weight"] for r in plan["routes"]}
        if not plans or plans[-1][0] != plan["revision"]:
            plans.append((plan["revision"], routes))
        current = client.get(f"{API}/rollouts/{rollout_id}").json()
        if current["state"] in ("completed", "aborted"):
            return current, plans
        batch = observations(rng, routes, BATCH, error_rates, prefix=f"s{seed}-b{i}")
        reporter = clients[(i + 1) % len(clients)]
        response = reporter.post(f"{API}/models/{model}/observations", json={"observations": batch})
        assert response.status_code == 202, response.text
        rollout = _wait_for_look(reporter, rollout_id, current["look_count"])
    raise AssertionError(f"rollout {rollout_id} did not end after {MAX_BATCHES} batches: {rollout}")


def test_a_canary_with_twice_the_error_rate_is_aborted_automatically(
    clients: list[httpx.Client],
) -> None:
    client = clients[0]
    model = model_with_candidate(client)
    rid = start_rollout(client, model, [HELD_STEP], interval=0.3)["id"]

    rollout, _ = fly(clients, model, rid, {1: 0.01, 2: 0.02}, seed=7)

    assert rollout["state"] == "aborted", rollout
    assert "errors" in rollout["reason"]
    last = rollout["looks"][-1]
    assert last["status"] == "fail"
    errors = next(r for r in last["results"] if r["metric"] == "errors")
    assert errors["verdict"] == "fail"
    assert errors["canary"] > errors["incumbent"]
    # Production untouched; every router is back on the incumbent alone.
    assert production_version(client, model) == 1
    assert read_version(client, model, 2)["stage"] == "candidate"
    for c in clients:
        plan = c.get(f"{API}/models/{model}/serving").json()
        assert [(r["version"], r["weight"]) for r in plan["routes"]] == [(1, 100.0)]
    (event,) = [e for e in audit_events(client, model=model) if e["action"] == "rollout.aborted"]
    assert event["actor"] == "system"
    assert "critical metric failed (errors)" in event["reason"]
    assert event["details"]["automatic"] is True
    # One look per number: the two drivers never both took a look.
    numbers = [look["number"] for look in rollout["looks"]]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert [d["action"] for d in rollout["decisions"]] == ["started", "aborted"]


def test_a_sound_canary_completes_and_becomes_production(clients: list[httpx.Client]) -> None:
    client = clients[0]
    model = model_with_candidate(client)
    steps = [
        {"weight": 10, "hold": {"min_observations": 300}},
        {"weight": 50, "hold": {"min_observations": 300}},
        {"weight": 100, "hold": {"duration_seconds": 0.2}},
    ]
    started = start_rollout(client, model, steps, interval=0.3)
    rid = started["id"]
    first_revision = started["serving_revision"]

    # No worse than the incumbent (a little better on errors, the same latency).
    rollout, plans = fly(clients, model, rid, {1: 0.01, 2: 0.008}, seed=11)

    assert rollout["state"] == "completed", rollout
    assert production_version(client, model) == 2
    assert read_version(client, model, 1)["stage"] == "archived"
    decisions = [(d["action"], d["step"], d["automatic"]) for d in rollout["decisions"]]
    assert decisions == [
        ("started", 0, False), ("advanced", 1, True), ("advanced", 2, True),
        ("completed", 2, True),
    ]  # fmt: skip
    # Every step was a new plan revision with the step's routes.
    events = [e for e in audit_events(client, model=model) if e["action"].startswith("rollout.")]
    assert [e["action"] for e in events] == [
        "rollout.started", "rollout.advanced", "rollout.advanced", "rollout.completed",
    ]  # fmt: skip
    assert [e["details"].get("weight") for e in events[:3]] == [10.0, 50.0, 100.0]
    expected = {
        first_revision: {1: 90.0, 2: 10.0},
        first_revision + 1: {1: 50.0, 2: 50.0},
        first_revision + 2: {2: 100.0},
        first_revision + 3: {2: 100.0},
    }
    for revision, routes in plans:
        assert expected.get(revision) == routes, plans
    assert [r for r, _ in plans] == sorted({r for r, _ in plans})
    final = client.get(f"{API}/models/{model}/serving").json()
    assert final["revision"] == first_revision + 3
    assert final["production"]["version"] == 2


def test_two_processes_racing_advance_move_one_step(clients: list[httpx.Client]) -> None:
    model = model_with_candidate(clients[0])
    started = start_rollout(clients[0], model)
    rid = started["id"]
    calls = [
        partial(c.post, f"{API}/rollouts/{rid}/advance", json={"step": 0}) for c in clients * 3
    ]
    answers = race(calls)
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 409, 409, 409, 409, 409], [a.text for a in answers]
    rollout = clients[1].get(f"{API}/rollouts/{rid}").json()
    assert rollout["step"] == 1
    assert [d["action"] for d in rollout["decisions"]] == ["started", "advanced"]
    plan = clients[1].get(f"{API}/models/{model}/serving").json()
    assert plan["revision"] == started["serving_revision"] + 1


def test_a_process_killed_while_judging_leaves_the_rollout_to_the_other(
    own_servers: list[ServerProcess],
) -> None:
    servers = own_servers
    clients = [admin(s.base_url) for s in servers]
    model = model_with_candidate(clients[0])
    rid = start_rollout(clients[0], model, [HELD_STEP], interval=0.2)["id"]
    rng = np.random.default_rng(3)
    batch = observations(rng, {1: 50, 2: 50}, BATCH, {1: 0.01, 2: 0.01}, prefix="k")
    response = clients[0].post(f"{API}/models/{model}/observations", json={"observations": batch})
    assert response.status_code == 202, response.text
    # SIGKILL while its driver looks every 0.2 s: whatever it was doing rolls back.
    servers[0].kill()
    servers[0].process.wait()
    rollout, _ = fly(clients[1:], model, rid, {1: 0.01, 2: 0.02}, seed=13)
    assert rollout["state"] == "aborted", rollout
    numbers = [look["number"] for look in rollout["looks"]]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert production_version(clients[1], model) == 1
    for c in clients:
        c.close()
