"""Helpers for talking to the API in tests."""

from __future__ import annotations

import hashlib
from typing import Any

ADMIN_TOKEN = "mgt_test-admin-token-0123456789abcdef"
# The key webhook secrets are sealed under in tests (32 bytes, base64url).
SECRET_KEY = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgoM="
API = "/api/v1"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def full_lineage(**overrides: Any) -> dict[str, Any]:
    lineage: dict[str, Any] = {
        "code_commit": "3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39",
        "code_repository": "https://git.example.com/ml/fraud",
        "data_version": "transactions@2026-11-01",
        "feature_pipeline_version": "features-v12",
        "environment": "sha256:" + "ab" * 32,
        "hyperparameters": {"max_depth": 6, "eta": 0.3, "objective": "binary:logistic"},
        "seed": 42,
        "training_run_id": "run-123",
        "ci_run_id": "9876",
        "ci_run_url": "https://ci.example.com/runs/9876",
    }
    lineage.update(overrides)
    return lineage


def metric(name: str, value: float, dataset: str = "holdout", **extra: Any) -> dict[str, Any]:
    """One metric as the API takes it (``extra``: slice, sample_count, ...)."""
    return {"name": name, "value": value, "dataset": dataset, **extra}


def version_payload(accuracy: float = 0.91, **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "description": "nightly retrain",
        "lineage": full_lineage(),
        "signature": {
            "inputs": [
                {"name": "amount", "type": "float"},
                {"name": "country", "type": "categorical", "categories": ["DE", "FR", "US"]},
                {"name": "age", "type": "integer", "nullable": True},
            ],
            "outputs": [{"name": "score", "type": "float"}],
        },
        "metrics": [
            {"name": "accuracy", "value": accuracy, "dataset": "holdout", "sample_count": 10000},
            {"name": "rmse", "value": 0.25, "dataset": "holdout"},
            {"name": "accuracy", "value": accuracy - 0.02, "dataset": "holdout", "slice": "DE"},
        ],
        "tags": {"team": "risk"},
    }
    payload.update(overrides)
    return payload


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """Check that ``response`` is an RFC 9457 problem with our fields; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    for field in ("type", "title", "status", "detail", "code", "request_id"):
        assert field in body, (field, body)
    assert body["status"] == status
    assert body["type"].endswith("/" + body["code"])
    assert body["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert body["code"] == code, body
    return body


def error_locs(problem: dict[str, Any]) -> list[list[Any]]:
    """The ``loc`` of every entry of a validation problem's ``errors``."""
    return [list(e["loc"]) for e in problem.get("errors") or []]


def create_model(client: Any, name: str, **fields: Any) -> dict[str, Any]:
    response = client.post(f"{API}/models", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def create_version(client: Any, model: str, payload: dict[str, Any] | None = None) -> int:
    """Create a version (``version_payload()`` by default) and return its number."""
    response = client.post(
        f"{API}/models/{model}/versions", json=payload if payload is not None else version_payload()
    )
    assert response.status_code == 201, response.text
    number: int = response.json()["version"]
    return number


def all_items(client: Any, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paginated GET (``API`` + ``path``), following ``next_cursor``."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(f"{API}{path}", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def audit_events(client: Any, **params: Any) -> list[dict[str, Any]]:
    """Every audit event matching ``params``, following the cursor."""
    return all_items(client, "/audit", **{**params, "limit": 1000})
