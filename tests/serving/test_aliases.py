"""Aliases: set, move, remove, read by alias, history and audit; protected aliases move
only when their policy's gates pass; every move is a new serving revision."""

from __future__ import annotations

import threading
from typing import Any

from fastapi.testclient import TestClient

from tests.serving.conftest import model_in_production
from tests.support.api import API, assert_problem, audit_events
from tests.support.flows import make_team, new_version, permissive_policy, put_policy


def revision(client: TestClient, model: str) -> int:
    return int(client.get(f"{API}/models/{model}/serving").json()["revision"])


def put_alias(
    client: TestClient, model: str, alias: str, version: int, headers: dict[str, str],
    reason: str | None = "test",
) -> Any:  # fmt: skip
    return client.put(
        f"{API}/models/{model}/aliases/{alias}",
        json={"version": version, "reason": reason},
        headers=headers,
    )


def test_submitters_move_an_alias_without_policy_and_every_move_is_recorded(
    client: TestClient,
) -> None:
    team = make_team(client)  # type: ignore[arg-type]
    model = model_in_production(client, "alias-free", versions=2)
    v3 = new_version(client, model, accuracy=0.95)
    start = revision(client, model)

    response = put_alias(client, model, "challenger", v3, team.submitter, "try v3")
    assert response.status_code == 200, response.text
    assert response.json()["version"] == v3
    assert response.json()["updated_by"] == team.name(team.submitter)
    assert revision(client, model) == start + 1
    # Setting it where it already points changes nothing.
    assert put_alias(client, model, "challenger", v3, team.submitter).status_code == 200
    assert revision(client, model) == start + 1

    response = put_alias(client, model, "challenger", 1, team.submitter2, "back to v1")
    assert response.status_code == 200
    assert revision(client, model) == start + 2

    listed = client.get(f"{API}/models/{model}/aliases").json()
    assert [(a["name"], a["version"], a["stage"]) for a in listed] == [
        ("challenger", 1, "archived")
    ]
    version = client.get(f"{API}/models/{model}/versions/@challenger").json()
    assert version["version"] == 1
    assert version["aliases"] == ["challenger"]
    assert client.get(f"{API}/models/{model}/versions/1").json()["aliases"] == ["challenger"]
    assert client.get(f"{API}/models/{model}/versions/3").json()["aliases"] == []
    download = client.get(
        f"{API}/models/{model}/versions/@challenger/artifact", follow_redirects=False
    )
    assert download.status_code == 307
    assert download.headers["location"].endswith(f"/models/{model}/versions/1/artifact")

    plan = client.get(f"{API}/models/{model}/serving").json()
    [entry] = plan["aliases"]
    assert entry["name"] == "challenger"
    assert entry["version"] == 1
    assert entry["artifact"]["sha256"] is not None

    response = client.delete(
        f"{API}/models/{model}/aliases/challenger",
        params={"reason": "done"},
        headers=team.submitter,
    )
    assert response.status_code == 204
    assert revision(client, model) == start + 3
    assert_problem(client.get(f"{API}/models/{model}/aliases/challenger"), 404, "alias-not-found")
    assert_problem(client.get(f"{API}/models/{model}/versions/@challenger"), 404, "alias-not-found")

    history = client.get(f"{API}/models/{model}/aliases/challenger/history").json()["items"]
    assert [(h["from_version"], h["to_version"], h["reason"]) for h in history] == [
        (1, None, "done"),
        (v3, 1, "back to v1"),
        (None, v3, "try v3"),
    ]
    assert [h["revision"] for h in history] == [start + 3, start + 2, start + 1]
    assert history[1]["actor"] == team.name(team.submitter2)

    events = [e for e in audit_events(client, model=model) if e["action"].startswith("alias.")]
    assert [(e["action"], e["details"]["from_version"], e["details"]["to_version"],
             e["actor"], e["reason"]) for e in events] == [
        ("alias.moved", None, v3, team.name(team.submitter), "try v3"),
        ("alias.moved", v3, 1, team.name(team.submitter2), "back to v1"),
        ("alias.removed", 1, None, team.name(team.submitter), "done"),
    ]  # fmt: skip


def test_an_alias_on_an_archived_version_stays_valid(client: TestClient) -> None:
    model = model_in_production(client, "alias-archived", versions=1)
    v2 = new_version(client, model)
    assert put_alias(client, model, "shadow", v2, {}).status_code == 200
    response = client.post(f"{API}/models/{model}/versions/{v2}/archive", json={"reason": "old"})
    assert response.status_code == 200, response.text
    assert client.get(f"{API}/models/{model}/versions/@shadow").json()["stage"] == "archived"
    assert client.get(f"{API}/models/{model}/serving").json()["aliases"][0]["version"] == v2


def test_bad_alias_input_is_a_clear_problem(client: TestClient) -> None:
    team = make_team(client)  # type: ignore[arg-type]
    model = model_in_production(client, "alias-bad", versions=1)
    for bad in ("Champion", "-x", "x-", "a_b", "x" * 65):
        assert_problem(put_alias(client, model, bad, 1, {}), 422, "validation-failed")
    assert_problem(put_alias(client, model, "ok", 99, {}), 404, "version-not-found")
    assert_problem(put_alias(client, "no-such-model", "ok", 1, {}), 404, "model-not-found")
    assert_problem(put_alias(client, model, "ok", 1, team.reader), 403)
    assert_problem(client.get(f"{API}/models/{model}/aliases/none"), 404, "alias-not-found")
    assert_problem(client.delete(f"{API}/models/{model}/aliases/none"), 404, "alias-not-found")
    response = client.put(f"{API}/models/{model}/aliases/ok", json={"version": 0})
    assert_problem(response, 422, "validation-failed")
    response = client.put(f"{API}/models/{model}/aliases/ok", json={"version": 1, "x": 1})
    assert_problem(response, 422, "validation-failed")


def protected(approvals: int = 0, auto: bool = True, minimum: float = 0.95) -> dict[str, Any]:
    policy = permissive_policy()
    policy["aliases"] = {
        "champion": {
            "rules": [
                {"kind": "threshold", "metric": "accuracy", "dataset": "holdout", "value": minimum}
            ],
            "approvals_required": approvals,
            "auto_promote": auto,
        }
    }
    return policy


def test_a_protected_alias_moves_only_when_its_gates_pass(client: TestClient) -> None:
    team = make_team(client)  # type: ignore[arg-type]
    model = model_in_production(client, "alias-gated", versions=1)
    put_policy(client, model, protected())  # type: ignore[arg-type]
    weak = new_version(client, model, accuracy=0.90)
    strong = new_version(client, model, accuracy=0.97)
    start = revision(client, model)

    body = assert_problem(
        put_alias(client, model, "champion", weak, team.submitter), 422, "alias-gates-failed"
    )
    assert body["report"]["passed"] is False
    assert client.get(f"{API}/models/{model}/aliases").json() == []
    assert revision(client, model) == start

    assert put_alias(client, model, "champion", strong, team.submitter).status_code == 200
    assert revision(client, model) == start + 1
    # Unprotected aliases of the same model stay free.
    assert put_alias(client, model, "challenger", weak, team.submitter).status_code == 200
    # Removing a protected alias is an admin's call.
    assert_problem(
        client.delete(f"{API}/models/{model}/aliases/champion", headers=team.operator), 403
    )
    assert client.delete(f"{API}/models/{model}/aliases/champion").status_code == 204


def test_a_protected_alias_asking_for_approvals_is_refused_clearly(client: TestClient) -> None:
    model = model_in_production(client, "alias-approvals", versions=1)
    put_policy(client, model, protected(approvals=1))  # type: ignore[arg-type]
    strong = new_version(client, model, accuracy=0.97)
    assert_problem(put_alias(client, model, "champion", strong, {}), 409, "alias-needs-approval")
    policy = client.get(f"{API}/models/{model}/policy").json()
    assert "champion" in policy["policy"]["aliases"]


def test_an_alias_move_wakes_a_watcher(client: TestClient) -> None:
    model = model_in_production(client, "alias-watch", versions=1)
    v2 = new_version(client, model)
    start = revision(client, model)
    answers: list[Any] = []
    watcher = threading.Thread(
        target=lambda: answers.append(
            client.get(f"{API}/models/{model}/serving", params={"after": start, "wait": 20})
        )
    )
    watcher.start()
    threading.Event().wait(0.5)
    assert put_alias(client, model, "canary", v2, {}).status_code == 200
    watcher.join(15)
    assert not watcher.is_alive()
    assert answers[0].status_code == 200
    assert answers[0].json()["revision"] == start + 1
    assert [a["name"] for a in answers[0].json()["aliases"]] == ["canary"]
