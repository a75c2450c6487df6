"""What a gate reads changes only with the rights to change the policy (issue 14, item 1).

The side doors: a submitter's ``PATCH /models/{model}`` of ``primary_metric`` or
``primary_dataset`` (what the default production gate compares), and metrics or evidence
added to the version in production or an archived one (the baselines every comparing rule
reads). Everything else a gate reads is fixed at submission (lineage, signature) or
immutable (artifacts, recorded metrics and evidence). Also item 9: lineage presence.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.support.api import API, assert_problem, create_model, full_lineage, version_payload
from tests.support.flows import (
    Team,
    evaluate,
    gate,
    new_version,
    permissive_policy,
    promote,
    put_policy,
    rule,
    to_production,
)

MODEL = "fraud"


def scores(accuracy: float, f1: float) -> dict[str, Any]:
    return version_payload(
        metrics=[
            {"name": "accuracy", "value": accuracy, "dataset": "holdout"},
            {"name": "f1", "value": f1, "dataset": "holdout"},
            {"name": "f1", "value": f1, "dataset": "other"},
        ]
    )


def production_and_candidate(client: TestClient, team: Team) -> int:
    """Under the default policy, production scores accuracy 0.9 and f1 0.5 on holdout; the
    candidate 0.8 and 0.6. Returns the candidate."""
    create_model(client, MODEL, primary_metric="accuracy", primary_dataset="holdout")
    first = new_version(client, MODEL, payload=scores(0.9, 0.5), headers=team.submitter)
    to_production(client, team, MODEL, first)
    return new_version(client, MODEL, payload=scores(0.8, 0.6), headers=team.submitter)


def no_regression_row(report: dict[str, Any]) -> dict[str, Any]:
    rows = [r for r in report["rules"] if r["kind"] == "no_regression"]
    assert len(rows) == 1
    return rows[0]


def test_a_submitter_cannot_switch_the_primary_metric_to_pass_the_gate(
    client: TestClient, team: Team
) -> None:
    candidate = production_and_candidate(client, team)
    before = no_regression_row(evaluate(client, MODEL, candidate))
    assert before["passed"] is False
    # The report names what it compared, and where that came from.
    assert before["observed"]["metric"] == "accuracy"
    assert before["observed"]["dataset"] == "holdout"
    assert before["observed"]["metric_from"] == "model.primary_metric"
    assert before["observed"]["dataset_from"] == "model.primary_dataset"

    for change in ({"primary_metric": "f1"}, {"primary_dataset": "other"}):
        refused = client.patch(f"{API}/models/{MODEL}", json=change, headers=team.submitter)
        problem = assert_problem(refused, 403, "forbidden")
        assert "admin" in problem["detail"]
    model = client.get(f"{API}/models/{MODEL}").json()
    assert (model["primary_metric"], model["primary_dataset"]) == ("accuracy", "holdout")
    assert no_regression_row(evaluate(client, MODEL, candidate))["passed"] is False

    # Other fields, and re-sending the same primary metric, stay a submitter's to edit.
    same = {"primary_metric": "accuracy", "description": "retrained weekly"}
    assert client.patch(f"{API}/models/{MODEL}", json=same, headers=team.submitter).is_success

    # An admin may change it, as they may change the policy; the report says what it used.
    assert client.patch(f"{API}/models/{MODEL}", json={"primary_metric": "f1"}).is_success
    after = no_regression_row(evaluate(client, MODEL, candidate))
    assert after["passed"] is True
    assert after["observed"]["metric"] == "f1"


def test_baseline_metrics_and_evidence_need_policy_rights(client: TestClient, team: Team) -> None:
    create_model(client, MODEL, primary_metric="accuracy", primary_dataset="holdout")
    put_policy(
        client,
        MODEL,
        permissive_policy(
            rules=[gate("no_regression", "recall", metric="recall", dataset="holdout")]
        ),
    )
    first = new_version(client, MODEL, payload=scores(0.9, 0.5))
    put_policy(client, MODEL, permissive_policy())
    promote(client, MODEL, first, "production", status="applied")
    put_policy(
        client,
        MODEL,
        permissive_policy(
            rules=[gate("no_regression", "recall", metric="recall", dataset="holdout")]
        ),
    )
    candidate = new_version(client, MODEL, payload=scores(0.8, 0.6), headers=team.submitter)
    low = {"metrics": [{"name": "recall", "value": 0.1, "dataset": "holdout"}]}
    high = {"metrics": [{"name": "recall", "value": 0.7, "dataset": "holdout"}]}
    evidence = {
        "evidence": [{"dataset": "holdout", "kind": "correctness", "values": [False, True]}],
    }
    assert client.post(
        f"{API}/models/{MODEL}/versions/{candidate}/metrics", json=high, headers=team.submitter
    ).is_success
    # Production has no recall: the comparison is impossible, so the gate fails ...
    assert rule(evaluate(client, MODEL, candidate), "recall")["passed"] is False
    # ... and a submitter may not supply production's baseline to make it pass.
    for body in (low, evidence):
        refused = client.post(
            f"{API}/models/{MODEL}/versions/{first}/metrics", json=body, headers=team.submitter
        )
        assert_problem(refused, 403, "forbidden")
    assert rule(evaluate(client, MODEL, candidate), "recall")["passed"] is False
    # An admin may.
    assert client.post(f"{API}/models/{MODEL}/versions/{first}/metrics", json=low).is_success
    assert rule(evaluate(client, MODEL, candidate), "recall")["passed"] is True


def test_empty_hyperparameters_are_present_lineage(client: TestClient) -> None:
    create_model(client, MODEL)
    put_policy(client, MODEL, permissive_policy(rules=[gate("lineage_complete", "lineage")]))
    stated = new_version(
        client, MODEL, payload=version_payload(lineage=full_lineage(hyperparameters={}))
    )
    assert rule(evaluate(client, MODEL, stated), "lineage")["passed"] is True
    lineage = full_lineage()
    del lineage["hyperparameters"]
    unstated = new_version(client, MODEL, payload=version_payload(lineage=lineage))
    row = rule(evaluate(client, MODEL, unstated), "lineage")
    assert row["passed"] is False
    assert row["observed"]["missing"] == ["hyperparameters"]
