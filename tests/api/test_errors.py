"""Errors: every non-2xx is a problem+json with a stable code; no input produces a 5xx."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.support.api import (
    ADMIN_TOKEN,
    API,
    assert_problem,
    create_model,
    create_version,
    error_locs,
    version_payload,
)

JSON = {"Content-Type": "application/json"}


def test_malformed_json_is_400(client: TestClient) -> None:
    create_model(client, "m")
    for path in ("/models", "/models/m/versions", "/models/m/versions/1/metrics", "/tokens"):
        for body in ('{"name": ', "{'name': 'x'}", "nul\x00l", "[1, 2", '{"a": 1}}'):
            response = client.post(API + path, content=body, headers=JSON)
            problem = assert_problem(response, 400, "malformed-body")
            assert "JSON" in problem["detail"]


def test_invalid_utf8_is_4xx_problem(client: TestClient) -> None:
    response = client.post(f"{API}/models", content=b'{"name": "\xff\xfe"}', headers=JSON)
    assert_problem(response, 400, "malformed-body")
    response = client.post(f"{API}/models", content=b'{"name": ' + b"9" * 5000 + b"}", headers=JSON)
    assert_problem(response, 400, "malformed-body")


def test_wrong_types_name_the_fields(client: TestClient) -> None:
    create_model(client, "m")
    payload = version_payload()
    payload["description"] = 5
    payload["tags"] = ["not", "a", "dict"]
    payload["lineage"]["hyperparameters"] = "deep"
    payload["metrics"][1]["dataset"] = None
    payload["signature"]["inputs"][0]["nullable"] = "perhaps"
    problem = assert_problem(client.post(f"{API}/models/m/versions", json=payload), 422)
    locs = error_locs(problem)
    for expected in (
        ["body", "description"],
        ["body", "tags"],
        ["body", "lineage", "hyperparameters"],
        ["body", "metrics", 1, "dataset"],
        ["body", "signature", "inputs", 0, "nullable"],
    ):
        assert expected in locs, (expected, locs)
    for error in problem["errors"]:
        assert error["msg"]
        assert error["type"]
    assert "description" in problem["detail"]


def test_body_of_the_wrong_shape_is_422(client: TestClient) -> None:
    for body in ("[]", "null", "42", '"a string"', "true"):
        response = client.post(f"{API}/models", content=body, headers=JSON)
        problem = assert_problem(response, 422, "validation-failed")
        assert any(loc[:1] == ["body"] for loc in error_locs(problem))


def test_missing_body_is_422(client: TestClient) -> None:
    problem = assert_problem(client.post(f"{API}/models"), 422)
    assert ["body"] in error_locs(problem)


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1b", "\x7f", "\n", "\t", "\u2028", "\ud800"])
def test_control_characters_in_names_are_422(client: TestClient, char: str) -> None:
    body = json.dumps({"name": f"model{char}name"})
    problem = assert_problem(client.post(f"{API}/models", content=body, headers=JSON), 422)
    assert ["body", "name"] in error_locs(problem)


@pytest.mark.parametrize("char", ["\x00", "\ud800", chr(0xDFFF)])
def test_unstorable_characters_in_free_text_are_4xx(client: TestClient, char: str) -> None:
    """NUL and lone surrogates parse from JSON escapes but cannot be stored as text."""
    create_model(client, "m")
    create_version(client, "m", {})
    cases = [
        ("POST", "/models", {"name": "x", "description": f"a{char}b"}),
        ("POST", "/models", {"name": "y", "tags": {"k": f"a{char}b"}}),
        ("PATCH", "/models/m", {"description": f"a{char}b"}),
        ("POST", "/models/m/versions", {"description": f"a{char}b"}),
        ("POST", "/models/m/versions", {"lineage": {"hyperparameters": {"k": f"a{char}"}}}),
        ("POST", "/models/m/versions", {"lineage": {"hyperparameters": {f"k{char}": 1}}}),
        ("POST", "/models/m/versions", {"lineage": {"code_commit": f"a{char}"}}),
        (
            "POST",
            "/models/m/versions",
            {"signature": {"inputs": [{"name": f"a{char}", "type": "float"}]}},
        ),
        ("POST", "/tokens", {"name": "t", "role": "reader", "model_scope": f"a{char}"}),
    ]
    for method, path, body in cases:
        response = client.request(method, API + path, content=json.dumps(body), headers=JSON)
        assert 400 <= response.status_code < 500, (path, body, response.status_code, response.text)
        assert_problem(response, response.status_code)
    assert client.get(f"{API}/models/m").json()["latest_version"] == 1
    assert client.get(f"{API}/audit/verify").json()["ok"] is True


def test_deep_nesting_is_4xx(client: TestClient) -> None:
    create_model(client, "deep")
    ten_thousand = '{"lineage": {"hyperparameters": {"grid": ' + "[" * 10_000 + "]" * 10_000 + "}}}"
    response = client.post(f"{API}/models/deep/versions", content=ten_thousand, headers=JSON)
    problem = assert_problem(response, 400, "malformed-body")
    assert "nested too deeply" in problem["detail"]
    for depth in (2_000, 900, 300, 100):
        nested = "[" * depth + "]" * depth
        body = '{"lineage": {"hyperparameters": {"grid": ' + nested + "}}}"
        response = client.post(f"{API}/models/deep/versions", content=body, headers=JSON)
        assert response.status_code < 500, (depth, response.text)
        if response.status_code >= 400:
            assert_problem(response, response.status_code)
    nested_objects = '{"a": ' * 5000 + "1" + "}" * 5000
    response = client.post(
        f"{API}/models/deep/versions",
        content='{"lineage": {"extra": ' + nested_objects + "}}",
        headers=JSON,
    )
    assert 400 <= response.status_code < 500
    assert_problem(response, response.status_code)
    assert client.get(f"{API}/audit/verify").json()["ok"] is True


def test_huge_numbers_are_4xx(client: TestClient) -> None:
    create_model(client, "nums")
    for number in ("1" * 5000, "1e400", "-1e400", "1" * 30):
        for body in (
            '{"lineage": {"seed": ' + number + "}}",
            '{"lineage": {"hyperparameters": {"n": ' + number + "}}}",
            '{"metrics": [{"name": "a", "dataset": "d", "value": 0.5, "sample_count": '
            + number
            + "}]}",
        ):
            response = client.post(f"{API}/models/nums/versions", content=body, headers=JSON)
            assert response.status_code < 500, (body[:80], response.text)
            if response.status_code >= 400:
                assert_problem(response, response.status_code)
    assert client.get(f"{API}/audit/verify").json()["ok"] is True


@pytest.fixture
def small_limit_client(settings: Settings) -> Iterator[TestClient]:
    limited = settings.model_copy(update={"max_json_body_bytes": 4096})
    with TestClient(create_app(limited), base_url="http://modelgate.test") as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield client


def test_oversized_json_body_is_413(small_limit_client: TestClient) -> None:
    client = small_limit_client
    big = json.dumps({"name": "big", "description": "x" * 8000}).encode()

    with_length = client.post(f"{API}/models", content=big, headers=JSON)
    assert_problem(with_length, 413, "payload-too-large")

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    chunked = client.post(f"{API}/models", content=chunks(), headers=JSON)
    assert "content-length" not in chunked.request.headers
    assert_problem(chunked, 413, "payload-too-large")
    assert client.get(f"{API}/models").json()["items"] == []
    # Just under the limit is fine.
    ok = json.dumps({"name": "fits", "description": "x" * 3000})
    assert client.post(f"{API}/models", content=ok, headers=JSON).status_code == 201


def test_oversized_body_on_real_socket(settings: Settings) -> None:
    """Content-Length over the limit is refused before the body is sent at all."""
    import threading

    import uvicorn

    from tests.support.s3server import free_port

    limited = settings.model_copy(update={"max_json_body_bytes": 4096})
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(limited), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.05)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /api/v1/models HTTP/1.1\r\nHost: x\r\n"
                + f"Authorization: Bearer {ADMIN_TOKEN}\r\n".encode()
                + b"Content-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n"
            )
            answer = b""
            while b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"application/problem+json" in answer
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_bad_content_length_is_400(client: TestClient) -> None:
    # httpx sets Content-Length itself; a raw ASGI scope lets us send a broken one.
    import anyio
    import httpx

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            request = http.build_request(
                "POST", f"{API}/models", content=b"{}", headers={"Content-Type": "application/json"}
            )
            request.headers["Content-Length"] = "lots"
            return await http.send(request)

    response = anyio.run(send)
    assert_problem(response, 400)


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/models?owner=a%00b", "owner"),
        ("/models?name_prefix=%00", "name_prefix"),
        ("/audit?actor=%00", "actor"),
        ("/models/m/versions?order_by=-metric:acc&dataset=hold%00out", "dataset"),
    ],
)
def test_nul_in_query_parameters_is_422(client: TestClient, path: str, param: str) -> None:
    create_model(client, "m")
    problem = assert_problem(client.get(API + path), 422, "validation-failed")
    assert ["query", param] in error_locs(problem)


def test_unknown_path_is_404_problem(client: TestClient) -> None:
    # "/" redirects to the console (tests/console), so an unknown root path stands in.
    for path in ("/api/v1/nothing", "/api/v2/models", "/nothing", "/api/v1/models/m/versions/1/x"):
        problem = assert_problem(client.get(path), 404, "not-found")
        assert problem["instance"] == path


def test_wrong_method_is_405_problem(client: TestClient) -> None:
    for method, path in [
        ("DELETE", "/models"),
        ("PUT", "/models"),
        ("DELETE", "/models/m"),
        ("POST", "/models/m/versions/1"),
        ("PATCH", "/audit"),
        ("POST", "/healthz"),
    ]:
        response = client.request(method, API + path)
        assert_problem(response, 405, "method-not-allowed")
        assert "allow" in response.headers


def test_request_id_is_adopted_or_made(client: TestClient) -> None:
    response = client.get(f"{API}/models/nope", headers={"X-Request-ID": "ci-run-77.step:3"})
    problem = assert_problem(response, 404)
    assert problem["request_id"] == "ci-run-77.step:3"
    # An unsafe incoming id is replaced, not echoed.
    response = client.get(f"{API}/models/nope", headers={"X-Request-ID": "bad id <script>"})
    problem = assert_problem(response, 404)
    assert problem["request_id"] != "bad id <script>"
    assert len(problem["request_id"]) >= 16
    ok = client.get(f"{API}/models")
    assert ok.headers["x-request-id"]
    assert ok.headers["x-request-id"] != response.headers["x-request-id"]


def test_bad_query_parameters_are_422(client: TestClient) -> None:
    create_model(client, "m")
    for path, params, loc in [
        ("/models", {"limit": "x"}, ["query", "limit"]),
        ("/models", {"name_prefix": "x" * 200}, ["query", "name_prefix"]),
        ("/models/m/versions", {"stage": "nope"}, ["query", "stage"]),
        ("/audit", {"since": "yesterday"}, ["query", "since"]),
        ("/audit", {"limit": 0}, ["query", "limit"]),
    ]:
        problem = assert_problem(client.get(API + path, params=params), 422)
        assert loc in error_locs(problem), (path, problem)


GARBAGE_BODIES: list[bytes] = [
    b"",
    b"null",
    b"[]",
    b"{}",
    b'""',
    b"0",
    b"-1",
    b"1e999",
    b"NaN",
    b"{" * 50_000,
    b"[" * 50_000 + b"]" * 50_000,
    b'{"name": ' + b"9" * 10_000 + b"}",
    b'{"name": "\\ud800"}',
    b'{"name": "a\\u0000b", "description": "\\u0000"}',
    b'{"name": {"$ne": null}}',
    b'{"name": ["a"]}',
    b"\xff\xfe\x00",
    b"\x00" * 100,
    b'{"metrics": [{"name": "a", "value": NaN, "dataset": "d"}]}',
    b'{"metrics": [null, 1, "x", {}]}',
    b'{"metrics": {"a": 1}}',
    b'{"lineage": null, "signature": [], "tags": "x", "artifact": 5}',
    b'{"lineage": {"hyperparameters": {"x": -Infinity}}}',
    b'{"description": "\\ud83d"}',
    b'{"role": "admin", "name": "\\u0000"}',
    b'{"name": "ok", "role": "reader", "expires_in_days": 1e308}',
    b'{"owner": 1, "tags": {"": ""}}',
    b'{"tags": {"k": "' + b"v" * 5000 + b'"}}',
    json.dumps({"name": "x" * 100_000}).encode(),
    json.dumps({"metrics": [{"name": "m", "value": 1, "dataset": "d"}] * 20_000}).encode(),
    b'{"a": 1, "a": 2}',
    b"<xml/>",
    b"--boundary\r\nContent-Disposition: form-data\r\n\r\n",
]
PATHS: list[tuple[str, str]] = [
    ("POST", "/models"),
    ("PATCH", "/models/m"),
    ("PATCH", "/models/nope"),
    ("POST", "/models/m/versions"),
    ("POST", "/models/nope/versions"),
    ("POST", "/models/m/versions/1/metrics"),
    ("POST", "/models/m/versions/99/metrics"),
    ("PUT", "/models/m/versions/1/artifact"),
    ("PUT", "/models/m/versions/99/artifact"),
    ("POST", "/tokens"),
    ("DELETE", "/tokens/abc"),
]
GARBAGE_PATHS = [
    "/models?owner=%00",
    "/models?name_prefix=a%00",
    "/audit?actor=%00&model=%00&action=%00",
    "/models/m/versions?order_by=metric:a%00&dataset=%00",
    "/models/m/versions?order_by=metric:a&dataset=%ED%A0%80",
    "/models/%00",
    "/models/..%2f..%2fetc",
    "/models/" + "a" * 5000,
    "/models/m/versions/99999999999999999999",
    "/models/m/versions/-1/artifact",
    "/models/m/stages/%ff",
    "/models/\u00e9",
    "/audit?since=2026-13-45",
    "/audit?cursor=%ff%fe",
    "/audit?limit=1e9",
    "/tokens?cursor=WyJhIl0",
    "/models?cursor=" + "A" * 5000,
    "/models/m/versions?order_by=-metric:" + "x" * 150 + "&dataset=d",
    "/models/m/versions?order_by=metric:acc&dataset=d&cursor=WzEsMl0",
    "/models/m/versions?order_by=metric:acc&dataset=d&cursor=WyJhIiwiYiJd",
    "/models/m/versions?order_by=-version&cursor=WyJ4Il0",
    "/models/m/versions?order_by=-version&cursor=WzEuNV0",
    "/models/m/versions?order_by=-version&cursor=WzFlMzA4XQ",
    "/models/m/versions?order_by=metric:acc&dataset=d&cursor=WyJOYU4iLDFd",
    "/models/m/versions?order_by=metric:acc&dataset=d&cursor=WzFlOTk5OSwxXQ",
    "/models/m/versions?order_by=metric:acc&dataset=d&cursor=WzEsMWUzMDhd",
]
CONTENT_TYPES = ["application/json", "text/plain"]


def test_garbage_never_causes_a_5xx(settings: Settings) -> None:
    app = create_app(settings)
    with TestClient(app, base_url="http://modelgate.test", raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        create_model(client, "m")
        create_version(client, "m")
        failures: list[str] = []
        problems_seen = 0

        def check(response: Any, what: str) -> None:
            nonlocal problems_seen
            if response.status_code >= 500:
                failures.append(f"{what} -> {response.status_code} {response.text[:200]}")
            elif response.status_code >= 400:
                problems_seen += 1
                try:
                    assert_problem(response, response.status_code)
                except AssertionError as exc:
                    failures.append(f"{what} -> not a problem: {exc}")

        for method, path in PATHS:
            for body in GARBAGE_BODIES:
                for content_type in CONTENT_TYPES:
                    headers = {"Content-Type": content_type} if content_type else {}
                    response = client.request(method, API + path, content=body, headers=headers)
                    check(response, f"{method} {path} {content_type} {body[:40]!r}")
        for path in GARBAGE_PATHS:
            for method in ("GET", "POST", "DELETE"):
                check(client.request(method, API + path), f"{method} {path[:80]}")
        for header, value in [
            ("Idempotency-Key", "\x7f"),
            ("Idempotency-Key", "k" * 10_000),
            ("X-Request-ID", "\u00e9" * 50),
            ("X-Artifact-SHA256", "z" * 64),
            ("Content-Length", "-5"),
            ("Authorization", "Bearer " + "x" * 10_000),
            ("Authorization", "Bearer\u00a0x"),
        ]:
            response = client.post(
                f"{API}/models/m/versions",
                content=b"{}",
                headers={**JSON, header: value.encode("utf-8")},
            )
            check(response, f"header {header}")
        assert failures == [], "\n".join(failures[:30])
        assert problems_seen > 500
        assert client.get(f"{API}/audit/verify").json()["ok"] is True


def test_unexpected_error_is_a_500_problem_that_says_nothing_internal(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from app.registry import service

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(service, "read_model", explode)
    app = create_app(settings)
    # The service's loggers do not propagate to the root, where caplog listens.
    monkeypatch.setattr(logging.getLogger("modelgate"), "handlers", [caplog.handler])
    with TestClient(app, base_url="http://modelgate.test", raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        create_model(client, "m")
        response = client.get(f"{API}/models/m", headers={"X-Request-ID": "trace-me-500"})
        problem = assert_problem(response, 500, "internal-error")
        assert problem["request_id"] == "trace-me-500"
        assert "secret internal detail" not in response.text
        # The traceback is logged, with the request id, for whoever runs the server.
        logged = [r for r in caplog.records if "secret internal detail" in str(r.exc_info)]
        assert logged
        # The server keeps serving.
        assert client.get(f"{API}/models").status_code == 200
