"""The driver of the process judges a rollout on its own: an observation batch triggers a
look, a harmful canary is aborted and a sound one advances through its holds to
production. In one process (SQLite and PostgreSQL); the two-process fleet is in
test_rollout_fleet.py."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from app.rollouts.driver import Driver
from app.settings import Settings
from tests.rollouts.conftest import API, model_with_candidate, observations
from tests.support.api import audit_events
from tests.support.flows import HELD_STEP, production_version, read_version, start_rollout

BATCH = 6000


def _feed_until_ended(
    client: TestClient, model: str, rollout_id: int, rates: dict[int, float], seed: int
) -> dict[str, Any]:
    """Post batches split by the current plan, each followed by the look it triggers,
    until the rollout ends (at most 40 batches)."""
    rng = np.random.default_rng(seed)
    for i in range(40):
        rollout = client.get(f"{API}/rollouts/{rollout_id}").json()
        if rollout["state"] in ("completed", "aborted"):
            return rollout
        plan = client.get(f"{API}/models/{model}/serving").json()
        routes = {r["version"]: r["weight"] for r in plan["routes"]}
        batch = observations(rng, routes, BATCH, rates, prefix=f"d{seed}-{i}")
        response = client.post(f"{API}/models/{model}/observations", json={"observations": batch})
        assert response.status_code == 202, response.text
        for _ in range(200):  # the look the batch triggered (bounded wait, not a timing test)
            now = client.get(f"{API}/rollouts/{rollout_id}").json()
            if now["look_count"] > rollout["look_count"] or now["state"] != "running":
                break
            time.sleep(0.05)
    raise AssertionError(f"rollout {rollout_id} did not end: {rollout}")


def test_the_driver_aborts_a_canary_with_twice_the_error_rate(client: TestClient) -> None:
    model = model_with_candidate(client)
    started = start_rollout(client, model, [HELD_STEP], interval=0.2)
    rollout = _feed_until_ended(client, model, started["id"], {1: 0.01, 2: 0.02}, seed=3)
    assert rollout["state"] == "aborted"
    assert rollout["decisions"][-1]["actor"] == "system"
    assert rollout["decisions"][-1]["automatic"] is True
    assert "critical metric failed (errors)" in rollout["reason"]
    assert production_version(client, model) == 1
    assert read_version(client, model, 2)["stage"] == "candidate"
    plan = client.get(f"{API}/models/{model}/serving").json()
    assert [(r["version"], r["weight"]) for r in plan["routes"]] == [(1, 100.0)]
    (event,) = [e for e in audit_events(client, model=model) if e["action"] == "rollout.aborted"]
    assert event["actor"] == "system"
    assert event["reason"] == rollout["reason"]


def test_the_driver_advances_a_sound_canary_through_its_holds(client: TestClient) -> None:
    model = model_with_candidate(client)
    steps = [
        {"weight": 50, "hold": {"min_observations": 2000}},
        {"weight": 100, "hold": {"duration_seconds": 0.1}},
    ]
    started = start_rollout(client, model, steps, interval=0.2)
    rollout = _feed_until_ended(client, model, started["id"], {1: 0.01, 2: 0.008}, seed=5)
    assert rollout["state"] == "completed", rollout
    assert [(d["action"], d["automatic"]) for d in rollout["decisions"]] == [
        ("started", False), ("advanced", True), ("completed", True),
    ]  # fmt: skip
    assert production_version(client, model) == 2
    assert read_version(client, model, 1)["stage"] == "archived"
    held = [look for look in rollout["looks"] if look["action"] == "hold"]
    assert all(look["reason"] for look in held)


def _own_driver(settings: Settings) -> tuple[Driver, Any]:
    """A driver of the test's own (beside the app's), ticking only when told."""
    own = settings.model_copy(update={"rollout_tick_seconds": 60.0})
    engine = create_engine(settings.database_url)
    return Driver(sessions=sessionmaker(engine, expire_on_commit=False), settings=own), engine


def _canary_looked_at_every_ten_minutes(client: TestClient) -> tuple[str, int]:
    model = model_with_candidate(client)
    started = start_rollout(client, model, [HELD_STEP], interval=600)
    return model, int(started["id"])


def _post(client: TestClient, model: str, batch: list[dict[str, Any]]) -> None:
    response = client.post(f"{API}/models/{model}/observations", json={"observations": batch})
    assert response.status_code == 202, response.text


def test_a_critical_failure_aborts_between_looks_without_waiting_for_the_interval(
    client: TestClient, settings: Settings
) -> None:
    """A look every ten minutes, and a batch showing the canary's error rate far above the
    incumbent's: the batch's early look aborts at once (errors is critical by default)."""
    model, rollout_id = _canary_looked_at_every_ten_minutes(client)
    rng = np.random.default_rng(11)
    _post(client, model, observations(rng, {1: 50, 2: 50}, BATCH, {1: 0.01, 2: 0.2}, prefix="c"))
    driver, engine = _own_driver(settings)
    try:
        driver.nudge(model)
        driver.tick()
    finally:
        engine.dispose()
    rollout = client.get(f"{API}/rollouts/{rollout_id}").json()
    assert rollout["state"] == "aborted", rollout
    assert rollout["look_count"] == 1
    assert "critical metric failed (errors)" in rollout["reason"]
    assert rollout["decisions"][-1]["automatic"] is True
    assert production_version(client, model) == 1


def test_an_early_look_without_a_critical_failure_leaves_no_trace(
    client: TestClient, settings: Settings
) -> None:
    """The canary is slower (latency is not critical) but no worse in errors: the batch's
    early look records nothing and the rollout waits for its interval."""
    model, rollout_id = _canary_looked_at_every_ten_minutes(client)
    rng = np.random.default_rng(12)
    batch = observations(rng, {1: 50, 2: 50}, BATCH, {1: 0.01, 2: 0.01}, prefix="s")
    for row in batch:
        if row["version"] == 2:
            row["latency_ms"] = round(row["latency_ms"] * 3, 3)
    _post(client, model, batch)
    driver, engine = _own_driver(settings)
    try:
        driver.nudge(model)
        assert driver.tick() == 0
    finally:
        engine.dispose()
    rollout = client.get(f"{API}/rollouts/{rollout_id}").json()
    assert rollout["state"] == "running", rollout
    assert rollout["look_count"] == 0
    assert rollout["looks"] == []
