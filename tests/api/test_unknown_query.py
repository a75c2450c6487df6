"""Unknown query parameters are a 400 naming them, on every route; an unknown metric to
order by is a 400 too (both used to answer an unfiltered or empty 200)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.support.api import API, assert_problem, create_model
from tests.support.flows import new_version


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/models", {"q": "fraud"}),
        # tag= and lineage.<field>= are filters now; near misses are still unknown.
        (
            "/models/fraud/versions",
            {"filter": "stage=production", "tags": "x", "lineage.dataset": "x"},
        ),
        ("/models/fraud/history", {"when": "2026-01-01T00:00:00Z"}),
        ("/models/fraud/versions/1", {"expand": "all"}),
        ("/audit", {"actr": "someone"}),
    ],
)
def test_unknown_query_parameters_are_named_in_a_400(
    client: TestClient, path: str, params: dict[str, str]
) -> None:
    create_model(client, "fraud")
    new_version(client, "fraud")

    problem = assert_problem(client.get(f"{API}{path}", params=params), 400, "bad-request")

    assert [e["loc"] for e in problem["errors"]] == [["query", n] for n in sorted(params)]
    for name in params:
        assert name in problem["detail"]


def test_declared_parameters_still_work(client: TestClient) -> None:
    create_model(client, "fraud", primary_dataset="holdout")
    new_version(client, "fraud")
    response = client.get(
        f"{API}/models/fraud/versions", params={"limit": 5, "order_by": "-metric:accuracy"}
    )
    assert response.status_code == 200, response.text
    assert [v["version"] for v in response.json()["items"]] == [1]


def test_ordering_by_an_unknown_metric_is_a_409(client: TestClient) -> None:
    # which metrics exist is the registry's state, not the request's shape (decision 0025)
    create_model(client, "fraud", primary_dataset="holdout")
    new_version(client, "fraud")

    response = client.get(f"{API}/models/fraud/versions", params={"order_by": "-metric:nope"})

    problem = assert_problem(response, 409, "state-mismatch")
    assert "'nope'" in problem["detail"]
    assert problem["errors"][0]["loc"] == ["query", "order_by"]


def test_every_operation_answers_an_unknown_parameter_with_the_400_it_declares(
    client: TestClient,
) -> None:
    """Not only the routes above: every operation of the document, those added later
    included, refuses an unknown parameter and says so in its declared responses."""
    document = client.get(f"{API}/openapi.json").json()
    create_model(client, "fraud")
    new_version(client, "fraud")
    checked = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            declared = operation["responses"].get("400", {})
            assert "application/problem+json" in declared.get("content", {}), (method, path)
            url = re.sub(r"\{(\w+)\}", lambda m: "1" if m[1] != "model" else "fraud", path)
            response = client.request(method.upper(), url, params={"zz_unknown": "1"})
            problem = assert_problem(response, 400, "bad-request")
            assert [e["loc"] for e in problem["errors"]] == [["query", "zz_unknown"]], path
            checked.append(f"{method} {path}")
    assert len(checked) >= 60
