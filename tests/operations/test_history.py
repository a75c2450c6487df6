"""The production timeline: which version served when, how it got there, who and why, and
that it tells the same story as the audit log."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.support.api import API, assert_problem, create_model
from tests.support.flows import (
    Team,
    approve,
    check_history_chain,
    history,
    new_version,
    permissive_policy,
    production_changes,
    promote,
    put_policy,
    rollback,
)

MODEL = "fraud"


def test_history_tells_the_true_order(client: TestClient, team: Team) -> None:
    create_model(client, MODEL, primary_metric="accuracy", primary_dataset="holdout")
    put_policy(client, MODEL, permissive_policy(auto_promote=False, approvals=1))
    v1, v2, v3, v4 = (new_version(client, MODEL) for _ in range(4))
    reviewer = team.name(team.reviewer)
    operator = team.name(team.operator)
    for number in (v1, v2, v3):
        pending = promote(
            client, MODEL, number, "production", headers=team.submitter, comment=f"release {number}"
        )
        approve(client, pending["id"], headers=team.reviewer)
    assert (
        rollback(client, MODEL, reason="first incident", headers=team.operator).status_code == 200
    )
    assert (
        rollback(client, MODEL, reason="second incident", headers=team.operator).status_code == 200
    )
    pending = promote(client, MODEL, v4, "production", headers=team.submitter, comment="fix")
    approve(client, pending["id"], headers=team.reviewer)
    named = rollback(client, MODEL, reason="v3 after all", to_version=v3, headers=team.operator)
    assert named.status_code == 200, named.text

    entries = history(client, MODEL)
    assert [(e["version"], e["via"], e["actor"], e["reason"]) for e in entries] == [
        (v3, "rollback", operator, "v3 after all"),
        (v4, "promotion", reviewer, "fix"),
        (v1, "rollback", operator, "second incident"),
        (v2, "rollback", operator, "first incident"),
        (v3, "promotion", reviewer, f"release {v3}"),
        (v2, "promotion", reviewer, f"release {v2}"),
        (v1, "promotion", reviewer, f"release {v1}"),
    ]
    check_history_chain(entries)
    assert entries[1]["promotion_id"] == pending["id"]
    assert entries[0]["promotion_id"] is None
    # The audit log tells the same story, in the same order.
    assert production_changes(client, MODEL) == [
        (e["version"], e["via"]) for e in reversed(entries)
    ]

    # Pages follow the cursor, newest first.
    first = client.get(f"{API}/models/{MODEL}/history", params={"limit": 3}).json()
    assert [e["version"] for e in first["items"]] == [v3, v4, v1]
    second = client.get(
        f"{API}/models/{MODEL}/history", params={"limit": 3, "cursor": first["next_cursor"]}
    ).json()
    assert [e["version"] for e in second["items"]] == [v2, v3, v2]
    readers = client.get(f"{API}/models/{MODEL}/history", headers=team.reader)
    assert readers.status_code == 200, readers.text


def test_empty_history_and_unknown_model(client: TestClient) -> None:
    create_model(client, MODEL)
    response = client.get(f"{API}/models/{MODEL}/history")
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [], "next_cursor": None}
    assert_problem(client.get(f"{API}/models/nope/history"), 404, "model-not-found")
    assert_problem(client.get(f"{API}/models/{MODEL}/history", params={"cursor": "junk"}), 400)


def test_staging_moves_do_not_enter_the_production_history(client: TestClient, team: Team) -> None:
    create_model(client, MODEL)
    put_policy(client, MODEL, permissive_policy())
    v1 = new_version(client, MODEL)
    promote(client, MODEL, v1, "staging", headers=team.submitter, status="applied")
    assert history(client, MODEL) == []
    promote(client, MODEL, v1, "production", headers=team.submitter, status="applied")
    (entry,) = history(client, MODEL)
    assert (entry["version"], entry["via"], entry["ended_at"]) == (v1, "promotion", None)
