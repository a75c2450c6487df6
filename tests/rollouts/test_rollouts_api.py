"""Rollouts over the API in one process: start, the plan at each step, the operators'
actions, and bad input refused with nothing written."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.rollouts.conftest import API, model_with_candidate, observations
from tests.support.api import assert_problem, audit_events, create_model, error_locs
from tests.support.flows import (
    gate,
    new_version,
    permissive_policy,
    production_version,
    promote,
    put_policy,
    read_version,
    start_body,
    start_rollout,
)


def _plan(client: TestClient, model: str) -> dict[str, Any]:
    response = client.get(f"{API}/models/{model}/serving")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _routes(plan: dict[str, Any]) -> dict[int, float]:
    return {r["version"]: r["weight"] for r in plan["routes"]}


def _rollouts(client: TestClient, model: str) -> list[dict[str, Any]]:
    response = client.get(f"{API}/models/{model}/rollouts")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_a_canary_moves_the_plan_at_each_step_and_completes_to_production(
    client: TestClient,
) -> None:
    model = model_with_candidate(client)
    before = _plan(client, model)
    assert _routes(before) == {1: 100.0}

    rollout = start_rollout(client, model)
    assert rollout["state"] == "running"
    assert rollout["step"] == 0
    assert rollout["incumbent_version"] == 1
    assert rollout["weights"] == {"2": 10.0, "1": 90.0}
    plan = _plan(client, model)
    assert _routes(plan) == {1: 90.0, 2: 10.0}
    assert plan["revision"] == before["revision"] + 1
    assert rollout["serving_revision"] == plan["revision"]

    seen = [plan["revision"]]
    for step, expected in ((1, {1: 50.0, 2: 50.0}), (2, {2: 100.0})):
        response = client.post(f"{API}/rollouts/{rollout['id']}/advance", json={"reason": "ok"})
        assert response.status_code == 200, response.text
        assert response.json()["step"] == step
        plan = _plan(client, model)
        assert _routes(plan) == expected
        assert plan["revision"] == seen[-1] + 1
        seen.append(plan["revision"])

    done = client.post(f"{API}/rollouts/{rollout['id']}/advance", json={}).json()
    assert done["state"] == "completed"
    assert done["ended_at"] is not None
    # An ended rollout states what it left serving (decision record 0022).
    assert done["weights"] == {"2": 100.0}
    assert client.get(f"{API}/rollouts/{rollout['id']}").json()["weights"] == {"2": 100.0}
    assert production_version(client, model) == 2
    assert read_version(client, model, 1)["stage"] == "archived"
    plan = _plan(client, model)
    assert _routes(plan) == {2: 100.0}
    assert plan["production"]["version"] == 2
    actions = [d["action"] for d in done["decisions"]]
    assert actions == ["started", "advanced", "advanced", "completed"]
    kinds = [e["action"] for e in audit_events(client, model=model)]
    for action in ("rollout.started", "rollout.advanced", "rollout.completed"):
        assert action in kinds
    # The completed rollout frees the model for another one.
    assert _rollouts(client, model)[0]["state"] == "completed"


def test_abort_returns_the_weight_to_the_incumbent_and_changes_nothing_else(
    client: TestClient,
) -> None:
    model = model_with_candidate(client)
    rollout = start_rollout(client, model)
    missing = client.post(f"{API}/rollouts/{rollout['id']}/abort", json={})
    assert_problem(missing, 422)
    response = client.post(
        f"{API}/rollouts/{rollout['id']}/abort", json={"reason": "dashboards look odd"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "aborted"
    assert body["reason"] == "dashboards look odd"
    assert body["weights"] == {"1": 100.0}  # the incumbent alone, as the plan says
    assert _routes(_plan(client, model)) == {1: 100.0}
    assert production_version(client, model) == 1
    assert read_version(client, model, 2)["stage"] == "candidate"
    (event,) = [e for e in audit_events(client, model=model) if e["action"] == "rollout.aborted"]
    assert event["reason"] == "dashboards look odd"
    again = client.post(f"{API}/rollouts/{rollout['id']}/advance", json={})
    assert_problem(again, 409, "rollout-not-active")


def test_pause_resume_and_the_approval_hold(client: TestClient, make_token: Any) -> None:
    model = model_with_candidate(client)
    steps = [
        {"weight": 20, "hold": {"approval": True}},
        {"weight": 100, "hold": {"duration_seconds": 1}},
    ]
    rollout = start_rollout(client, model, steps=steps)
    rid = rollout["id"]
    assert_problem(client.post(f"{API}/rollouts/{rid}/advance", json={}), 409, "approval-required")
    # The starter (the admin token here) cannot approve its own rollout.
    assert_problem(client.post(f"{API}/rollouts/{rid}/approve", json={}), 403)
    reviewer = {"Authorization": f"Bearer {make_token('reviewer')}"}
    approved = client.post(
        f"{API}/rollouts/{rid}/approve", json={"comment": "go"}, headers=reviewer
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["steps"][0]["approved_by"] is not None

    paused = client.post(f"{API}/rollouts/{rid}/pause", json={"reason": "lunch"}).json()
    assert paused["state"] == "paused"
    assert _routes(_plan(client, model)) == {1: 80.0, 2: 20.0}  # the weights stay
    assert_problem(client.post(f"{API}/rollouts/{rid}/advance", json={}), 409, "rollout-not-active")
    resumed = client.post(f"{API}/rollouts/{rid}/resume", json={}).json()
    assert resumed["state"] == "running"
    advanced = client.post(f"{API}/rollouts/{rid}/advance", json={})
    assert advanced.status_code == 200, advanced.text
    assert [d["action"] for d in advanced.json()["decisions"]] == [
        "started", "approved", "paused", "resumed", "advanced",
    ]  # fmt: skip


def test_a_freeze_stops_advancing_but_abort_still_works(client: TestClient) -> None:
    model = model_with_candidate(client)
    rollout = start_rollout(client, model)
    frozen = client.post(f"{API}/models/{model}/freeze", json={"reason": "incident"})
    assert frozen.status_code == 200, frozen.text
    refused = client.post(f"{API}/rollouts/{rollout['id']}/advance", json={})
    assert_problem(refused, 409, "model-frozen")
    assert _routes(_plan(client, model)) == {1: 90.0, 2: 10.0}
    aborted = client.post(f"{API}/rollouts/{rollout['id']}/abort", json={"reason": "incident"})
    assert aborted.status_code == 200, aborted.text
    assert _routes(_plan(client, model)) == {1: 100.0}
    # And a frozen model takes no new rollout.
    response = client.post(f"{API}/models/{model}/rollouts", json=start_body())
    assert_problem(response, 409, "model-frozen")


@pytest.mark.parametrize(
    ("steps", "where"),
    [
        ([{"weight": 0, "hold": {"min_observations": 10}}], ["body", "steps", 0, "weight"]),
        ([{"weight": 101, "hold": {"min_observations": 10}}], ["body", "steps", 0, "weight"]),
        ([{"weight": -5, "hold": {"min_observations": 10}}], ["body", "steps", 0, "weight"]),
        (
            [{"weight": 50, "hold": {"min_observations": 10}},
             {"weight": 20, "hold": {"min_observations": 10}}],
            ["body"],
        ),
        (
            [{"weight": 50, "hold": {"min_observations": 10}},
             {"weight": 50, "hold": {"min_observations": 10}}],
            ["body"],
        ),
        ([{"weight": 10, "hold": {}}], ["body", "steps", 0, "hold"]),
        ([{"weight": 10}], ["body", "steps", 0, "hold"]),
        ([], ["body", "steps"]),
    ],
)  # fmt: skip
def test_bad_steps_are_422_and_nothing_is_written(
    client: TestClient, steps: list[dict[str, Any]], where: list[Any]
) -> None:
    model = model_with_candidate(client)
    revision = _plan(client, model)["revision"]
    response = client.post(f"{API}/models/{model}/rollouts", json=start_body(steps=steps))
    problem = assert_problem(response, 422)
    assert any(loc[: len(where)] == where for loc in error_locs(problem)), problem
    assert _rollouts(client, model) == []
    assert _plan(client, model)["revision"] == revision
    assert not [e for e in audit_events(client, model=model) if e["action"].startswith("rollout")]


def test_a_version_failing_the_production_gates_cannot_start(client: TestClient) -> None:
    model = model_with_candidate(client)
    put_policy(client, model, permissive_policy(rules=[
        gate("threshold", "good-enough", metric="accuracy", dataset="holdout", value=0.95),
    ]))  # fmt: skip
    revision = _plan(client, model)["revision"]
    response = client.post(f"{API}/models/{model}/rollouts", json=start_body())
    problem = assert_problem(response, 409, "gates-failed")
    assert problem["failed"] == ["good-enough"]
    assert _rollouts(client, model) == []
    assert _plan(client, model)["revision"] == revision


def test_one_rollout_per_model_and_other_refusals(client: TestClient) -> None:
    model = model_with_candidate(client)
    first = start_rollout(client, model)
    new_version(client, model, accuracy=0.82)
    second = client.post(f"{API}/models/{model}/rollouts", json=start_body(version=3))
    problem = assert_problem(second, 409, "rollout-in-progress")
    assert problem["rollout_id"] == first["id"]
    assert len(_rollouts(client, model)) == 1
    assert_problem(client.post(f"{API}/models/{model}/rollouts", json=start_body(version=1)),
                   409)  # fmt: skip
    assert_problem(client.post(f"{API}/models/{model}/rollouts", json=start_body(version=9)),
                   404)  # fmt: skip
    assert_problem(client.post(f"{API}/models/nope/rollouts", json=start_body()), 404)
    assert_problem(client.get(f"{API}/rollouts/999999"), 404, "rollout-not-found")
    # Production moves by the rollout's completion, not by a promotion meanwhile.
    promotion = client.post(
        f"{API}/models/{model}/promotions", json={"version": 3, "target": "production"}
    )
    assert_problem(promotion, 409, "rollout-in-progress")
    assert production_version(client, model) == 1

    lonely = "roll-lonely"
    create_model(client, lonely)
    put_policy(client, lonely, permissive_policy())
    new_version(client, lonely)
    response = client.post(f"{API}/models/{lonely}/rollouts", json=start_body(version=1))
    assert_problem(response, 409, "no-incumbent")


def test_shadow_rollout_fills_the_plans_shadows(client: TestClient) -> None:
    model = model_with_candidate(client)
    steps = [{"weight": 25, "hold": {"min_observations": 10}}]
    rollout = start_rollout(client, model, strategy="shadow", steps=steps)
    assert rollout["promote_on_complete"] is False
    plan = _plan(client, model)
    assert _routes(plan) == {1: 100.0}
    assert [(s["version"], s["share"]) for s in plan["shadows"]] == [(2, 25.0)]
    done = client.post(f"{API}/rollouts/{rollout['id']}/advance", json={}).json()
    assert done["state"] == "completed"
    assert done["weights"] == {"1": 100.0}  # completed without promotion: the incumbent
    assert production_version(client, model) == 1
    plan = _plan(client, model)
    assert plan["shadows"] == []


def test_observations_for_versions_outside_the_plan_are_refused(client: TestClient) -> None:
    model = model_with_candidate(client)
    rng = np.random.default_rng(1)
    batch = observations(rng, {1: 50, 2: 50}, 20, {1: 0.0, 2: 0.0}, prefix="x")
    response = client.post(f"{API}/models/{model}/observations", json={"observations": batch})
    problem = assert_problem(response, 409, "state-mismatch")  # decision 0025
    first = next(i for i, o in enumerate(batch) if o["version"] == 2)
    assert problem["errors"][0]["loc"] == ["body", "observations", first, "version"]
    assert "not in the serving plan" in problem["errors"][0]["msg"]
    start_rollout(client, model)
    response = client.post(f"{API}/models/{model}/observations", json={"observations": batch})
    assert response.status_code == 202, response.text


def test_a_policy_may_require_a_rollout_for_production(client: TestClient) -> None:
    model = model_with_candidate(client)
    policy = permissive_policy()
    policy["production"]["require_rollout"] = True
    put_policy(client, model, policy)
    response = client.post(
        f"{API}/models/{model}/promotions", json={"version": 2, "target": "production"}
    )
    problem = assert_problem(response, 409, "rollout-required")
    assert f"/api/v1/models/{model}/rollouts" in problem["detail"]
    # Staging is still reached by a promotion, and production by the rollout.
    promote(client, model, 2, "staging", status="applied")
    rollout = start_rollout(client, model, steps=[{"weight": 100, "hold": {"duration_seconds": 0}}])
    done = client.post(f"{API}/rollouts/{rollout['id']}/advance", json={}).json()
    assert done["state"] == "completed"
    assert production_version(client, model) == 2
