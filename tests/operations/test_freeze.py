"""Freeze during an incident: promotions to production are refused with who and why,
staging promotions and rollback still work, and both switches are audited."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.support.api import API, assert_problem, audit_events, create_model
from tests.support.flows import (
    Team,
    approve,
    decide,
    evaluate,
    new_version,
    permissive_policy,
    production_version,
    promote,
    put_policy,
    request_promotion,
    rollback,
    rule,
)

MODEL = "fraud"


def switch(client: TestClient, action: str, headers: dict[str, str], reason: str) -> dict[str, Any]:
    response = client.post(
        f"{API}/models/{MODEL}/{action}", json={"reason": reason}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_freeze_refuses_production_promotions_but_not_rollback(
    client: TestClient, team: Team
) -> None:
    create_model(client, MODEL, primary_metric="accuracy", primary_dataset="holdout")
    put_policy(client, MODEL, permissive_policy(auto_promote=False, approvals=1))
    v1, v2, v3, v4 = (new_version(client, MODEL) for _ in range(4))
    for number in (v1, v2):
        approve(
            client,
            promote(client, MODEL, number, "production", headers=team.submitter)["id"],
            headers=team.reviewer,
        )
    waiting = promote(client, MODEL, v3, "production", headers=team.submitter)
    assert waiting["status"] == "pending_approval"

    frozen = switch(client, "freeze", team.operator, "INC-311: fraud spike under review")
    operator = team.name(team.operator)
    assert frozen["frozen"] is True
    assert frozen["frozen_by"] == operator
    assert frozen["reason"] == "INC-311: fraud spike under review"
    assert frozen["frozen_at"] is not None
    model = client.get(f"{API}/models/{MODEL}").json()
    assert (model["frozen"], model["frozen_by"]) == (True, operator)

    refused = request_promotion(client, MODEL, v4, "production", headers=team.submitter)
    problem = assert_problem(refused, 409, "model-frozen")
    assert operator in problem["detail"]
    assert "INC-311: fraud spike under review" in problem["detail"]
    assert problem["frozen_by"] == operator
    assert problem["frozen_reason"] == "INC-311: fraud spike under review"
    # An approval that would change production is refused too, and the request waits.
    blocked = decide(client, waiting["id"], "approve", headers=team.reviewer)
    assert operator in assert_problem(blocked, 409, "model-frozen")["detail"]
    assert client.get(f"{API}/promotions/{waiting['id']}").json()["status"] == "pending_approval"
    assert production_version(client, MODEL) == v2

    # Staging promotions still work, and so does rollback.
    assert promote(client, MODEL, v4, "staging", headers=team.submitter)["status"] == "applied"
    back = rollback(client, MODEL, headers=team.operator, reason="INC-311")
    assert back.status_code == 200, back.text
    assert back.json()["serving_version"] == v1
    assert production_version(client, MODEL) == v1
    # Freezing a frozen model for the same reason changes nothing.
    again = switch(client, "freeze", team.operator, "INC-311: fraud spike under review")
    assert again["reason"] == frozen["reason"]
    assert again["frozen_at"] == frozen["frozen_at"]

    thawed = switch(client, "unfreeze", team.operator, "INC-311 resolved")
    assert thawed == {
        "model": MODEL,
        "frozen": False,
        "frozen_at": None,
        "frozen_by": None,
        "reason": None,
    }
    assert client.get(f"{API}/models/{MODEL}").json()["frozen"] is False
    approve(client, waiting["id"], headers=team.reviewer)
    assert production_version(client, MODEL) == v3
    later = promote(client, MODEL, v4, "production", headers=team.submitter)
    approve(client, later["id"], headers=team.reviewer)
    assert production_version(client, MODEL) == v4
    assert switch(client, "unfreeze", team.operator, "again")["frozen"] is False

    events = audit_events(client, model=MODEL)
    switches = [e for e in events if e["action"] in ("model.frozen", "model.unfrozen")]
    assert [(e["action"], e["actor"], e["reason"]) for e in switches] == [
        ("model.frozen", operator, "INC-311: fraud spike under review"),
        ("model.unfrozen", operator, "INC-311 resolved"),
    ]
    assert switches[1]["details"]["frozen_by"] == operator
    assert switches[1]["details"]["frozen_reason"] == "INC-311: fraud spike under review"
    # The refused attempts left nothing behind.
    requested = [e["version"] for e in events if e["action"] == "promotion.requested"]
    assert requested.count(v4) == 2  # staging and the production request after the thaw


def test_freeze_needs_an_operator_and_a_reason(client: TestClient, team: Team) -> None:
    create_model(client, MODEL)
    for action in ("freeze", "unfreeze"):
        for headers in (team.reviewer, team.submitter, team.reader):
            response = client.post(
                f"{API}/models/{MODEL}/{action}", json={"reason": "x"}, headers=headers
            )
            assert_problem(response, 403, "forbidden")
        for body in ({}, {"reason": ""}):
            response = client.post(
                f"{API}/models/{MODEL}/{action}", json=body, headers=team.operator
            )
            assert_problem(response, 422)
    assert client.get(f"{API}/models/{MODEL}").json()["frozen"] is False
    assert audit_events(client, model=MODEL, action="model.frozen") == []
    assert switch(client, "freeze", {}, "admin may too")["frozen"] is True
    missing = client.post(f"{API}/models/nope/freeze", json={"reason": "x"}, headers=team.operator)
    assert_problem(missing, 404, "model-not-found")


def test_a_dry_run_to_production_shows_the_freeze_as_a_failing_check(
    client: TestClient, team: Team
) -> None:
    create_model(client, MODEL, primary_metric="accuracy", primary_dataset="holdout")
    put_policy(client, MODEL, permissive_policy())
    number = new_version(client, MODEL)
    before = evaluate(client, MODEL, number, "production")
    assert before["passed"] is True
    assert "model_not_frozen" not in [r["rule"] for r in before["rules"]]

    switch(client, "freeze", team.operator, "INC-7: no changes")
    report = evaluate(client, MODEL, number, "production")
    assert report["passed"] is False
    assert "model_not_frozen" in report["failed"]
    check = rule(report, "model_not_frozen")
    assert check["kind"] == "freeze"
    assert "INC-7: no changes" in check["reason"]
    assert check["observed"]["reason"] == "INC-7: no changes"
    assert check["observed"]["frozen_by"] == team.name(team.operator)
    # Staging is not frozen: its dry run has no freeze check.
    staging = evaluate(client, MODEL, number, "staging")
    assert staging["passed"] is True
    assert "model_not_frozen" not in [r["rule"] for r in staging["rules"]]


def test_a_second_freeze_with_a_new_reason_records_it(client: TestClient, team: Team) -> None:
    create_model(client, MODEL)
    put_policy(client, MODEL, permissive_policy())
    first = switch(client, "freeze", team.operator, "INC-1: latency")
    second = switch(client, "freeze", {}, "INC-2: also precision")
    assert second["frozen"] is True
    assert second["reason"] == "INC-2: also precision"
    assert second["frozen_at"] == first["frozen_at"]  # still the same freeze
    problem = assert_problem(
        request_promotion(client, MODEL, new_version(client, MODEL), "production"),
        409,
        "model-frozen",
    )
    assert problem["frozen_reason"] == "INC-2: also precision"
    updated = audit_events(client, model=MODEL, action="model.freeze_updated")
    assert [(e["reason"], e["details"]["previous_reason"]) for e in updated] == [
        ("INC-2: also precision", "INC-1: latency")
    ]
    assert updated[0]["details"]["previous_frozen_by"] == team.name(team.operator)
    # Unfrozen, the audit names the reason in force.
    switch(client, "unfreeze", team.operator, "over")
    thawed = audit_events(client, model=MODEL, action="model.unfrozen")
    assert thawed[0]["details"]["frozen_reason"] == "INC-2: also precision"
