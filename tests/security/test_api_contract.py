"""The API document tells the truth: what a 405 says a path serves, how date-times parse,
what the schema says about constraints the server enforces."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.api import API, assert_problem

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: "1" if m.group(1) != "model" else "m", path)


def test_allow_lists_exactly_the_methods_each_path_serves(client: TestClient) -> None:
    spec = client.get(f"{API}/openapi.json").json()
    checked = 0
    for path, operations in spec["paths"].items():
        served = sorted(m.upper() for m in operations if m.upper() in METHODS)
        for method in METHODS:
            if method in served:
                continue
            response = client.request(method, concrete(path))
            assert response.status_code == 405, (method, path, response.status_code)
            allow = sorted(m.strip() for m in response.headers["allow"].split(","))
            assert allow == served, (method, path, allow)
            if method != "HEAD":
                assert response.headers["content-type"].startswith("application/problem+json")
            checked += 1
    assert checked > 200


def test_options_on_models_names_get_and_post(client: TestClient) -> None:
    response = client.options(f"{API}/models")
    assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "GET, POST"


@pytest.mark.parametrize(
    "value",
    ["0.5", "1700000000", "2026-11-26", "2026-11-26T08:00:00", "2026-11-26 08:00:00Z", "now"],
)
@pytest.mark.parametrize("path", ["/audit", "/audit/export"])
@pytest.mark.parametrize("name", ["since", "until"])
def test_date_times_are_rfc3339_only(client: TestClient, path: str, name: str, value: str) -> None:
    problem = assert_problem(client.get(API + path, params={name: value}), 422)
    assert ["query", name] in [e["loc"][:2] for e in problem["errors"]]


@pytest.mark.parametrize("value", ["2026-11-26T08:00:00Z", "2026-11-26t08:00:00.5+01:30"])
def test_rfc3339_date_times_are_accepted(client: TestClient, value: str) -> None:
    assert client.get(f"{API}/audit", params={"until": value}).status_code == 200
    assert client.get(f"{API}/audit/export", params={"since": value}).status_code == 200


def test_drift_windows_are_rfc3339_only(client: TestClient) -> None:
    client.post(f"{API}/models", json={"name": "drifty"})
    body: dict[str, Any] = {"window_start": 0.5, "columns": {}}
    response = client.post(f"{API}/models/drifty/drift-reports", json=body)
    problem = assert_problem(response, 422)
    assert any("window_start" in e["loc"] for e in problem["errors"]), problem


def spec_of(client: TestClient) -> dict[str, Any]:
    spec: dict[str, Any] = client.get(f"{API}/openapi.json").json()
    return spec


def test_dict_keys_carry_their_pattern_in_property_names(client: TestClient) -> None:
    tags = spec_of(client)["components"]["schemas"]["ModelCreate"]["properties"]["tags"]
    assert tags["propertyNames"]["pattern"] == "^[A-Za-z0-9_.:/-]+$"
    problem = assert_problem(
        client.post(f"{API}/models", json={"name": "t", "tags": {"a b": "x"}}), 422
    )
    assert problem["errors"]


def test_unstorable_characters_are_in_the_document(client: TestClient) -> None:
    description = spec_of(client)["components"]["schemas"]["ModelCreate"]["properties"][
        "description"
    ]
    # No NUL (PostgreSQL cannot store it). Lone surrogates are refused too, but they are
    # not characters a schema-valid string can hold (decision 0025).
    assert description["pattern"] == r"^[^\x00]*$"
    refused = client.post(f"{API}/models", json={"name": "nul", "description": "a\x00b"})
    assert_problem(refused, 422)
    lone = client.post(
        f"{API}/models",
        content=b'{"name": "lone", "description": "a\\ud800b"}',
        headers={"Content-Type": "application/json"},
    )
    assert_problem(lone, 422)


def test_idempotency_key_format_is_documented_and_enforced(client: TestClient) -> None:
    operation = spec_of(client)["paths"]["/api/v1/models"]["post"]
    (header,) = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
    pattern = header["schema"]["pattern"]  # a header is a string or absent: no null branch
    assert re.fullmatch(pattern, "ci-run-42/attempt 1")
    for bad in ["é-key", "tab\tkey", "k" * 256]:
        assert not re.fullmatch(pattern, bad)
        response = client.post(
            f"{API}/models",
            json={"name": "idem"},
            headers={"Idempotency-Key": bad.encode("latin-1")},
        )
        assert_problem(response, 422, "validation-failed")
    ok = client.post(f"{API}/models", json={"name": "idem"}, headers={"Idempotency-Key": "a b"})
    assert ok.status_code == 201, ok.text


def test_evaluate_target_lists_what_it_accepts(client: TestClient) -> None:
    operation = spec_of(client)["paths"]["/api/v1/models/{model}/versions/{version}/evaluate"]
    (target,) = [p for p in operation["post"]["parameters"] if p["name"] == "target"]
    assert target["schema"]["enum"] == ["staging", "production"]
    for stage in ("candidate", "archived"):
        response = client.post(f"{API}/models/m/versions/1/evaluate", params={"target": stage})
        assert_problem(response, 422)


def test_cursors_are_documented_as_opaque(client: TestClient) -> None:
    for path, operations in spec_of(client)["paths"].items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "cursor":
                    assert parameter["description"].startswith("Opaque"), path


@pytest.mark.parametrize(
    ("path", "status", "link", "target"),
    [
        ("/api/v1/models", "201", "ListVersions", "/versions"),
        ("/api/v1/models/{model}/versions", "201", "DownloadArtifact", "/artifact"),
        ("/api/v1/models/{model}/versions", "201", "Evaluate", "/evaluate"),
        ("/api/v1/models/{model}/promotions", "201", "Approve", "/approve"),
        ("/api/v1/models/{model}/promotions", "201", "Reject", "/reject"),
        ("/api/v1/webhooks", "201", "ListDeliveries", "/deliveries"),
    ],
)
def test_links_connect_created_resources_to_their_operations(
    client: TestClient, path: str, status: str, link: str, target: str
) -> None:
    spec = spec_of(client)
    links = spec["paths"][path]["post"]["responses"][status]["links"]
    operation_id = links[link]["operationId"]
    targets = [
        p for p, ops in spec["paths"].items()
        for o in ops.values() if o.get("operationId") == operation_id
    ]  # fmt: skip
    assert len(targets) == 1
    assert targets[0].endswith(target)
