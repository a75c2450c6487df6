"""Promotion requests as a CI job and reviewers use them: gates, the review queue,
approvals, rejections, cancellations, re-evaluation, lifecycle limits, idempotency and
the audit trail of it all."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.support.api import (
    API,
    assert_problem,
    audit_events,
    create_model,
    metric,
    version_payload,
)
from tests.support.flows import (
    Team,
    approve,
    audit_verify,
    decide,
    gate,
    history,
    new_version,
    permissive_policy,
    production_version,
    promote,
    put_policy,
    read_version,
    request_promotion,
    rule,
    to_production,
)

MODEL = "fraud"


def correctness(n: int, right: range) -> list[bool]:
    return [i in right for i in range(n)]


def full_payload(accuracy: float, right: range, **overrides: Any) -> dict[str, Any]:
    """A version every rule of :data:`EVERY_RULE` can judge: metrics with slices, rmse,
    correctness evidence, lineage, signature."""
    body = version_payload(accuracy)
    body["metrics"] = [
        metric("accuracy", accuracy),
        metric("rmse", 0.25),
        metric("accuracy", accuracy - 0.01, slice="DE"),
        metric("accuracy", accuracy + 0.01, slice="FR"),
    ]
    body["evidence"] = [
        {"kind": "correctness", "dataset": "holdout", "values": correctness(300, right)}
    ]
    body.update(overrides)
    return body


EVERY_RULE: dict[str, Any] = {
    "staging": {
        "rules": [{"kind": "artifact_intact"}, {"kind": "lineage_complete"}],
        "approvals_required": 0,
        "auto_promote": True,
    },
    "production": {
        "rules": [
            gate("threshold", "accuracy floor", metric="accuracy", dataset="holdout", value=0.8),
            gate("threshold", "rmse ceiling", metric="rmse", dataset="holdout", value=0.3),
            gate("no_regression", "no regression", delta=0.0),
            gate(
                "significance",
                "significant",
                test="mcnemar",
                dataset="holdout",
                alpha=0.05,
                min_samples=100,
            ),
            gate(
                "fairness",
                "fair",
                metric="accuracy",
                dataset="holdout",
                floor=0.75,
                max_gap=0.05,
                max_slice_regression=0.05,
            ),
            gate("lineage_complete", "lineage"),
            gate("schema_compatible", "schema"),
            gate("artifact_intact", "artifact", deep=True),
        ],
        "approvals_required": 1,
        "auto_promote": False,
        "require_staging": True,
    },
}


def setup_model(client: TestClient, policy: dict[str, Any] | None = None) -> None:
    create_model(client, MODEL, primary_metric="accuracy", primary_dataset="holdout")
    if policy is not None:
        put_policy(client, MODEL, policy)


# The journey a reviewer and a CI job take ------------------------------------------


def test_every_rule_kind_from_candidate_to_production(client: TestClient, team: Team) -> None:
    setup_model(client, EVERY_RULE)
    # The first version: nothing to compare with, so the comparing rules pass.
    v1 = new_version(client, MODEL, payload=full_payload(0.85, range(255)))
    promote(client, MODEL, v1, "staging", headers=team.submitter, status="applied")
    first = promote(client, MODEL, v1, "production", headers=team.reviewer, comment="first")
    assert first["status"] == "pending_approval", first["report"]
    # The requester, a reviewer, cannot approve their own request.
    own = decide(client, first["id"], "approve", headers=team.reviewer)
    assert "requested" in assert_problem(own, 403, "forbidden")["detail"]
    approve(client, first["id"], headers=team.reviewer2)
    assert production_version(client, MODEL) == v1

    # A candidate that fails one rule: it drops an input column production accepts.
    broken = full_payload(0.9, range(15, 285))
    broken["signature"]["inputs"] = broken["signature"]["inputs"][:2]
    v2 = new_version(client, MODEL, payload=broken)
    promote(client, MODEL, v2, "staging", headers=team.submitter, status="applied")
    rejected = promote(client, MODEL, v2, "production", headers=team.submitter, status="rejected")
    assert rejected["report"]["failed"] == ["schema"]
    assert rejected["decided_by"] == "gates"
    assert rejected["decision_comment"] == "gates failed: schema"
    assert rule(rejected["report"], "schema")["reason"] == "input column 'age' was removed"
    assert all(r["passed"] for r in rejected["report"]["rules"] if r["rule"] != "schema")

    # One that passes every rule waits for a reviewer.
    v3 = new_version(client, MODEL, payload=full_payload(0.9, range(15, 285)))
    promote(client, MODEL, v3, "staging", headers=team.submitter, status="applied")
    pending = promote(client, MODEL, v3, "production", headers=team.reviewer2, comment="v3 wins")
    assert pending["status"] == "pending_approval", pending["report"]
    self_approval = decide(client, pending["id"], "approve", headers=team.reviewer2)
    assert_problem(self_approval, 403, "forbidden")
    report = pending["report"]
    assert report["passed"] is True
    assert report["evaluated_against"] == v1
    assert report["approvals_required"] == 1
    assert {r["kind"] for r in report["rules"]} == {
        "threshold",
        "no_regression",
        "significance",
        "fairness",
        "lineage_complete",
        "schema_compatible",
        "artifact_intact",
    }
    assert rule(report, "significant")["p_value"] < 0.05
    queue = client.get(
        f"{API}/promotions", params={"status": "pending_approval"}, headers=team.reviewer
    )
    assert queue.status_code == 200, queue.text
    assert [p["id"] for p in queue.json()["items"]] == [pending["id"]]

    applied = approve(client, pending["id"], headers=team.reviewer)
    assert applied["decided_by"] == team.name(team.reviewer)
    assert [a["reviewer"] for a in applied["approvals"]] == [team.name(team.reviewer)]
    assert applied["applied_at"] is not None
    assert production_version(client, MODEL) == v3
    old = read_version(client, MODEL, v1)
    assert old["stage"] == "archived"
    assert old["archived_reason"] == f"replaced by version {v3} (promotion)"
    assert client.get(f"{API}/promotions/{pending['id']}").json()["status"] == "applied"
    queue = client.get(f"{API}/promotions", params={"status": "pending_approval"}).json()
    assert queue["items"] == []
    timeline = history(client, MODEL)
    assert [(h["version"], h["via"], h["replaced_version"]) for h in timeline] == [
        (v3, "promotion", v1),
        (v1, "promotion", None),
    ]
    assert timeline[0]["reason"] == "v3 wins"
    audit_verify(client)


def test_the_replaced_production_version_is_archived_with_a_reason(
    client: TestClient, team: Team
) -> None:
    setup_model(client, permissive_policy())
    v1 = new_version(client, MODEL)
    v2 = new_version(client, MODEL)
    promote(client, MODEL, v1, "production", status="applied")
    assert read_version(client, MODEL, v1)["archived_reason"] is None
    promote(client, MODEL, v2, "production", status="applied")
    old = read_version(client, MODEL, v1)
    assert old["stage"] == "archived"
    assert old["archived_reason"] == f"replaced by version {v2} (promotion)"
    assert old["rolled_back"] is False
    events = audit_events(client, model=MODEL, action="version.stage_changed")
    archived = [e for e in events if e["to_stage"] == "archived"]
    assert [(e["version"], e["from_stage"], e["details"]["replaced_by"]) for e in archived] == [
        (v1, "production", v2)
    ]


def test_auto_promote_without_approvals_applies_at_once(client: TestClient, team: Team) -> None:
    setup_model(client, permissive_policy(rules=[{"kind": "no_regression"}]))
    v1 = new_version(client, MODEL, accuracy=0.8)
    done = promote(client, MODEL, v1, "production", headers=team.submitter, status="applied")
    assert done["decided_by"] == "policy:auto_promote"
    assert done["approvals"] == []
    assert production_version(client, MODEL) == v1
    # Auto-promote with approvals required still waits for them.
    put_policy(client, MODEL, permissive_policy(rules=[{"kind": "no_regression"}], approvals=1))
    v2 = new_version(client, MODEL, accuracy=0.85)
    waiting = promote(client, MODEL, v2, "production", headers=team.submitter)
    assert waiting["status"] == "pending_approval"
    assert production_version(client, MODEL) == v1
    approve(client, waiting["id"], headers=team.reviewer)
    assert production_version(client, MODEL) == v2


def test_without_auto_promote_one_approval_is_needed_even_when_none_is_required(
    client: TestClient, team: Team
) -> None:
    setup_model(client, permissive_policy(auto_promote=False, approvals=0))
    v1 = new_version(client, MODEL)
    pending = promote(client, MODEL, v1, "production", headers=team.submitter)
    assert pending["status"] == "pending_approval"
    approve(client, pending["id"], headers=team.reviewer)


# Reviewer decisions -----------------------------------------------------------------


def test_reject_needs_a_comment_and_ends_the_request(client: TestClient, team: Team) -> None:
    setup_model(client, permissive_policy(auto_promote=False, approvals=1))
    v1 = new_version(client, MODEL)
    pending = promote(client, MODEL, v1, "production", headers=team.submitter)
    for body in ({}, {"comment": ""}):
        response = client.post(
            f"{API}/promotions/{pending['id']}/reject", json=body, headers=team.reviewer
        )
        assert_problem(response, 422)
    submitter_rejects = decide(
        client, pending["id"], "reject", headers=team.submitter2, comment="no"
    )
    assert_problem(submitter_rejects, 403, "forbidden")
    response = decide(
        client, pending["id"], "reject", headers=team.reviewer, comment="the holdout set is stale"
    )
    assert response.status_code == 200, response.text
    rejected = response.json()
    assert rejected["status"] == "rejected"
    assert rejected["decision_comment"] == "the holdout set is stale"
    assert rejected["decided_by"] == team.name(team.reviewer)
    assert production_version(client, MODEL) is None
    # Deciding a request that is no longer pending is a conflict.
    late = decide(client, pending["id"], "approve", headers=team.reviewer2)
    assert assert_problem(late, 409, "promotion-not-pending")["status_now"] == "rejected"
    assert_problem(decide(client, pending["id"], "cancel", headers=team.submitter), 409)
    # The version can be asked for again.
    again = promote(client, MODEL, v1, "production", headers=team.submitter)
    assert again["status"] == "pending_approval"


def test_cancel_by_the_requester_or_an_operator_only(client: TestClient, team: Team) -> None:
    setup_model(client, permissive_policy(auto_promote=False, approvals=1))
    v1 = new_version(client, MODEL)
    v2 = new_version(client, MODEL)
    first = promote(client, MODEL, v1, "production", headers=team.submitter)
    other = decide(client, first["id"], "cancel", headers=team.submitter2)
    assert "requester" in assert_problem(other, 403, "forbidden")["detail"]
    reviewer = decide(client, first["id"], "cancel", headers=team.reviewer)
    assert_problem(reviewer, 403, "forbidden")
    mine = decide(client, first["id"], "cancel", headers=team.submitter, comment="wrong build")
    assert mine.status_code == 200, mine.text
    assert mine.json()["status"] == "cancelled"
    assert mine.json()["decision_comment"] == "wrong build"
    second = promote(client, MODEL, v2, "production", headers=team.submitter)
    by_operator = decide(client, second["id"], "cancel", headers=team.operator)
    assert by_operator.status_code == 200, by_operator.text
    assert by_operator.json()["status"] == "cancelled"
    assert production_version(client, MODEL) is None


def test_two_approvals_need_two_distinct_reviewers(client: TestClient, team: Team) -> None:
    setup_model(client, permissive_policy(auto_promote=False, approvals=2))
    v1 = new_version(client, MODEL)
    pending = promote(client, MODEL, v1, "production", headers=team.submitter)
    assert pending["approvals_required"] == 2
    one = approve(client, pending["id"], headers=team.reviewer, status="pending_approval")
    assert [a["reviewer_role"] for a in one["approvals"]] == ["reviewer"]
    twice = decide(client, pending["id"], "approve", headers=team.reviewer)
    assert "already approved" in assert_problem(twice, 409, "conflict")["detail"]
    assert production_version(client, MODEL) is None
    done = approve(client, pending["id"], headers=team.reviewer2)
    assert len(done["approvals"]) == 2
    assert len({a["reviewer"] for a in done["approvals"]}) == 2
    assert production_version(client, MODEL) == v1
    assert_problem(decide(client, pending["id"], "approve", headers=team.operator), 409)


def test_reader_and_submitter_cannot_approve(client: TestClient, team: Team) -> None:
    setup_model(client, permissive_policy(auto_promote=False, approvals=1))
    pending = promote(
        client, MODEL, new_version(client, MODEL), "production", headers=team.submitter
    )
    for headers in (team.reader, team.submitter2):
        assert_problem(decide(client, pending["id"], "approve", headers=headers), 403)
    assert_problem(client.post(f"{API}/promotions/999999/approve"), 404, "promotion-not-found")


def test_production_changed_since_evaluation_reruns_the_gates(
    client: TestClient, team: Team
) -> None:
    setup_model(
        client,
        permissive_policy(rules=[gate("no_regression", "nr")], auto_promote=False, approvals=1),
    )
    v1 = new_version(client, MODEL, accuracy=0.80)
    approve(
        client,
        promote(client, MODEL, v1, "production", headers=team.submitter)["id"],
        headers=team.reviewer,
    )
    v2 = new_version(client, MODEL, accuracy=0.85)
    v3 = new_version(client, MODEL, accuracy=0.90)
    stale = promote(client, MODEL, v2, "production", headers=team.submitter)
    assert stale["status"] == "pending_approval"
    assert stale["report"]["evaluated_against"] == v1
    fresh = promote(client, MODEL, v3, "production", headers=team.submitter)
    approve(client, fresh["id"], headers=team.reviewer)
    assert production_version(client, MODEL) == v3
    history_before = history(client, MODEL)

    # v2 beat v1 but not v3: on approval the gates run again, and the request fails.
    ended = approve(client, stale["id"], headers=team.reviewer, status="rejected")
    assert ended["decided_by"] == "gates"
    assert ended["decision_comment"] == "gates failed on re-evaluation: nr"
    assert ended["report"]["evaluated_against"] == v3
    assert ended["report"]["digest"] != stale["report"]["digest"]
    assert rule(ended["report"], "nr")["passed"] is False
    assert production_version(client, MODEL) == v3
    assert read_version(client, MODEL, v2)["stage"] == "candidate"
    assert history(client, MODEL) == history_before
    events = audit_events(client, model=MODEL, action="gates.reevaluated")
    assert len(events) == 1
    assert events[0]["details"]["promotion_id"] == stale["id"]
    assert events[0]["details"]["report_digest"] == ended["report"]["digest"]
    assert events[0]["details"]["passed"] is False
    assert events[0]["details"]["failed"] == ["nr"]
    rejected = audit_events(client, model=MODEL, action="promotion.rejected")
    assert rejected[-1]["details"]["report_digest"] == ended["report"]["digest"]


def test_reevaluation_that_still_passes_applies(client: TestClient, team: Team) -> None:
    setup_model(
        client,
        permissive_policy(rules=[gate("no_regression", "nr")], auto_promote=False, approvals=1),
    )
    v1 = new_version(client, MODEL, accuracy=0.80)
    v2 = new_version(client, MODEL, accuracy=0.85)
    v3 = new_version(client, MODEL, accuracy=0.90)
    late = promote(client, MODEL, v3, "production", headers=team.submitter)
    assert late["report"]["evaluated_against"] is None
    approve(
        client,
        promote(client, MODEL, v1, "production", headers=team.submitter)["id"],
        headers=team.reviewer,
    )
    approve(
        client,
        promote(client, MODEL, v2, "production", headers=team.submitter)["id"],
        headers=team.reviewer,
    )
    done = approve(client, late["id"], headers=team.reviewer)
    assert done["report"]["evaluated_against"] == v2
    assert production_version(client, MODEL) == v3
    assert len(audit_events(client, model=MODEL, action="gates.reevaluated")) == 1


# Lifecycle limits -------------------------------------------------------------------


def test_transitions_the_lifecycle_does_not_allow_are_409s(client: TestClient, team: Team) -> None:
    setup_model(client)  # the default policy: production requires staging
    v1 = new_version(client, MODEL)
    skip = request_promotion(client, MODEL, v1, "production", headers=team.submitter)
    problem = assert_problem(skip, 409, "transition-not-allowed")
    assert "requires staging" in problem["detail"]
    assert "allowed from candidate: staging, archived" in problem["detail"]
    assert problem["allowed"] == ["staging", "archived"]
    assert problem["current_stage"] == "candidate"

    to_production(client, team, MODEL, v1)
    again = request_promotion(client, MODEL, v1, "staging", headers=team.submitter)
    assert "in production" in assert_problem(again, 409, "transition-not-allowed")["detail"]

    v2 = new_version(client, MODEL)
    to_production(client, team, MODEL, v2)
    assert read_version(client, MODEL, v1)["stage"] == "archived"
    back = request_promotion(client, MODEL, v1, "production", headers=team.submitter)
    problem = assert_problem(back, 409, "transition-not-allowed")
    assert "rollback" in problem["detail"]
    assert problem["allowed"] == []

    v3 = new_version(client, MODEL)
    promote(client, MODEL, v3, "staging", headers=team.submitter, status="applied")
    twice = request_promotion(client, MODEL, v3, "staging", headers=team.submitter)
    assert "already in staging" in assert_problem(twice, 409)["detail"]
    assert_problem(
        request_promotion(client, MODEL, 99, "staging", headers=team.submitter),
        404,
        "version-not-found",
    )
    bad_target = client.post(
        f"{API}/models/{MODEL}/promotions",
        json={"version": v3, "target": "archived"},
        headers=team.submitter,
    )
    assert_problem(bad_target, 422)


def test_archive_candidates_but_not_production(client: TestClient, team: Team) -> None:
    setup_model(client, permissive_policy(auto_promote=False, approvals=1))
    v1 = new_version(client, MODEL)
    v2 = new_version(client, MODEL)
    approve(
        client,
        promote(client, MODEL, v1, "production", headers=team.submitter)["id"],
        headers=team.reviewer,
    )
    pending = promote(client, MODEL, v2, "production", headers=team.submitter)

    response = client.post(
        f"{API}/models/{MODEL}/versions/{v2}/archive",
        json={"reason": "superseded by a retrain"},
        headers=team.submitter,
    )
    assert response.status_code == 200, response.text
    assert response.json()["stage"] == "archived"
    # Its pending request can no longer be applied as made.
    gone = client.get(f"{API}/promotions/{pending['id']}").json()
    assert gone["status"] == "superseded"
    assert_problem(decide(client, pending["id"], "approve", headers=team.reviewer), 409)
    assert production_version(client, MODEL) == v1

    refused = client.post(f"{API}/models/{MODEL}/versions/{v1}/archive", json={"reason": "x"})
    problem = assert_problem(refused, 409, "transition-not-allowed")
    assert "roll back" in problem["detail"]
    assert production_version(client, MODEL) == v1
    assert_problem(
        client.post(f"{API}/models/{MODEL}/versions/{v1}/archive", headers=team.reader), 403
    )
    events = audit_events(client, model=MODEL, action="version.archived")
    assert [(e["version"], e["from_stage"], e["reason"]) for e in events] == [
        (v2, "candidate", "superseded by a retrain")
    ]


def test_a_second_pending_request_for_the_same_target_is_409(
    client: TestClient, team: Team
) -> None:
    setup_model(client, permissive_policy(auto_promote=False, approvals=1))
    v1 = new_version(client, MODEL)
    first = promote(client, MODEL, v1, "production", headers=team.submitter)
    second = request_promotion(client, MODEL, v1, "production", headers=team.submitter2)
    problem = assert_problem(second, 409, "conflict")
    assert problem["promotion_id"] == first["id"]
    assert "already pending" in problem["detail"]
    # Another target is a different request.
    other = promote(client, MODEL, v1, "staging", headers=team.submitter)
    assert other["status"] == "applied"
    # Moving to staging superseded the pending production request made from candidate.
    assert client.get(f"{API}/promotions/{first['id']}").json()["status"] == "superseded"


def test_idempotency_key_replays_a_promotion_request(client: TestClient, team: Team) -> None:
    setup_model(client, permissive_policy())
    v1 = new_version(client, MODEL)
    key = {"Idempotency-Key": "ci-run-9876-promote"}
    first = request_promotion(
        client, MODEL, v1, "production", headers=team.submitter, extra_headers=key
    )
    assert first.status_code == 201, first.text
    replay = request_promotion(
        client, MODEL, v1, "production", headers=team.submitter, extra_headers=key
    )
    assert replay.status_code == 201, replay.text
    assert replay.headers.get("idempotent-replayed") == "true"
    assert replay.json() == first.json()
    assert len(audit_events(client, model=MODEL, action="promotion.requested")) == 1
    assert len(history(client, MODEL)) == 1
    other_body = client.post(
        f"{API}/models/{MODEL}/promotions",
        json={"version": v1, "target": "staging"},
        headers={**team.submitter, **key},
    )
    assert_problem(other_body, 409, "idempotency-key-reused")


# Audit ------------------------------------------------------------------------------


def test_every_step_is_audited_with_the_report_digest(client: TestClient, team: Team) -> None:
    setup_model(
        client,
        permissive_policy(
            rules=[{"kind": "threshold", "metric": "accuracy", "dataset": "holdout", "value": 0.8}],
            auto_promote=False,
            approvals=1,
        ),
    )
    good = new_version(client, MODEL, accuracy=0.9)
    weak = new_version(client, MODEL, accuracy=0.7)
    spare = new_version(client, MODEL, accuracy=0.9)
    dropped = new_version(client, MODEL, accuracy=0.9)

    dry = client.post(f"{API}/models/{MODEL}/versions/{good}/evaluate?target=production").json()
    failed = promote(client, MODEL, weak, "production", headers=team.submitter, status="rejected")
    turned_down = promote(client, MODEL, spare, "production", headers=team.submitter)
    decide(client, turned_down["id"], "reject", headers=team.reviewer, comment="not now")
    withdrawn = promote(client, MODEL, dropped, "production", headers=team.submitter)
    decide(client, withdrawn["id"], "cancel", headers=team.submitter)
    pending = promote(client, MODEL, good, "production", headers=team.submitter)
    applied = approve(client, pending["id"], headers=team.reviewer)
    client.post(f"{API}/models/{MODEL}/versions/{dropped}/archive", json={"reason": "cleanup"})

    digests = {
        failed["id"]: failed["report"]["digest"],
        turned_down["id"]: turned_down["report"]["digest"],
        withdrawn["id"]: withdrawn["report"]["digest"],
        pending["id"]: applied["report"]["digest"],
    }
    events = audit_events(client, model=MODEL)
    by_action: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_action.setdefault(event["action"], []).append(event)

    assert by_action["gates.evaluated"][0]["details"]["report_digest"] == dry["digest"]
    assert len(by_action["promotion.requested"]) == 4
    for action in (
        "promotion.requested",
        "promotion.rejected",
        "promotion.cancelled",
        "promotion.approved",
        "promotion.applied",
    ):
        for event in by_action[action]:
            pid = event["details"]["promotion_id"]
            assert event["details"]["report_digest"] == digests[pid], (action, event)
    rejected = {e["details"]["promotion_id"]: e for e in by_action["promotion.rejected"]}
    assert set(rejected) == {failed["id"], turned_down["id"]}
    assert rejected[failed["id"]]["reason"] == "gates failed: threshold:accuracy"
    assert rejected[turned_down["id"]]["reason"] == "not now"
    assert by_action["promotion.cancelled"][0]["details"]["promotion_id"] == withdrawn["id"]
    assert by_action["promotion.approved"][0]["version"] == good
    to_production_events = [
        e for e in by_action["version.stage_changed"] if e["to_stage"] == "production"
    ]
    assert len(to_production_events) == 1
    assert to_production_events[0]["details"]["report_digest"] == digests[pending["id"]]
    assert to_production_events[0]["details"]["promotion_id"] == pending["id"]
    archived = by_action["version.archived"]
    assert [(e["version"], e["reason"]) for e in archived] == [(dropped, "cleanup")]
    # Each event was written by the token that acted.
    assert {e["actor_role"] for e in by_action["promotion.approved"]} == {"reviewer"}
    assert {e["actor_role"] for e in by_action["promotion.requested"]} == {"submitter"}
    audit_verify(client)


def test_a_model_scoped_reviewer_cannot_decide_for_another_model(
    client: TestClient, make_token: Any, team: Team
) -> None:
    setup_model(client, permissive_policy(auto_promote=False, approvals=1))
    create_model(client, "other")
    pending = promote(
        client, MODEL, new_version(client, MODEL), "production", headers=team.submitter
    )
    scoped = {"Authorization": f"Bearer {make_token('reviewer', model_scope='other')}"}
    response = decide(client, pending["id"], "approve", headers=scoped)
    assert response.status_code in (403, 404), response.text
    assert client.get(f"{API}/promotions/{pending['id']}").json()["status"] == "pending_approval"


def test_a_policy_changed_while_pending_asks_for_its_own_approvals(
    client: TestClient, team: Team
) -> None:
    setup_model(client, permissive_policy(auto_promote=False, approvals=1))
    v1 = new_version(client, MODEL)
    pending = promote(client, MODEL, v1, "production", headers=team.submitter)
    assert pending["approvals_required"] == 1
    # Four eyes from now on: the request made under the old policy needs them too.
    put_policy(client, MODEL, permissive_policy(auto_promote=False, approvals=2))
    one = approve(client, pending["id"], headers=team.reviewer, status="pending_approval")
    assert one["approvals_required"] == 2
    assert production_version(client, MODEL) is None
    done = approve(client, pending["id"], headers=team.reviewer2)
    assert done["policy_revision"] == 2
    assert done["report"]["policy_revision"] == 2
    assert production_version(client, MODEL) == v1
