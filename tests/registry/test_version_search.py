"""Version search by tag (``?tag=``) and by lineage field (``?lineage.<field>=``): exact
matches, combined with each other and with stage, metric order and paging; tag changes
followed; malformed filters and unknown ``lineage.*`` names are 400s."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.api import API, assert_problem, create_model, full_lineage, version_payload
from tests.support.flows import new_version, permissive_policy, promote, put_policy

MODEL = "fraud"
LONG = "é" * 1024  # 2 KiB of UTF-8: more than a B-tree entry of PostgreSQL takes


def numbers(client: TestClient, **params: Any) -> list[int]:
    response = client.get(f"{API}/models/{MODEL}/versions", params=params)
    assert response.status_code == 200, response.text
    return [v["version"] for v in response.json()["items"]]


@pytest.fixture
def versions(client: TestClient) -> dict[str, int]:
    create_model(client, MODEL, primary_metric="accuracy", primary_dataset="holdout")
    put_policy(client, MODEL, permissive_policy())
    made = {
        "a": new_version(client, MODEL, accuracy=0.80, artifact=False,
                         tags={"team": "risk", "mlflow:source": "runs:/1", "note": LONG},
                         lineage=full_lineage(data_version="tx@2026-11-01", seed=1)),
        "b": new_version(client, MODEL, accuracy=0.90, artifact=False,
                         tags={"team": "risk", "env": "a=b:c"},
                         lineage=full_lineage(data_version="tx@2026-11-08", seed=2,
                                              code_dirty=True)),
        "c": new_version(client, MODEL, accuracy=0.85, artifact=False,
                         tags={"team": "growth"},
                         lineage=full_lineage(data_version="tx@2026-11-01", seed=2,
                                              code_dirty=False)),
        "d": new_version(client, MODEL, accuracy=0.70, artifact=False, tags={},
                         lineage={"data_version": "tx@2026-11-01"}),
    }  # fmt: skip
    return made


def test_by_tag(client: TestClient, versions: dict[str, int]) -> None:
    a, b, c, d = versions["a"], versions["b"], versions["c"], versions["d"]
    assert numbers(client, tag="team:risk") == [b, a]
    assert numbers(client, tag="team=risk") == [b, a]
    assert numbers(client, tag="team:growth") == [c]
    assert numbers(client, tag="team") == [c, b, a]  # has the tag, any value
    assert numbers(client, tag="team:nobody") == []
    # A key with ':' is written with '='; a value may hold both.
    assert numbers(client, tag="mlflow:source=runs:/1") == [a]
    assert numbers(client, tag="env=a=b:c") == [b]
    assert numbers(client, tag="env:a=b:c") == []  # '=' wins: key "env:a", value "b:c"
    assert numbers(client, tag=f"note={LONG}") == [a]
    # Every tag filter must hold.
    assert numbers(client, tag=["team:risk", "env"]) == [b]
    assert numbers(client, tag=["team:risk", "team:growth"]) == []
    assert d not in numbers(client, tag="team")


def test_by_lineage(client: TestClient, versions: dict[str, int]) -> None:
    a, b, c, d = versions["a"], versions["b"], versions["c"], versions["d"]
    assert numbers(client, **{"lineage.data_version": "tx@2026-11-01"}) == [d, c, a]
    assert numbers(client, **{"lineage.data_version": "tx@2026-11-08"}) == [b]
    assert numbers(client, **{"lineage.seed": "2"}) == [c, b]
    assert numbers(client, **{"lineage.code_dirty": "true"}) == [b]
    assert numbers(client, **{"lineage.code_dirty": "false"}) == [c]
    assert numbers(client, **{"lineage.data_version": "tx@2026-11-01", "lineage.seed": "2"}) == [c]
    assert numbers(client, **{"lineage.code_commit": full_lineage()["code_commit"]}) == [c, b, a]
    assert numbers(client, **{"lineage.ci_run_url": "https://ci.example.com/runs/9876"}) == [
        c, b, a,
    ]  # fmt: skip
    # With a tag, a stage, and ordered by a metric.
    assert numbers(client, tag="team:risk", **{"lineage.seed": "2"}) == [b]
    assert numbers(client, order_by="-metric:accuracy",
                   **{"lineage.data_version": "tx@2026-11-01"}) == [c, a, d]  # fmt: skip
    promote(client, MODEL, c, "staging", status="applied")
    assert numbers(client, stage="staging", **{"lineage.data_version": "tx@2026-11-01"}) == [c]
    assert numbers(client, stage="candidate", **{"lineage.data_version": "tx@2026-11-01"}) == [
        d, a,
    ]  # fmt: skip


def test_pages_follow_the_filter(client: TestClient, versions: dict[str, int]) -> None:
    a, c, d = versions["a"], versions["c"], versions["d"]
    params = {"lineage.data_version": "tx@2026-11-01", "limit": 2}
    first = client.get(f"{API}/models/{MODEL}/versions", params=params).json()
    assert [v["version"] for v in first["items"]] == [d, c]
    rest = client.get(
        f"{API}/models/{MODEL}/versions", params={**params, "cursor": first["next_cursor"]}
    ).json()
    assert [v["version"] for v in rest["items"]] == [a]
    assert rest["next_cursor"] is None


def test_tag_changes_are_followed(client: TestClient, versions: dict[str, int]) -> None:
    a, c = versions["a"], versions["c"]
    set_tag = client.post(
        "/api/2.0/mlflow/model-versions/set-tag",
        json={"name": MODEL, "version": str(c), "key": "team", "value": "risk"},
    )
    assert set_tag.status_code == 200, set_tag.text
    assert c in numbers(client, tag="team:risk")
    assert numbers(client, tag="team:growth") == []
    removed = client.request(
        "DELETE",
        "/api/2.0/mlflow/model-versions/delete-tag",
        json={"name": MODEL, "version": str(a), "key": "team"},
    )
    assert removed.status_code == 200, removed.text
    assert a not in numbers(client, tag="team")
    # The lineage terms of a version whose tags changed stay.
    assert a in numbers(client, **{"lineage.seed": "1"})


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"tag": "bad key:x"}, "tag"),
        ({"tag": ":x"}, "tag"),
        ({"tag": "=x"}, "tag"),
        ({"tag": ["t"] * 21}, "tag"),
        ({"lineage.dataset": "x"}, "lineage.dataset"),
        ({"lineage.hyperparameters": "x"}, "lineage.hyperparameters"),
        ({"tags": "team:risk"}, "tags"),
    ],
)
def test_bad_filters_are_400(
    client: TestClient, versions: dict[str, int], params: dict[str, Any], named: str
) -> None:
    response = client.get(f"{API}/models/{MODEL}/versions", params=params)
    assert_problem(response, 400)
    assert named in response.json()["detail"]


def test_a_version_without_tags_or_lineage_is_found_by_no_filter(client: TestClient) -> None:
    create_model(client, MODEL)
    bare = client.post(f"{API}/models/{MODEL}/versions", json=version_payload(tags={}, lineage={}))
    assert bare.status_code == 201, bare.text
    assert numbers(client, tag="team") == []
    assert numbers(client, **{"lineage.seed": "42"}) == []
    assert numbers(client) == [bare.json()["version"]]
