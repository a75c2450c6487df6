"""One-call rollback as the on-call engineer uses it: back to the previous stable version,
or to a named archived one, only when its artifact is intact, and never to a version
that was itself rolled back (unless named)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.api import API, assert_problem, audit_events, create_model
from tests.support.flows import (
    Team,
    audit_verify,
    corrupt_stored_artifact,
    delete_stored_artifact,
    history,
    new_version,
    permissive_policy,
    production_version,
    promote,
    put_policy,
    read_version,
    rollback,
)

MODEL = "fraud"


def promoted(client: TestClient, count: int) -> list[int]:
    """A model whose versions 1..count were promoted to production in turn."""
    create_model(client, MODEL, primary_metric="accuracy", primary_dataset="holdout")
    put_policy(client, MODEL, permissive_policy())
    versions = []
    for _ in range(count):
        number = new_version(client, MODEL)
        promote(client, MODEL, number, "production", status="applied")
        versions.append(number)
    return versions


def rolled_back(client: TestClient, headers: dict[str, str], **kwargs: Any) -> dict[str, Any]:
    response = rollback(client, MODEL, headers=headers, **kwargs)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_rollback_twice_then_forward_then_back(client: TestClient, team: Team) -> None:
    v1, v2, v3 = promoted(client, 3)

    first = rolled_back(client, team.operator, reason="v3 doubles the error rate")
    assert first["serving_version"] == v2
    assert first["replaced_version"] == v3
    assert first["reason"] == "v3 doubles the error rate"
    assert first["rolled_back_by"] == team.name(team.operator)
    assert production_version(client, MODEL) == v2
    gone = read_version(client, MODEL, v3)
    assert gone["stage"] == "archived"
    assert gone["rolled_back"] is True
    assert gone["archived_reason"] == f"rolled back to version {v2}: v3 doubles the error rate"

    second = rolled_back(client, team.operator, reason="v2 too")
    assert (second["serving_version"], second["replaced_version"]) == (v1, v2)
    assert production_version(client, MODEL) == v1
    assert read_version(client, MODEL, v2)["rolled_back"] is True
    assert read_version(client, MODEL, v1)["rolled_back"] is False

    # Every earlier version was rolled back: there is nothing to go back to automatically.
    nothing = rollback(client, MODEL, headers=team.operator)
    assert "no earlier production version" in assert_problem(nothing, 409)["detail"]

    # Roll forward by promotion, then back: the previous stable one is v1, not v2 or v3.
    v4 = new_version(client, MODEL)
    promote(client, MODEL, v4, "production", headers=team.submitter, status="applied")
    back = rolled_back(client, team.operator, reason="v4 is slow")
    assert (back["serving_version"], back["replaced_version"]) == (v1, v4)
    assert production_version(client, MODEL) == v1

    # A rolled-back version can still be named explicitly.
    named = rolled_back(client, team.operator, reason="v3 was fine after all", to_version=v3)
    assert (named["serving_version"], named["replaced_version"]) == (v3, v1)
    assert production_version(client, MODEL) == v3
    assert read_version(client, MODEL, v1)["stage"] == "archived"
    assert read_version(client, MODEL, v1)["archived_reason"].startswith(
        f"rolled back to version {v3}"
    )
    audit_verify(client)


def test_rollback_to_a_named_archived_version(client: TestClient, team: Team) -> None:
    v1, v2, v3 = promoted(client, 3)
    done = rolled_back(client, team.operator, to_version=v1, reason="back to the known good")
    assert (done["serving_version"], done["replaced_version"]) == (v1, v3)
    assert production_version(client, MODEL) == v1
    assert read_version(client, MODEL, v2)["stage"] == "archived"
    assert read_version(client, MODEL, v2)["rolled_back"] is False
    # Automatic rollback from v1 goes to v2: it served before v3 and was never rolled back.
    auto = rolled_back(client, team.operator)
    assert (auto["serving_version"], auto["replaced_version"]) == (v2, v1)

    candidate = new_version(client, MODEL)
    not_archived = rollback(client, MODEL, to_version=candidate, headers=team.operator)
    assert "is in candidate" in assert_problem(not_archived, 409, "rollback-not-possible")["detail"]
    serving = rollback(client, MODEL, to_version=v2, headers=team.operator)
    assert "already in production" in assert_problem(serving, 409)["detail"]
    missing = rollback(client, MODEL, to_version=99, headers=team.operator)
    assert_problem(missing, 404, "version-not-found")
    assert production_version(client, MODEL) == v2


def test_rollback_without_production_or_without_an_earlier_one(
    client: TestClient, team: Team
) -> None:
    create_model(client, MODEL)
    put_policy(client, MODEL, permissive_policy())
    v1 = new_version(client, MODEL)
    none = rollback(client, MODEL, headers=team.operator)
    assert "no production version" in assert_problem(none, 409, "rollback-not-possible")["detail"]
    promote(client, MODEL, v1, "production", status="applied")
    first = rollback(client, MODEL, headers=team.operator)
    problem = assert_problem(first, 409, "rollback-not-possible")
    assert "no earlier production version" in problem["detail"]
    assert production_version(client, MODEL) == v1
    assert audit_events(client, model=MODEL, action="model.rolled_back") == []
    assert_problem(client.post(f"{API}/models/nope/rollback", json={"reason": "x"}), 404)


def test_rollback_needs_a_reason_and_an_operator(client: TestClient, team: Team) -> None:
    v1, v2 = promoted(client, 2)
    for body in ({}, {"reason": ""}, {"reason": "x", "to_version": 0}, {"reason": "x", "y": 1}):
        response = client.post(f"{API}/models/{MODEL}/rollback", json=body, headers=team.operator)
        assert_problem(response, 422)
    for headers in (team.reviewer, team.submitter, team.reader):
        assert_problem(rollback(client, MODEL, headers=headers), 403, "forbidden")
    assert production_version(client, MODEL) == v2
    by_admin = rolled_back(client, {})  # the client's own token is an admin's
    assert by_admin["serving_version"] == v1


def test_idempotency_key_replays_one_rollback(client: TestClient, team: Team) -> None:
    _v1, v2, _v3 = promoted(client, 3)
    headers = {**team.operator, "Idempotency-Key": "incident-4711"}
    first = rollback(client, MODEL, headers=headers)
    assert first.status_code == 200, first.text
    replay = rollback(client, MODEL, headers=headers)
    assert replay.status_code == 200, replay.text
    assert replay.headers.get("idempotent-replayed") == "true"
    assert replay.json() == first.json()
    assert production_version(client, MODEL) == v2  # not v1: one rollback happened
    assert len(audit_events(client, model=MODEL, action="model.rolled_back")) == 1
    assert [h["via"] for h in history(client, MODEL)].count("rollback") == 1
    other = rollback(client, MODEL, reason="another reason", headers=headers)
    assert_problem(other, 409, "idempotency-key-reused")


@pytest.mark.parametrize("named", [False, True], ids=["previous", "to_version"])
def test_missing_artifact_refuses_the_rollback_and_changes_nothing(
    client: TestClient, team: Team, request: pytest.FixtureRequest, named: bool
) -> None:
    v1, v2 = promoted(client, 2)
    sha = read_version(client, MODEL, v1)["artifact"]["sha256"]
    before_history = history(client, MODEL)
    before_audit = audit_events(client, model=MODEL)
    before_v1 = read_version(client, MODEL, v1)
    delete_stored_artifact(request, sha)

    response = rollback(client, MODEL, headers=team.operator, to_version=v1 if named else None)
    problem = assert_problem(response, 409, "rollback-not-possible")
    assert f"artifact of version {v1} is not intact" in problem["detail"]
    assert "object missing" in problem["detail"]
    assert "nothing changed" in problem["detail"]
    assert problem["target_version"] == v1

    assert production_version(client, MODEL) == v2
    assert history(client, MODEL) == before_history
    assert audit_events(client, model=MODEL) == before_audit
    assert read_version(client, MODEL, v1) == before_v1
    assert read_version(client, MODEL, v2)["rolled_back"] is False
    audit_verify(client)


def test_corrupted_artifact_is_caught_by_a_deep_check(
    client: TestClient, team: Team, request: pytest.FixtureRequest
) -> None:
    v1, v2 = promoted(client, 2)
    corrupt_stored_artifact(request, read_version(client, MODEL, v1)["artifact"]["sha256"])
    before = audit_events(client, model=MODEL)
    response = client.post(
        f"{API}/models/{MODEL}/rollback",
        json={"reason": "incident", "deep_check": True},
        headers=team.operator,
    )
    problem = assert_problem(response, 409, "rollback-not-possible")
    assert "sha256" in problem["artifact_check"]
    assert production_version(client, MODEL) == v2
    # Nothing changed but the finding: the version is marked corrupt, and announced.
    after = audit_events(client, model=MODEL)
    assert after[: len(before)] == before
    assert [(e["action"], e["version"]) for e in after[len(before) :]] == [("artifact.corrupt", v1)]


def test_rollback_is_audited_in_full(client: TestClient, team: Team) -> None:
    v1, v2 = promoted(client, 2)
    done = rolled_back(client, team.operator, reason="page from on-call")
    event = audit_events(client, model=MODEL, action="model.rolled_back")[0]
    assert event["actor"] == team.name(team.operator)
    assert event["actor_role"] == "operator"
    assert event["version"] == v1
    assert event["reason"] == "page from on-call"
    assert event["details"]["from_version"] == v2
    assert event["details"]["to_version"] == v1
    assert event["details"]["automatic_target"] is True
    assert event["details"]["artifact_check"] == done["artifact_check"]
    changes = [
        (e["version"], e["from_stage"], e["to_stage"])
        for e in audit_events(client, model=MODEL, action="version.stage_changed")
    ]
    assert changes[-2:] == [(v2, "production", "archived"), (v1, "archived", "production")]
