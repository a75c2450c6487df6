"""Hostile input gets a clear 4xx problem+json answer, never a 5xx, and changes nothing.

Decisions this module pins down (SECURITY.md, "Input"):

- request bodies: JSON up to ``MODELGATE_MAX_JSON_BODY_BYTES`` (8 MiB), artifacts up to
  ``MODELGATE_MAX_ARTIFACT_BYTES``; over the limit is 413, whether the client declared
  a Content-Length or streamed the body in chunks;
- names (models, scopes) are ``[A-Za-z0-9][A-Za-z0-9._-]*``, at most 128 characters:
  anything else (control characters, bidi overrides, emoji, look-alike letters, path
  separators, dot segments) is 422;
- metric values are finite numbers: NaN and Infinity are 422 (JSON has no such values;
  Python's and JavaScript's encoders write them anyway). Negative values are valid: a
  log-likelihood, an R squared, a calibration offset or a relative change can be below
  zero, and the metric catalogue does not know every metric's range. Counts are never
  negative: ``sample_count``, confusion-matrix cells and evidence counts below zero are
  422.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.support.api import ADMIN_TOKEN, API, assert_problem, auth, error_locs, version_payload

ROOT = Path(__file__).resolve().parents[2]
JSON = {"Content-Type": "application/json", **auth(ADMIN_TOKEN)}
MODEL = "hostile"


@pytest.fixture(scope="module")
def http(module_app_client: TestClient) -> TestClient:
    client = module_app_client
    response = client.post(f"{API}/models", json={"name": MODEL}, headers=auth(ADMIN_TOKEN))
    assert response.status_code == 201, response.text
    response = client.post(
        f"{API}/models/{MODEL}/versions", json=version_payload(), headers=auth(ADMIN_TOKEN)
    )
    assert response.status_code == 201, response.text
    return client


def post(http: TestClient, path: str, body: str | bytes, method: str = "POST") -> Any:
    return http.request(method, API + path, content=body, headers=JSON)


def model_names(http: TestClient) -> list[str]:
    response = http.get(f"{API}/models", params={"limit": 200}, headers=auth(ADMIN_TOKEN))
    return [m["name"] for m in response.json()["items"]]


# Malformed JSON ---------------------------------------------------------------------------

MALFORMED: list[str | bytes] = [
    '{"name": ',
    "{'name': 'x'}",
    '{"name": "x",}',
    '{"name": "x"}}',
    "[1, 2",
    '{"name": "x" "y"}',
    "{\x00}",
    b'{"name": "\xff\xfe"}',
    b"\x89PNG\r\n\x1a\n",
    '{"a": 1e999999999999999999}',
]
WRITES = [
    ("POST", "/models"),
    ("PATCH", f"/models/{MODEL}"),
    ("POST", f"/models/{MODEL}/versions"),
    ("POST", f"/models/{MODEL}/versions/1/metrics"),
    ("PUT", f"/models/{MODEL}/policy"),
    ("POST", f"/models/{MODEL}/promotions"),
    ("POST", f"/models/{MODEL}/rollback"),
    ("POST", "/tokens"),
    ("POST", "/webhooks"),
    ("POST", f"/models/{MODEL}/drift-reports"),
]


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_malformed_json_is_a_400_problem(http: TestClient, method: str, path: str) -> None:
    for body in MALFORMED:
        response = post(http, path, body, method)
        assert response.status_code in (400, 422), (body, response.status_code, response.text)
        problem = assert_problem(response, response.status_code)
        if response.status_code == 400:
            assert problem["code"] == "malformed-body", problem


# Size limits -------------------------------------------------------------------------------


def test_the_limits_are_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    defaults = Settings.model_construct()
    for variable, default in (
        ("MODELGATE_MAX_JSON_BODY_BYTES", defaults.max_json_body_bytes),
        ("MODELGATE_MAX_ARTIFACT_BYTES", defaults.max_artifact_bytes),
    ):
        rows = [line for line in readme.splitlines() if f"`{variable}`" in line]
        assert rows, f"{variable} is not in the README's configuration table"
        assert f"`{default}`" in rows[0], (variable, default, rows[0])
        assert "413" in rows[0], rows[0]


def _chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_json_over_the_default_limit_is_413_with_and_without_content_length(
    http: TestClient,
) -> None:
    limit = Settings.model_construct().max_json_body_bytes
    huge = json.dumps({"name": "huge", "description": "x" * limit}).encode()
    assert len(huge) > limit
    declared = http.post(f"{API}/models", content=huge, headers=JSON)
    assert "content-length" in declared.request.headers
    assert_problem(declared, 413, "payload-too-large")
    streamed = http.post(f"{API}/models", content=_chunks(huge), headers=JSON)
    assert "content-length" not in streamed.request.headers
    assert streamed.request.headers.get("transfer-encoding") == "chunked"
    assert_problem(streamed, 413, "payload-too-large")
    # Under the limit, the same field is judged by its own bound (10,000 characters).
    long_text = json.dumps({"name": "long", "description": "x" * 100_000})
    assert_problem(http.post(f"{API}/models", content=long_text, headers=JSON), 422)
    assert "huge" not in model_names(http)
    assert "long" not in model_names(http)


@pytest.fixture(scope="module")
def small_limits(module_settings: Settings) -> Iterator[TestClient]:
    limited = module_settings.model_copy(
        update={"max_json_body_bytes": 4096, "max_artifact_bytes": 10_000}
    )
    with TestClient(create_app(limited), base_url="http://modelgate.test") as client:
        yield client


def test_artifact_over_the_limit_is_413_with_and_without_content_length(
    http: TestClient, small_limits: TestClient
) -> None:
    number = http.post(f"{API}/models/{MODEL}/versions", json={}, headers=auth(ADMIN_TOKEN)).json()[
        "version"
    ]
    url = f"{API}/models/{MODEL}/versions/{number}/artifact"
    headers = {**auth(ADMIN_TOKEN), "Content-Type": "application/octet-stream"}
    body = b"\x00" * 10_001
    assert_problem(small_limits.put(url, content=body, headers=headers), 413, "payload-too-large")
    assert_problem(
        small_limits.put(url, content=_chunks(body, 1000), headers=headers),
        413,
        "payload-too-large",
    )
    version = http.get(url.removesuffix("/artifact"), headers=auth(ADMIN_TOKEN)).json()
    assert version["artifact"]["sha256"] is None, version
    # At the limit it is accepted.
    ok = small_limits.put(url, content=b"\x00" * 10_000, headers=headers)
    assert ok.status_code == 200, ok.text


# Deep nesting ------------------------------------------------------------------------------

DEPTH = 100_000


@pytest.mark.parametrize(
    ("method", "path", "wrap"),
    [
        ("POST", "/models", '{{"name": "deep", "tags": {}}}'),
        ("POST", f"/models/{MODEL}/versions", '{{"lineage": {{"hyperparameters": {{"g": {}}}}}}}'),
        ("PUT", f"/models/{MODEL}/policy", '{{"staging": {}}}'),
        ("POST", "/webhooks", '{{"url": {}, "secret": "0123456789abcdef"}}'),
        ("POST", f"/models/{MODEL}/drift-reports", '{{"sample": {{"a": {}}}}}'),
        ("POST", f"/models/{MODEL}/versions", "{}"),
    ],
)
def test_deep_nesting_is_a_4xx_problem(http: TestClient, method: str, path: str, wrap: str) -> None:
    for nested in ("[" * DEPTH + "]" * DEPTH, '{"a": ' * DEPTH + "1" + "}" * DEPTH):
        response = post(http, path, wrap.format(nested), method)
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
        assert_problem(response, response.status_code)
    assert "deep" not in model_names(http)


# Names ------------------------------------------------------------------------------------

BAD_NAMES = [
    "nul\x00byte",
    "rtl\u202eoverride",
    "bidi\u2066isolate",
    "zero\u200bwidth",
    "emoji-\U0001f680",
    "\U0001f680",
    "cyrillic-\u0430",  # looks like a Latin "a"
    "fullwidth-\uff41",
    "combining-e\u0301",
    "tab\tname",
    "new\nline",
    "del\x7f",
    "space name",
    "",
    "-leading-dash",
    ".hidden",
    "..",
    ".",
    "../../etc/passwd",
    "a/b",
    "a\\b",
    "..\\..\\windows",
    "%2e%2e%2f",
    "x" * 129,
    "x" * 100_000,
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda n: repr(n)[:40])
def test_bad_model_names_are_422_naming_the_field(http: TestClient, name: str) -> None:
    body = json.dumps({"name": name})
    problem = assert_problem(post(http, "/models", body), 422)
    assert ["body", "name"] in error_locs(problem), problem
    scoped = json.dumps({"name": "t", "role": "reader", "model_scope": name})
    problem = assert_problem(post(http, "/tokens", scoped), 422)
    assert ["body", "model_scope"] in error_locs(problem), problem


def test_bad_names_change_nothing(http: TestClient) -> None:
    before = model_names(http)
    for name in BAD_NAMES:
        post(http, "/models", json.dumps({"name": name}))
    assert model_names(http) == before


# Literal "." and ".." segments are resolved by HTTP clients (RFC 3986) before the request
# leaves them; their percent-encoded forms reach the server as they are.
PATH_ATTACKS = [
    "%2e%2e",
    "%2E%2E",
    "%2e",
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..%5c..%5cwindows",
    "nul%00byte",
    "rtl%E2%80%AEoverride",
    "emoji%F0%9F%9A%80",
    "%C0%AE%C0%AE",  # overlong UTF-8 for ".."
    "%ff%fe",
    "x" * 129,
]


@pytest.mark.parametrize("segment", PATH_ATTACKS)
def test_path_traversal_in_model_paths_is_4xx(http: TestClient, segment: str) -> None:
    for method, suffix in (
        ("GET", ""),
        ("GET", "/versions"),
        ("POST", "/versions"),
        ("GET", "/versions/1/artifact"),
        ("PUT", "/versions/1/artifact"),
    ):
        url = f"http://modelgate.test{API}/models/{segment}{suffix}"
        response = http.request(
            method,
            url,
            content=b"{}" if method == "POST" else (b"data" if method == "PUT" else None),
            headers={
                **auth(ADMIN_TOKEN),
                "Content-Type": "application/json" if method == "POST" else "text/plain",
            },
        )
        # 422 when the segment reaches the {model} parameter, 404 when a decoded "/" makes
        # the path match no route at all: either way a problem, and nothing stored.
        assert response.status_code in (404, 405, 422), (url, response.status_code, response.text)
        assert_problem(response, response.status_code)


# Numbers ----------------------------------------------------------------------------------


def metric(value: str, *, name: str = "accuracy", extra: str = "") -> str:
    return (
        '{"metrics": [{"name": "' + name + '", "value": ' + value + ', "dataset": "holdout"'
        + extra + "}]}"
    )  # fmt: skip


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_finite_metrics_are_422(http: TestClient, value: str) -> None:
    # The literal is sent as written: NaN and Infinity are not JSON, 1e400 overflows a double.
    for path in (f"/models/{MODEL}/versions", f"/models/{MODEL}/versions/1/metrics"):
        problem = assert_problem(post(http, path, metric(value)), 422)
        assert ["body", "metrics", 0, "value"] in error_locs(problem), problem
    regression = (
        '{"regression": [{"dataset": "d", "targets": [1.0, ' + value + '], "predictions": [1, 2]}]}'
    )
    assert_problem(post(http, f"/models/{MODEL}/versions", regression), 422)
    threshold = (
        '{"production": {"rules": [{"kind": "threshold", "metric": "accuracy", '
        '"dataset": "holdout", "value": ' + value + "}]}}"
    )
    assert_problem(post(http, f"/models/{MODEL}/policy", threshold, "PUT"), 422)
    assert_problem(
        post(http, f"/models/{MODEL}/drift-settings", '{"tau": ' + value + "}", "PUT"), 422
    )


def test_negative_metric_values_are_valid(http: TestClient) -> None:
    response = post(
        http,
        f"/models/{MODEL}/versions",
        '{"metrics": [{"name": "log_likelihood", "value": -0.6931, "dataset": "holdout"},'
        ' {"name": "r2", "value": -1.5e-3, "dataset": "holdout"}]}',
    )
    assert response.status_code == 201, response.text
    values = {m["name"]: m["value"] for m in response.json()["metrics"]}
    assert values == {"log_likelihood": -0.6931, "r2": -0.0015}


def test_negative_counts_are_422(http: TestClient) -> None:
    path = f"/models/{MODEL}/versions"
    problem = assert_problem(post(http, path, metric("0.9", extra=', "sample_count": -1')), 422)
    assert ["body", "metrics", 0, "sample_count"] in error_locs(problem), problem
    for body in (
        '{"confusion_matrices": [{"dataset": "d", "matrix": [[5, -1], [2, 7]]}]}',
        '{"evidence": [{"kind": "counts", "dataset": "d", "successes": -3, "total": 10}]}',
        '{"evidence": [{"kind": "counts", "dataset": "d", "successes": 3, "total": -10}]}',
        '{"evidence": [{"kind": "counts", "dataset": "d", "successes": 11, "total": 10}]}',
    ):
        assert_problem(post(http, path, body), 422)


@pytest.mark.parametrize(
    "value", ['"0.9"', "true", "null", "[0.9]", '{"v": 0.9}', "1" * 400, "0x10"]
)
def test_metric_values_of_the_wrong_kind_are_4xx(http: TestClient, value: str) -> None:
    response = post(http, f"/models/{MODEL}/versions/1/metrics", metric(value))
    assert response.status_code in (400, 422), (value, response.text)
    assert_problem(response, response.status_code)


# Long strings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/models", {"name": "ok-name", "description": "d" * 10_001}),
        ("POST", "/models", {"name": "ok-name", "owner": "o" * 257}),
        ("POST", "/models", {"name": "ok-name", "tags": {"k": "v" * 1025}}),
        ("POST", "/models", {"name": "ok-name", "tags": {"k" * 129: "v"}}),
        ("POST", f"/models/{MODEL}/versions", {"description": "d" * 10_001}),
        ("POST", f"/models/{MODEL}/versions", {"lineage": {"code_commit": "c" * 100_000}}),
        (
            "POST",
            f"/models/{MODEL}/versions/1/metrics",
            {"metrics": [{"name": "m" * 129, "value": 1, "dataset": "d"}]},
        ),
        (
            "POST",
            f"/models/{MODEL}/versions/1/metrics",
            {"metrics": [{"name": "m", "value": 1, "dataset": "d" * 257}]},
        ),
        ("POST", "/tokens", {"name": "n" * 129, "role": "reader"}),
        ("POST", f"/models/{MODEL}/rollback", {"reason": "r" * 4001}),
        ("POST", f"/models/{MODEL}/freeze", {"reason": "r" * 4001}),
        ("POST", "/webhooks", {"url": "http://127.0.0.1/" + "u" * 2048, "secret": "s" * 16}),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_very_long_strings_are_422(
    http: TestClient, method: str, path: str, body: dict[str, Any]
) -> None:
    response = post(http, path, json.dumps(body), method)
    assert_problem(response, 422)
    assert "ok-name" not in model_names(http)


def test_hostile_input_left_the_audit_chain_intact(http: TestClient) -> None:
    verified = http.get(f"{API}/audit/verify", headers=auth(ADMIN_TOKEN))
    assert verified.status_code == 200
    assert verified.json()["ok"] is True, verified.json()


def _writes_of_the_spec() -> list[tuple[str, str]]:
    from app.openapi_export import render_openapi

    spec = json.loads(render_openapi())
    return [
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in ("post", "put", "patch")
    ]


def _declared(method: str, path: str) -> set[str]:
    from app.openapi_export import render_openapi

    spec = json.loads(render_openapi())
    return set(spec["paths"][path][method.lower()]["responses"])


@pytest.mark.parametrize(("method", "path"), _writes_of_the_spec())
def test_every_write_answers_and_declares_413(
    small_limits: TestClient, method: str, path: str
) -> None:
    """The body limit applies to every POST, PUT and PATCH (before routing), so each one
    can answer 413 and its description in the spec must say so."""
    url = (
        path.replace("{model}", MODEL)
        .replace("{version}", "1")
        .replace("{stage}", "candidate")
        .replace("{promotion_id}", "1")
        .replace("{webhook_id}", "1")
        .replace("{delivery_id}", "1")
        .replace("{report_id}", "1")
    )
    too_big = b'{"x": "' + b"x" * 20_000 + b'"}'
    headers = {**auth(ADMIN_TOKEN), "Content-Type": "application/json"}
    if url.endswith("/artifact"):
        too_big = b"\x00" * 10_001
        headers["Content-Type"] = "application/octet-stream"
    assert_problem(small_limits.request(method, url, content=too_big, headers=headers), 413)
    assert "413" in _declared(method, path), f"{method} {path} does not declare 413"
