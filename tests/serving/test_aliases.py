"""Aliases: set, move, remove, read by alias, history and audit; protected aliases move
only when their policy's gates pass; every move is a new serving revision."""

from __future__ import annotations

import re
import threading
from typing import Any

from fastapi.testclient import TestClient

from tests.serving.conftest import model_in_production
from tests.support.api import ADMIN_TOKEN, API, assert_problem, audit_events
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
    team = make_team(client)
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
    team = make_team(client)
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
    team = make_team(client)
    model = model_in_production(client, "alias-gated", versions=1)
    put_policy(client, model, protected())
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


def approve(client: TestClient, promotion_id: int, headers: dict[str, str]) -> Any:
    return client.post(
        f"{API}/promotions/{promotion_id}/approve", json={"comment": "ok"}, headers=headers
    )


def test_a_protected_alias_asking_for_approvals_moves_when_reviewers_approve(
    client: TestClient,
) -> None:
    team = make_team(client)
    model = model_in_production(client, "alias-approvals", versions=1)
    put_policy(client, model, protected(approvals=2))
    weak = new_version(client, model, accuracy=0.90)
    strong = new_version(client, model, accuracy=0.97)
    start = revision(client, model)

    # Gates first: a failing version gets no request.
    assert_problem(
        put_alias(client, model, "champion", weak, team.submitter), 422, "alias-gates-failed"
    )
    body = assert_problem(
        put_alias(client, model, "champion", strong, team.submitter, "strong one"),
        409, "alias-needs-approval",
    )  # fmt: skip
    promotion_id = body["promotion_id"]
    assert body["alias"] == "champion"
    assert f"promotions approve {promotion_id}" in body["detail"]
    # The refusal kept the request; the alias did not move.
    request = client.get(f"{API}/promotions/{promotion_id}").json()
    assert (request["status"], request["alias"], request["version"], request["target"]) == (
        "pending_approval", "champion", strong, "production",
    )  # fmt: skip
    assert request["approvals_required"] == 2
    assert request["report"]["passed"] is True
    assert request["comment"] == "strong one"
    assert client.get(f"{API}/models/{model}/aliases").json() == []
    assert revision(client, model) == start
    # Asking again points to the same request.
    again = assert_problem(
        put_alias(client, model, "champion", strong, team.submitter2), 409, "alias-needs-approval"
    )
    assert again["promotion_id"] == promotion_id
    pending = client.get(
        f"{API}/promotions", params={"status": "pending_approval", "model": model}
    ).json()["items"]
    assert [p["id"] for p in pending] == [promotion_id]

    # Reviewers approve through the promotions API; the requester may not.
    assert_problem(approve(client, promotion_id, team.submitter), 403)
    first = approve(client, promotion_id, team.reviewer)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "pending_approval"
    assert client.get(f"{API}/models/{model}/aliases").json() == []
    second = approve(client, promotion_id, team.reviewer2)
    assert second.status_code == 200, second.text
    assert second.json()["status"] == "applied"
    assert second.json()["alias"] == "champion"

    # The alias moved through the transition core: one revision, history, audit.
    [alias] = client.get(f"{API}/models/{model}/aliases").json()
    assert (alias["name"], alias["version"]) == ("champion", strong)
    assert alias["updated_by"] == team.name(team.reviewer2)
    assert client.get(f"{API}/models/{model}/versions/@champion").json()["version"] == strong
    # The version's stage did not change.
    assert client.get(f"{API}/models/{model}/versions/{strong}").json()["stage"] == "candidate"
    assert revision(client, model) == start + 1
    [move] = client.get(f"{API}/models/{model}/aliases/champion/history").json()["items"]
    assert (move["from_version"], move["to_version"], move["promotion_id"], move["reason"]) == (
        None, strong, promotion_id, "strong one",
    )  # fmt: skip
    events = audit_events(client, model=model)
    moved = [e for e in events if e["action"] == "alias.moved"]
    assert [e["details"]["promotion_id"] for e in moved] == [promotion_id]
    applied = [e for e in events if e["action"] == "promotion.applied"]
    assert [e["details"].get("alias") for e in applied][-1] == "champion"
    plan = client.get(f"{API}/models/{model}/serving").json()
    assert [(a["name"], a["version"]) for a in plan["aliases"]] == [("champion", strong)]
    # Production itself was not touched.
    assert plan["production"]["version"] == 1


def test_a_pending_alias_request_can_be_rejected_and_survives_stage_moves(
    client: TestClient,
) -> None:
    team = make_team(client)
    model = model_in_production(client, "alias-reject", versions=1)
    put_policy(client, model, protected(approvals=1))
    v2 = new_version(client, model, accuracy=0.97)
    v3 = new_version(client, model, accuracy=0.98)
    first = assert_problem(
        put_alias(client, model, "champion", v2, team.submitter), 409, "alias-needs-approval"
    )["promotion_id"]
    second = assert_problem(
        put_alias(client, model, "champion", v3, team.submitter), 409, "alias-needs-approval"
    )["promotion_id"]
    assert first != second
    # A stage promotion of v3 neither conflicts with nor supersedes its alias request.
    response = client.post(
        f"{API}/models/{model}/promotions", json={"version": v3, "target": "staging"},
        headers=team.submitter,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "applied"
    assert client.get(f"{API}/promotions/{second}").json()["status"] == "pending_approval"

    response = client.post(
        f"{API}/promotions/{first}/reject", json={"comment": "not yet"}, headers=team.reviewer
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "rejected"
    assert client.get(f"{API}/models/{model}/aliases").json() == []

    assert approve(client, second, team.reviewer).json()["status"] == "applied"
    assert client.get(f"{API}/models/{model}/versions/@champion").json()["version"] == v3
    assert client.get(f"{API}/models/{model}/versions/{v3}").json()["stage"] == "staging"


def test_an_alias_request_runs_its_gates_again_when_the_policy_changed(
    client: TestClient,
) -> None:
    team = make_team(client)
    model = model_in_production(client, "alias-regate", versions=1)
    put_policy(client, model, protected(approvals=1))
    v2 = new_version(client, model, accuracy=0.96)
    promotion_id = assert_problem(
        put_alias(client, model, "champion", v2, team.submitter), 409, "alias-needs-approval"
    )["promotion_id"]
    # The bar rises before the approval: the request's gates run again and fail.
    put_policy(client, model, protected(approvals=1, minimum=0.99))
    answer = approve(client, promotion_id, team.reviewer)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "rejected"
    assert answer.json()["decided_by"] == "gates"
    assert client.get(f"{API}/models/{model}/aliases").json() == []


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


def test_lists_of_models_and_versions_and_the_console_show_aliases(client: TestClient) -> None:
    model = model_in_production(client, "alias-lists", versions=2)
    v3 = new_version(client, model)
    for name, number in (("champion", 2), ("challenger", v3), ("canary", v3)):
        assert put_alias(client, model, name, number, {}).status_code == 200
    expected = {"canary": v3, "challenger": v3, "champion": 2}

    models = client.get(f"{API}/models", params={"name_prefix": model}).json()["items"]
    assert [(m["name"], m["aliases"]) for m in models] == [(model, expected)]
    assert client.get(f"{API}/models/{model}").json()["aliases"] == expected
    versions = client.get(f"{API}/models/{model}/versions").json()["items"]
    assert {v["version"]: v["aliases"] for v in versions} == {
        v3: ["canary", "challenger"], 2: ["champion"], 1: [],
    }  # fmt: skip
    [production] = client.get(f"{API}/models/{model}/stages/production").json()["items"]
    assert production["aliases"] == ["champion"]
    other = model_in_production(client, "alias-lists-none", versions=1)
    assert client.get(f"{API}/models/{other}").json()["aliases"] == {}

    # The console's model page: the aliases beside production, and on each version.
    form = client.get("/ui/sign-in")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce is not None
    signed_in = client.post(
        "/ui/sign-in",
        data={"token": ADMIN_TOKEN, "nonce": nonce.group(1), "next": f"/ui/models/{model}"},
        follow_redirects=False,
    )
    assert signed_in.status_code == 303, signed_in.text
    page = client.get(f"/ui/models/{model}")
    assert page.status_code == 200
    summary = page.text[page.text.index('class="summary"') : page.text.index("</section>")]
    for name in expected:
        assert f'<span class="alias">@{name}</span>' in summary
    versions_html = page.text[page.text.index('id="versions-h"') :]
    assert versions_html.count('<span class="alias">@') == 3
