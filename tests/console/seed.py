"""Realistic data for the console tests: several models, a dozen versions with sliced
metrics, a production history, a pending request whose gates pass and one whose gates
fail (a regression, a removed input column, changed lineage), all through the API."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.api import API, full_lineage
from tests.support.flows import (
    Team,
    gate,
    make_team,
    new_version,
    permissive_policy,
    promote,
    put_policy,
)

FRAUD = "fraud-detector"
CHURN = "churn-model"
RANKER = "search-ranker"

SIGNATURE = {
    "inputs": [
        {"name": "amount", "type": "float"},
        {"name": "country", "type": "categorical", "categories": ["DE", "FR", "US"]},
        {"name": "merchant_category", "type": "string"},
        {"name": "account_age_days", "type": "integer", "nullable": True},
    ],
    "outputs": [{"name": "fraud_probability", "type": "float"}],
}


def _metrics(accuracy: float, auc: float, log_loss: float, latency: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for dataset, shift in (("holdout-2026-11", 0.0), ("recent-traffic", -0.012)):
        rows += [
            {"name": "accuracy", "value": round(accuracy + shift, 4), "dataset": dataset,
             "sample_count": 48_210},
            {"name": "auc", "value": round(auc + shift, 4), "dataset": dataset},
            {"name": "log_loss", "value": round(log_loss - shift, 4), "dataset": dataset},
        ]  # fmt: skip
    rows.append({"name": "latency_p95_ms", "value": latency, "dataset": "holdout-2026-11"})
    for country, offset in (("DE", -0.011), ("FR", 0.004), ("US", 0.009)):
        rows.append(
            {"name": "accuracy", "value": round(accuracy + offset, 4),
             "dataset": "holdout-2026-11", "slice": f"country={country}", "sample_count": 9_000}
        )  # fmt: skip
    return rows


def _fraud_version(
    client: httpx.Client,
    headers: dict[str, str],
    n: int,
    *,
    accuracy: float,
    signature: dict[str, Any] | None = None,
    lineage: dict[str, Any] | None = None,
) -> int:
    payload = {
        "description": f"weekly retrain #{n}",
        "lineage": lineage
        or full_lineage(
            code_commit=f"{n:02d}" + "3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a",
            data_version=f"transactions@2026-11-{n:02d}",
            hyperparameters={"max_depth": 6, "eta": 0.3, "n_estimators": 400},
        ),
        "signature": signature or SIGNATURE,
        "metrics": _metrics(accuracy, accuracy + 0.04, 0.31 - (accuracy - 0.9), 41.0 + n),
        "tags": {"team": "risk", "framework": "xgboost"},
    }
    return new_version(client, FRAUD, payload=payload, headers=headers)


PRODUCTION_POLICY = {
    "staging": {"rules": [], "approvals_required": 0, "auto_promote": True},
    "production": {
        "rules": [
            gate("threshold", "accuracy at least 0.88", metric="accuracy",
                 dataset="holdout-2026-11", value=0.88),
            gate("no_regression", "accuracy no worse than production", metric="accuracy",
                 dataset="holdout-2026-11", delta=-0.002),
            gate("no_regression", "log loss no worse than production", metric="log_loss",
                 dataset="holdout-2026-11", delta=0.0),
            gate("fairness", "every country at least 0.87, gap under 0.03", metric="accuracy",
                 dataset="holdout-2026-11", floor=0.87, max_gap=0.03),
            gate("threshold", "p95 latency under 60 ms", metric="latency_p95_ms",
                 dataset="holdout-2026-11", value=60.0),
            gate("lineage_complete", "lineage complete"),
            gate("schema_compatible", "accepts what production accepts"),
            gate("artifact_intact", "artifact intact"),
        ],
        "approvals_required": 1,
        "auto_promote": False,
        "require_staging": False,
    },
}  # fmt: skip


@dataclass(frozen=True)
class Seeded:
    team: Team
    passing_request: int
    failing_request: int
    churn_request: int
    own_request: int


def seed(client: httpx.Client) -> Seeded:
    """Populate a fresh registry (``client`` holds an admin token)."""
    team = make_team(client)
    sub, sub2 = team.submitter, team.submitter2
    rng = random.Random(7)

    for name, owner in ((FRAUD, "risk-team"), (CHURN, "growth-team"), (RANKER, "search-team")):
        response = client.post(
            f"{API}/models",
            json={"name": name, "owner": owner, "description": f"{name} for the {owner}",
                  "primary_metric": "accuracy", "primary_dataset": "holdout-2026-11"},
        )  # fmt: skip
        assert response.status_code == 201, response.text
        put_policy(client, name, permissive_policy())

    # fraud-detector: nine versions, v3 then v5 served, v7 passes, v8 regresses.
    accuracies = [0.893, 0.899, 0.904, 0.901, 0.912, 0.908, 0.921, 0.897, 0.915]
    numbers = [_fraud_version(client, sub, i + 1, accuracy=a) for i, a in enumerate(accuracies)]
    promote(client, FRAUD, numbers[2], "production", headers=sub, status="applied",
            comment="first model in production")  # fmt: skip
    promote(client, FRAUD, numbers[4], "production", headers=sub, status="applied",
            comment="better recall on DE")  # fmt: skip
    put_policy(client, FRAUD, PRODUCTION_POLICY)
    passing = promote(client, FRAUD, numbers[6], "production", headers=sub,
                      comment="retrained on November data; +0.9 pt accuracy")  # fmt: skip
    assert passing["status"] == "pending_approval", passing
    # v10: a narrower signature (country dropped, amount retyped), a new data version.
    narrower = {
        "inputs": [
            {"name": "amount", "type": "integer"},
            {"name": "merchant_category", "type": "string"},
            {"name": "account_age_days", "type": "integer", "nullable": True},
            {"name": "device_type", "type": "string"},
        ],
        "outputs": [{"name": "fraud_probability", "type": "float"}],
    }
    failing_version = _fraud_version(
        client, sub2, 10, accuracy=0.897, signature=narrower,
        lineage=full_lineage(
            code_commit="a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0",
            data_version="transactions@2026-12-01-sampled",
            hyperparameters={"max_depth": 10, "eta": 0.1, "n_estimators": 1200},
            seed=7,
        ),
    )  # fmt: skip
    failing = promote(client, FRAUD, failing_version, "production", headers=sub2,
                      comment="deeper trees, sampled data")  # fmt: skip
    # A failing production request is refused at once (status rejected) unless the policy
    # lets reviewers override; either way the console must show it.
    # churn-model: two served versions, one pending request to reject.
    churn = [
        new_version(client, CHURN, accuracy=round(0.8 + rng.random() * 0.05, 4), headers=sub)
        for _ in range(4)
    ]
    promote(client, CHURN, churn[0], "production", headers=sub, status="applied")
    promote(client, CHURN, churn[1], "production", headers=sub, status="applied")
    put_policy(client, CHURN, permissive_policy(approvals=1, auto_promote=False))
    churn_request = promote(client, CHURN, churn[2], "production", headers=sub)
    own_request = promote(client, CHURN, churn[3], "production", headers=team.reviewer2)

    # search-ranker: v1 then v2 served (the rollback test puts v1 back).
    ranker = [new_version(client, RANKER, accuracy=0.7 + i / 100, headers=sub) for i in range(3)]
    promote(client, RANKER, ranker[0], "production", headers=sub, status="applied")
    promote(client, RANKER, ranker[1], "production", headers=sub, status="applied",
            comment="new embedding model")  # fmt: skip

    return Seeded(
        team=team,
        passing_request=passing["id"],
        failing_request=failing["id"],
        churn_request=churn_request["id"],
        own_request=own_request["id"],
    )
