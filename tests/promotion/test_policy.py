"""Gate policies: the documented default, a policy with every rule kind, revisions and their
audit trail, and the 422s that say why a policy is refused."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.api import API, assert_problem, audit_events, auth, create_model
from tests.support.flows import put_policy

EVERY_RULE_KIND: dict[str, Any] = {
    "staging": {
        "rules": [{"kind": "artifact_intact"}, {"kind": "lineage_complete"}],
        "approvals_required": 0,
        "auto_promote": True,
    },
    "production": {
        "rules": [
            {"kind": "threshold", "metric": "accuracy", "dataset": "holdout", "value": 0.8},
            {"kind": "threshold", "metric": "rmse", "dataset": "holdout", "value": 0.5},
            {"kind": "no_regression", "delta": -0.01, "when_no_production": "pass"},
            {
                "kind": "significance",
                "test": "mcnemar",
                "dataset": "holdout",
                "alpha": 0.05,
                "min_samples": 100,
            },
            {
                "kind": "fairness",
                "metric": "accuracy",
                "dataset": "holdout",
                "floor": 0.7,
                "max_gap": 0.1,
                "max_slice_regression": 0.05,
            },
            {"kind": "lineage_complete", "fields": ["code_commit", "data_version", "seed"]},
            {"kind": "schema_compatible"},
            {"kind": "artifact_intact", "deep": True},
            {
                "kind": "threshold",
                "name": "team score",
                "metric": "team_score",
                "dataset": "holdout",
                "value": 3,
            },
        ],
        "approvals_required": 2,
        "auto_promote": False,
        "require_staging": True,
    },
    "metric_directions": {"team_score": "higher"},
}


def canonical_digest(document: dict[str, Any]) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def test_default_policy_is_the_documented_one(client: TestClient) -> None:
    create_model(client, "fraud", primary_metric="accuracy", primary_dataset="holdout")
    response = client.get(f"{API}/models/fraud/policy")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["revision"] == 0
    assert body["is_default"] is True
    assert body["created_by"] is None
    policy = body["policy"]
    lineage_fields = [
        "code_commit",
        "data_version",
        "feature_pipeline_version",
        "environment",
        "hyperparameters",
        "seed",
    ]
    # staging: an intact artifact and complete lineage, applied at once.
    assert [r["kind"] for r in policy["staging"]["rules"]] == [
        "artifact_intact",
        "lineage_complete",
    ]
    assert policy["staging"]["rules"][1]["fields"] == lineage_fields
    assert policy["staging"]["approvals_required"] == 0
    assert policy["staging"]["auto_promote"] is True
    # production: the same, plus no regression on the primary metric, from staging, one approval.
    production = policy["production"]
    assert [r["kind"] for r in production["rules"]] == [
        "artifact_intact",
        "lineage_complete",
        "no_regression",
    ]
    no_regression = production["rules"][2]
    assert no_regression["metric"] is None  # the model's primary metric
    assert no_regression["delta"] == 0.0
    assert no_regression["when_no_production"] == "pass"
    assert production["approvals_required"] == 1
    assert production["auto_promote"] is False
    assert production["require_staging"] is True
    assert body["digest"] == canonical_digest(policy)


def test_put_policy_with_every_rule_kind_is_versioned_and_audited(client: TestClient) -> None:
    create_model(client, "fraud", primary_metric="accuracy", primary_dataset="holdout")
    default_digest = client.get(f"{API}/models/fraud/policy").json()["digest"]

    first = put_policy(client, "fraud", EVERY_RULE_KIND)
    assert first["revision"] == 1
    assert first["is_default"] is False
    assert first["created_by"] == "bootstrap-admin"
    kinds = {r["kind"] for r in first["policy"]["production"]["rules"]}
    assert kinds == {
        "threshold",
        "no_regression",
        "significance",
        "fairness",
        "lineage_complete",
        "schema_compatible",
        "artifact_intact",
    }
    assert first["policy"]["production"]["approvals_required"] == 2
    assert first["digest"] == canonical_digest(first["policy"])
    assert client.get(f"{API}/models/fraud/policy").json() == first

    second_doc = json.loads(json.dumps(EVERY_RULE_KIND))
    second_doc["production"]["approvals_required"] = 1
    second = put_policy(client, "fraud", second_doc)
    assert second["revision"] == 2
    assert second["digest"] != first["digest"]
    assert client.get(f"{API}/models/fraud/policy").json()["revision"] == 2

    events = audit_events(client, model="fraud", action="policy.updated")
    assert [e["details"]["revision"] for e in events] == [1, 2]
    assert [e["details"]["digest"] for e in events] == [first["digest"], second["digest"]]
    assert events[0]["details"]["previous_digest"] == default_digest
    assert events[1]["details"]["previous_digest"] == first["digest"]
    assert events[1]["details"]["policy"]["production"]["approvals_required"] == 1
    assert events[1]["actor"] == "bootstrap-admin"


def production_rules(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"production": {"rules": list(rules)}}


SIG = {"kind": "significance", "test": "mcnemar", "dataset": "holdout"}
FAIR = {"kind": "fairness", "metric": "accuracy", "dataset": "holdout"}


@pytest.mark.parametrize(
    ("document", "loc_tail", "says"),
    [
        pytest.param(
            production_rules(
                {"kind": "threshold", "metric": "foo_score", "dataset": "holdout", "value": 0.5}
            ),
            ["metric"],
            "direction of metric 'foo_score' is unknown",
            id="unknown-direction",
        ),
        pytest.param(
            production_rules({**FAIR, "metric": "foo_score", "floor": 0.5}),
            ["metric"],
            "direction of metric 'foo_score' is unknown",
            id="unknown-direction-fairness",
        ),
        pytest.param(
            production_rules({**SIG, "alpha": 0}), ["alpha"], "greater than 0", id="alpha-0"
        ),
        pytest.param(
            production_rules({**SIG, "alpha": 1.5}), ["alpha"], "less than 1", id="alpha-1.5"
        ),
        pytest.param(
            production_rules({**SIG, "min_samples": -1}),
            ["min_samples"],
            "greater than or equal to 0",
            id="negative-min-samples",
        ),
        pytest.param(
            production_rules({**FAIR, "max_gap": -0.1}),
            ["max_gap"],
            "greater than or equal to 0",
            id="negative-max-gap",
        ),
        pytest.param(
            production_rules(dict(FAIR)),
            [],
            "needs floor, max_gap or max_slice_regression",
            id="fairness-without-bounds",
        ),
        pytest.param(
            production_rules({"kind": "coin_flip"}), [], "coin_flip", id="unknown-rule-kind"
        ),
        pytest.param(
            production_rules({"kind": "no_regression"}),
            ["metric"],
            "no primary_metric",
            id="no-regression-without-metric",
        ),
        pytest.param(
            {"production": {"rules": [], "approvals_required": -1}},
            ["approvals_required"],
            "greater than or equal to 0",
            id="negative-approvals",
        ),
    ],
)
def test_invalid_policies_are_422_saying_why(
    client: TestClient, document: dict[str, Any], loc_tail: list[Any], says: str
) -> None:
    create_model(client, "plain")  # no primary metric
    response = client.put(f"{API}/models/plain/policy", json=document)
    problem = assert_problem(response, 422)
    messages = " | ".join([problem["detail"]] + [e["msg"] for e in problem["errors"]])
    assert says in messages, problem
    locs = [e["loc"] for e in problem["errors"]]
    assert any(loc[: len(["body"])] == ["body"] for loc in locs), locs
    if loc_tail:
        assert any(loc[-len(loc_tail) :] == loc_tail for loc in locs), locs
    # Nothing was stored and nothing audited.
    assert client.get(f"{API}/models/plain/policy").json()["revision"] == 0
    assert audit_events(client, model="plain", action="policy.updated") == []


def test_metric_directions_make_an_unknown_metric_acceptable(client: TestClient) -> None:
    create_model(client, "plain")
    doc = production_rules(
        {"kind": "threshold", "metric": "foo_score", "dataset": "holdout", "value": 0.5},
        {
            "kind": "no_regression",
            "metric": "bar_score",
            "dataset": "holdout",
            "direction": "lower",
        },
    )
    doc["metric_directions"] = {"foo_score": "higher"}
    assert put_policy(client, "plain", doc)["revision"] == 1


def test_only_admin_may_replace_a_policy(
    client: TestClient, make_token: Callable[..., str]
) -> None:
    create_model(client, "fraud", primary_metric="accuracy", primary_dataset="holdout")
    for role in ("reviewer", "operator", "submitter"):
        response = client.put(
            f"{API}/models/fraud/policy", json=EVERY_RULE_KIND, headers=auth(make_token(role))
        )
        assert_problem(response, 403, "forbidden")
    # Anyone who may read the model may read its policy.
    reader = client.get(f"{API}/models/fraud/policy", headers=auth(make_token("reader")))
    assert reader.status_code == 200, reader.text
    assert client.get(f"{API}/models/fraud/policy").json()["revision"] == 0
