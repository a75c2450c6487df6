"""Idempotency-Key: a retried create returns the first answer and creates nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.support.api import (
    API,
    assert_problem,
    audit_events,
    auth,
    create_model,
    error_locs,
    version_payload,
)


def post_version(
    client: TestClient, model: str, key: str, payload: dict[str, object], token: str | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": key}
    if token:
        headers.update(auth(token))
    return client.post(f"{API}/models/{model}/versions", json=payload, headers=headers)


def test_retry_with_same_key_replays_the_first_answer(client: TestClient) -> None:
    create_model(client, "ci-model")
    payload = version_payload()
    first = post_version(client, "ci-model", "build-42", payload)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers

    for _ in range(3):
        again = post_version(client, "ci-model", "build-42", payload)
        assert again.status_code == 201
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        assert again.json()["version"] == 1

    versions = client.get(f"{API}/models/ci-model/versions").json()["items"]
    assert [v["version"] for v in versions] == [1]
    assert client.get(f"{API}/models/ci-model").json()["latest_version"] == 1
    events = audit_events(client, model="ci-model", action="version.created")
    assert len(events) == 1
    assert events[0]["request_id"] == first.headers["x-request-id"]

    # Another key is another version.
    other = post_version(client, "ci-model", "build-43", payload)
    assert other.json()["version"] == 2


def test_same_key_with_different_body_is_422(client: TestClient) -> None:
    create_model(client, "m")
    assert post_version(client, "m", "k1", version_payload(0.9)).status_code == 201
    problem = assert_problem(
        post_version(client, "m", "k1", version_payload(0.8)),
        409,
        "idempotency-key-reused",
    )
    assert "Idempotency-Key" in problem["detail"]
    # The same key on another path (another model) is a different request too.
    create_model(client, "n")
    assert_problem(
        post_version(client, "n", "k1", version_payload(0.9)),
        409,
        "idempotency-key-reused",
    )
    assert client.get(f"{API}/models/m").json()["latest_version"] == 1
    assert client.get(f"{API}/models/n").json()["latest_version"] == 0


def test_key_order_in_body_does_not_matter(client: TestClient) -> None:
    create_model(client, "m")
    body_a = '{"description": "x", "tags": {"a": "1", "b": "2"}}'
    body_b = '{"tags": {"b": "2", "a": "1"}, "description": "x"}'
    headers = {"Idempotency-Key": "same", "Content-Type": "application/json"}
    first = client.post(f"{API}/models/m/versions", content=body_a, headers=headers)
    second = client.post(f"{API}/models/m/versions", content=body_b, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["version"] == 1


def test_keys_are_scoped_per_token(client: TestClient, make_token: Callable[..., str]) -> None:
    create_model(client, "shared")
    ci_a = make_token("submitter", name="ci-a")
    ci_b = make_token("submitter", name="ci-b")
    payload = version_payload()
    a = post_version(client, "shared", "nightly", payload, ci_a)
    b = post_version(client, "shared", "nightly", payload, ci_b)
    a_again = post_version(client, "shared", "nightly", payload, ci_a)
    assert a.status_code == b.status_code == 201
    assert a.json()["version"] == 1
    assert b.json()["version"] == 2
    assert "idempotent-replayed" not in b.headers
    assert a_again.json()["version"] == 1
    assert a_again.headers["idempotent-replayed"] == "true"


def test_failed_first_attempt_does_not_burn_the_key(client: TestClient) -> None:
    payload = version_payload()
    assert_problem(
        post_version(client, "late", "retry-me", payload),
        404,
        "model-not-found",
    )
    create_model(client, "late")
    response = post_version(client, "late", "retry-me", payload)
    assert response.status_code == 201
    assert "idempotent-replayed" not in response.headers
    assert response.json()["version"] == 1


def test_create_model_is_idempotent(client: TestClient) -> None:
    headers = {"Idempotency-Key": "register-fraud"}
    body = {"name": "fraud", "owner": "risk"}
    first = client.post(f"{API}/models", json=body, headers=headers)
    assert first.status_code == 201, first.text
    second = client.post(f"{API}/models", json=body, headers=headers)
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    assert len(audit_events(client, model="fraud", action="model.created")) == 1
    # Without the key, the same request is a plain duplicate.
    assert_problem(client.post(f"{API}/models", json=body), 409, "model-exists")
    assert_problem(
        client.post(f"{API}/models", json={**body, "owner": "x"}, headers=headers),
        409,
        "idempotency-key-reused",
    )


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\tkey"])
def test_invalid_keys_are_422(client: TestClient, key: str) -> None:
    create_model(client, "m")
    problem = assert_problem(
        client.post(
            f"{API}/models/m/versions", json=version_payload(), headers={"Idempotency-Key": key}
        ),
        422,
    )
    assert ["header", "Idempotency-Key"] in error_locs(problem)
    assert client.get(f"{API}/models/m").json()["latest_version"] == 0


@pytest.mark.postgres_only
def test_concurrent_retries_with_one_key_create_one_version(client: TestClient) -> None:
    create_model(client, "racy")
    payload = version_payload()
    start = threading.Barrier(20)

    def send(_: int) -> tuple[int, int, bool]:
        start.wait()
        response = client.post(
            f"{API}/models/racy/versions",
            json=payload,
            headers={"Idempotency-Key": "one-key"},
        )
        assert response.status_code == 201, response.text
        replayed = response.headers.get("idempotent-replayed") == "true"
        return response.status_code, response.json()["version"], replayed

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(send, range(20)))

    assert {version for _, version, _ in results} == {1}
    assert sum(1 for *_, replayed in results if not replayed) == 1
    versions = client.get(f"{API}/models/racy/versions").json()["items"]
    assert [v["version"] for v in versions] == [1]
    assert len(audit_events(client, model="racy", action="version.created")) == 1
    assert client.get(f"{API}/audit/verify").json()["ok"] is True
