"""Freeze during an incident: promotions to production are refused with who and why,
staging promotions and rollback still work, and both switches are audited."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.support.api import API, assert_problem, audit_events, create_model
from tests.support.flows import (
    Team,
    approve,
    decide,
    new_version,
    permissive_policy,
    production_version,
    promote,
    put_policy,
    request_promotion,
    rollback,
)

MODEL = "fraud"


def switch(client: TestClient, action: str, headers: dict[str, str], reason: str) -> dict:
    response = client.post(
        f"{API}/models/{MODEL}/{action}", json={"reason": reason}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict = response.json()
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
    # Freezing a frozen model changes nothing.
    assert switch(client, "freeze", team.operator, "again")["reason"] == frozen["reason"]

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
