"""Registered models: create, list with cursor pagination, read, edit."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.support.api import (
    ADMIN_TOKEN,
    API,
    assert_problem,
    audit_events,
    auth,
    create_model,
    error_locs,
)


def test_create_and_read(client: TestClient) -> None:
    response = client.post(
        f"{API}/models",
        json={
            "name": "fraud-detector",
            "description": "Card fraud scores",
            "owner": "risk-team",
            "tags": {"team": "risk", "tier": "1"},
            "primary_metric": "accuracy",
            "primary_dataset": "holdout",
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["name"] == "fraud-detector"
    assert created["latest_version"] == 0
    assert created["production_version"] is None

    read = client.get(f"{API}/models/fraud-detector")
    assert read.status_code == 200
    body = read.json()
    assert body == created
    assert body["owner"] == "risk-team"
    assert body["tags"] == {"team": "risk", "tier": "1"}
    assert body["primary_metric"] == "accuracy"
    assert body["primary_dataset"] == "holdout"
    assert body["created_by"] == "bootstrap-admin"


def test_unknown_model_is_404_problem(client: TestClient) -> None:
    assert_problem(client.get(f"{API}/models/nope"), 404, "model-not-found")
    assert_problem(client.patch(f"{API}/models/nope", json={"owner": "x"}), 404, "model-not-found")


def test_duplicate_name_is_409(client: TestClient) -> None:
    create_model(client, "dup")
    problem = assert_problem(
        client.post(f"{API}/models", json={"name": "dup"}), 409, "model-exists"
    )
    assert "dup" in problem["detail"]
    # Names are case-sensitive but otherwise exact: the model is still there, once.
    listed = client.get(f"{API}/models").json()["items"]
    assert [m["name"] for m in listed] == ["dup"]


@pytest.mark.parametrize(
    "name",
    [
        "has space",
        "ünïcode",
        "mödel",
        "../x",
        "a/b",
        "x" * 200,
        "-leading-dash",
        ".hidden",
        "",
        "tab\there",
        "nul\x00byte",
        "line\nbreak",
    ],
)
def test_invalid_names_are_422_naming_the_field(client: TestClient, name: str) -> None:
    problem = assert_problem(
        client.post(f"{API}/models", json={"name": name}), 422, "validation-failed"
    )
    assert ["body", "name"] in error_locs(problem)
    assert client.get(f"{API}/models").json()["items"] == []


@pytest.mark.parametrize("name", ["a", "A1", "fraud_detector.v2", "x" * 128, "0-start"])
def test_valid_names(client: TestClient, name: str) -> None:
    create_model(client, name)
    assert client.get(f"{API}/models/{name}").status_code == 200


def test_long_owner_is_422_on_every_backend(client: TestClient) -> None:
    problem = assert_problem(
        client.post(f"{API}/models", json={"name": "m", "owner": "o" * 300}), 422
    )
    assert ["body", "owner"] in error_locs(problem)
    assert create_model(client, "m", owner="o" * 256)["owner"] == "o" * 256


def test_name_must_be_a_string(client: TestClient) -> None:
    problem = assert_problem(client.post(f"{API}/models", json={"name": 12}), 422)
    assert ["body", "name"] in error_locs(problem)
    problem = assert_problem(client.post(f"{API}/models", json={}), 422)
    assert ["body", "name"] in error_locs(problem)


def test_unknown_fields_are_422(client: TestClient) -> None:
    problem = assert_problem(
        client.post(f"{API}/models", json={"name": "m", "colour": "blue"}), 422
    )
    assert ["body", "colour"] in error_locs(problem)
    create_model(client, "m")
    problem = assert_problem(client.patch(f"{API}/models/m", json={"name": "renamed"}), 422)
    assert ["body", "name"] in error_locs(problem)
    assert client.get(f"{API}/models/renamed").status_code == 404


def test_list_paginates_by_name_across_pages(client: TestClient) -> None:
    names = [f"model-{i:02d}" for i in range(23)]
    for name in reversed(names):
        create_model(client, name)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        response = client.get(f"{API}/models", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 5
        seen += [m["name"] for m in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(names)
    assert pages == 5


def test_list_exact_page_has_no_next_cursor(client: TestClient) -> None:
    for i in range(4):
        create_model(client, f"m{i}")
    page = client.get(f"{API}/models", params={"limit": 4}).json()
    assert len(page["items"]) == 4
    assert page["next_cursor"] is None


def test_list_filters_by_name_prefix_and_owner(client: TestClient) -> None:
    create_model(client, "fraud-a", owner="risk")
    create_model(client, "fraud-b", owner="growth")
    create_model(client, "fraud_c", owner="risk")
    create_model(client, "churn", owner="risk")

    def names(**params: object) -> list[str]:
        response = client.get(f"{API}/models", params=params)
        assert response.status_code == 200, response.text
        return [m["name"] for m in response.json()["items"]]

    assert names(name_prefix="fraud") == ["fraud-a", "fraud-b", "fraud_c"]
    # '_' and '%' are literal characters, not LIKE wildcards.
    assert names(name_prefix="fraud_") == ["fraud_c"]
    assert names(name_prefix="%") == []
    assert names(owner="risk") == ["churn", "fraud-a", "fraud_c"]
    assert names(owner="risk", name_prefix="fraud") == ["fraud-a", "fraud_c"]
    assert names(owner="nobody") == []
    # Pagination keeps the filters.
    first = client.get(f"{API}/models", params={"owner": "risk", "limit": 2}).json()
    assert [m["name"] for m in first["items"]] == ["churn", "fraud-a"]
    second = client.get(
        f"{API}/models", params={"owner": "risk", "limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [m["name"] for m in second["items"]] == ["fraud_c"]
    assert second["next_cursor"] is None


@pytest.mark.parametrize("cursor", ["garbage!!", "e30", "WzEsMiwzXQ", "bnVsbA"])
def test_bad_cursor_is_400(client: TestClient, cursor: str) -> None:
    assert_problem(client.get(f"{API}/models", params={"cursor": cursor}), 400, "bad-request")


@pytest.mark.parametrize("limit", [0, -1, 100_000, "ten"])
def test_bad_limit_is_422(client: TestClient, limit: object) -> None:
    problem = assert_problem(client.get(f"{API}/models", params={"limit": limit}), 422)
    assert ["query", "limit"] in error_locs(problem)


def test_patch_changes_only_sent_fields_and_is_audited(client: TestClient) -> None:
    create_model(
        client,
        "editable",
        description="first",
        owner="alice",
        tags={"a": "1"},
        primary_metric="accuracy",
        primary_dataset="holdout",
    )
    before = client.get(f"{API}/models/editable").json()

    response = client.patch(
        f"{API}/models/editable",
        headers={"X-Request-ID": "patch-req-1"},
        json={"owner": "bob"},
    )
    assert response.status_code == 200, response.text
    after = response.json()
    assert after["owner"] == "bob"
    for field in ("description", "tags", "primary_metric", "primary_dataset", "created_at"):
        assert after[field] == before[field], field
    assert after["updated_at"] >= before["updated_at"]
    assert client.get(f"{API}/models/editable").json() == after

    events = audit_events(client, model="editable", action="model.updated")
    assert len(events) == 1
    event = events[0]
    assert event["details"]["changes"] == {"owner": "bob"}
    assert event["details"]["before"] == {"owner": "alice"}
    assert event["actor"] == "bootstrap-admin"
    assert event["actor_role"] == "admin"
    assert event["request_id"] == "patch-req-1" == response.headers["x-request-id"]

    # Several fields at once; tags are replaced as a whole.
    response = client.patch(
        f"{API}/models/editable", json={"description": "second", "tags": {"b": "2"}}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["description"] == "second"
    assert body["tags"] == {"b": "2"}
    assert body["owner"] == "bob"

    # A PATCH that changes nothing writes no event.
    assert client.patch(f"{API}/models/editable", json={"owner": "bob"}).status_code == 200
    assert client.patch(f"{API}/models/editable", json={}).status_code == 200
    assert len(audit_events(client, model="editable", action="model.updated")) == 2


def test_patch_null_clears_optional_fields(client: TestClient) -> None:
    create_model(client, "clearable", description="d", owner="o", tags={"k": "v"})
    response = client.patch(
        f"{API}/models/clearable", json={"owner": None, "description": None, "tags": None}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["owner"] is None
    assert body["description"] == ""
    assert body["tags"] == {}


def test_patch_validates_fields(client: TestClient) -> None:
    create_model(client, "strict")
    problem = assert_problem(client.patch(f"{API}/models/strict", json={"owner": "o" * 257}), 422)
    assert ["body", "owner"] in error_locs(problem)
    assert client.patch(f"{API}/models/strict", json={"owner": "o" * 256}).status_code == 200
    problem = assert_problem(client.patch(f"{API}/models/strict", json={"owner": 5}), 422)
    assert ["body", "owner"] in error_locs(problem)
    problem = assert_problem(
        client.patch(f"{API}/models/strict", json={"tags": {"bad key": "v"}}), 422
    )
    assert any(loc[:2] == ["body", "tags"] for loc in error_locs(problem))
    problem = assert_problem(client.patch(f"{API}/models/strict", json=["owner"]), 422)


def test_create_is_audited(client: TestClient) -> None:
    response = client.post(f"{API}/models", json={"name": "audited", "owner": "o"})
    assert response.status_code == 201
    events = audit_events(client, model="audited")
    assert [e["action"] for e in events] == ["model.created"]
    assert events[0]["request_id"] == response.headers["x-request-id"]
    assert events[0]["details"]["owner"] == "o"


def test_submitter_can_create_and_edit_reader_cannot(
    client: TestClient, make_token: object
) -> None:
    submitter = make_token("submitter")  # type: ignore[operator]
    reader = make_token("reader")  # type: ignore[operator]
    response = client.post(f"{API}/models", json={"name": "by-ci"}, headers=auth(submitter))
    assert response.status_code == 201
    assert response.json()["created_by"].startswith("submitter-")
    assert (
        client.patch(
            f"{API}/models/by-ci", json={"owner": "ci"}, headers=auth(submitter)
        ).status_code
        == 200
    )
    assert_problem(
        client.patch(f"{API}/models/by-ci", json={"owner": "x"}, headers=auth(reader)),
        403,
        "forbidden",
    )
    assert client.get(f"{API}/models/by-ci", headers=auth(reader)).status_code == 200
    assert client.get(f"{API}/models", headers=auth(ADMIN_TOKEN)).status_code == 200
