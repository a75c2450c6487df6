"""The committed OpenAPI description is the one the application generates, and it keeps
the API's conventions: everything under /api/v1, problem+json errors declared."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import pytest

from app.openapi_export import render_openapi

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "openapi" / "openapi.json"
PREFIX = "/api/v1"
PROBLEM = "application/problem+json"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
# Liveness, readiness and Prometheus metrics answer anyone and take no input: no 4xx
# to declare.
PROBES = {"/api/v1/healthz", "/api/v1/readyz", "/api/v1/metrics"}
# Declared error responses known not to name problem+json yet, as (method, path, status).
# Each is an app change waiting to happen; the test fails once it is fixed so the entry
# is removed with the fix.
KNOWN_UNDOCUMENTED_PROBLEMS: set[tuple[str, str, str]] = set()


@pytest.fixture(scope="module")
def rendered() -> str:
    return render_openapi()


@pytest.fixture(scope="module")
def spec(rendered: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(rendered)
    return loaded


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]


def test_committed_spec_matches_the_application(rendered: str) -> None:
    assert COMMITTED.is_file(), "openapi/openapi.json is missing: run scripts/export-openapi"
    committed = COMMITTED.read_text(encoding="utf-8")
    if committed != rendered:
        diff = list(
            difflib.unified_diff(
                committed.splitlines(),
                rendered.splitlines(),
                "openapi/openapi.json (committed)",
                "openapi/openapi.json (generated)",
                lineterm="",
                n=1,
            )
        )
        shown = "\n".join(diff[:60]) + ("\n..." if len(diff) > 60 else "")
        pytest.fail(
            "openapi/openapi.json is out of date with the application: "
            f"run scripts/export-openapi and commit the result.\n{shown}",
            pytrace=False,
        )


def test_rendering_is_stable(rendered: str) -> None:
    assert rendered.endswith("}\n")
    assert not rendered.endswith("\n\n")
    assert render_openapi() == rendered


def test_every_path_is_under_the_api_prefix(spec: dict[str, Any]) -> None:
    outside = [p for p in spec["paths"] if p != PREFIX and not p.startswith(PREFIX + "/")]
    assert not outside, f"paths outside {PREFIX}: {outside}"


def test_every_operation_declares_a_problem_4xx(spec: dict[str, Any]) -> None:
    missing = []
    for method, path, op in operations(spec):
        if path in PROBES:
            continue
        declared = [
            status
            for status, response in op.get("responses", {}).items()
            if status.startswith("4") and PROBLEM in response.get("content", {})
        ]
        if not declared:
            missing.append(f"{method.upper()} {path}")
    assert not missing, f"operations with no 4xx {PROBLEM} response declared: {missing}"


def test_every_declared_error_is_a_problem(spec: dict[str, Any]) -> None:
    undocumented = {
        (method, path, status)
        for method, path, op in operations(spec)
        for status, response in op.get("responses", {}).items()
        if status[0] in "45" and PROBLEM not in response.get("content", {})
    }
    fixed = KNOWN_UNDOCUMENTED_PROBLEMS - undocumented
    assert not fixed, f"fixed, remove from KNOWN_UNDOCUMENTED_PROBLEMS: {sorted(fixed)}"
    new = undocumented - KNOWN_UNDOCUMENTED_PROBLEMS
    assert not new, f"error responses without {PROBLEM} content: {sorted(new)}"


def test_problem_schema_is_published(spec: dict[str, Any]) -> None:
    problem = spec["components"]["schemas"]["Problem"]
    assert {"type", "title", "status"} <= set(problem["properties"])


def test_an_operation_declaring_nothing_gets_the_shared_problems() -> None:
    """A route added without ``responses=`` still declares what every route can answer:
    the shared problems come from one pass over the document, not from each route."""
    from app.api.openapi_contract import complete

    document: dict[str, Any] = {
        "paths": {
            "/api/v1/things/{thing}": {
                "post": {
                    "security": [{"bearerAuth": []}],
                    "parameters": [
                        {"in": "path", "name": "thing", "schema": {"type": "string"}},
                        {"in": "header", "name": "Idempotency-Key", "schema": {"type": "string"}},
                    ],
                    "requestBody": {"content": {"application/json": {"schema": {}}}},
                    "responses": {"201": {"description": "Created"}},
                },
                "get": {"security": [], "responses": {"200": {"description": "OK"}}},
            }
        }
    }
    completed = complete(document)["paths"]["/api/v1/things/{thing}"]
    post, get = completed["post"]["responses"], completed["get"]["responses"]
    assert set(post) == {"201", "400", "401", "403", "404", "409", "413", "422", "503"}
    assert set(get) == {"200", "400", "422"}
    assert PROBLEM in post["404"]["content"]


def test_every_operation_declares_the_shared_problems(spec: dict[str, Any]) -> None:
    from app.api.openapi_contract import shared_statuses

    missing = [
        f"{method.upper()} {path}: {status}"
        for method, path, op in operations(spec)
        for status in shared_statuses(path, method, op)
        if PROBLEM not in op["responses"].get(str(status), {}).get("content", {})
    ]
    assert not missing, missing
