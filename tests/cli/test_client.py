"""The Python client against httpx.MockTransport: problem parsing, retries, streaming.

Mocking the transport is right here: the client is ours, and what is under test is what
it does with answers (and with their absence), not the server.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelgate_client.client import (
    ModelgateClient,
    ModelgateConnectionError,
    ModelgateError,
    all_items,
    normalize_base_url,
)

BASE = "http://modelgate.test"


class Recorder:
    """A MockTransport handler that answers from a script and records every request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.bodies: list[bytes] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.bodies.append(request.read())
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        # A fresh response each time: a response object is read once.
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


Handler = Callable[[httpx.Request], httpx.Response]


def make_client(handler: Handler, **kwargs: Any) -> tuple[ModelgateClient, list[float]]:
    sleeps: list[float] = []
    client = ModelgateClient(
        BASE, "mgt_secret", transport=httpx.MockTransport(handler), sleep=sleeps.append, **kwargs
    )
    return client, sleeps


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> httpx.Response:
    body = {
        "type": f"https://modelgate.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": "/api/v1/x",
        "code": code,
        "request_id": "req-1",
        **extra,
    }
    return httpx.Response(
        status, content=json.dumps(body), headers={"content-type": "application/problem+json"}
    )


MODEL = {"name": "fraud", "latest_version": 3}


# Errors ---------------------------------------------------------------------------------


def test_a_problem_answer_raises_one_error_type_carrying_the_document() -> None:
    client, _ = make_client(
        Recorder(problem(404, "model-not-found", "Model not found", "no model named 'x'"))
    )
    with pytest.raises(ModelgateError) as caught:
        client.get_model("x")
    error = caught.value
    assert type(error) is ModelgateError
    assert (error.status, error.code, error.title) == (404, "model-not-found", "Model not found")
    assert error.detail == "no model named 'x'"
    assert error.problem["instance"] == "/api/v1/x"
    assert error.request_id == "req-1"
    assert str(error) == "404 Model not found: no model named 'x'"


def test_validation_errors_expose_the_failing_fields() -> None:
    errors = [{"loc": ["body", "lineage", "seed"], "msg": "Input should be a valid integer"}]
    answer = problem(422, "validation-failed", "Request is not valid", "1 invalid field(s)",
                     errors=errors)  # fmt: skip
    client, _ = make_client(Recorder(answer))
    with pytest.raises(ModelgateError) as caught:
        client.create_version("fraud", {"lineage": {"seed": "x"}})
    assert caught.value.errors == errors
    assert caught.value.status == 422


def test_an_answer_that_is_not_problem_json_still_raises_a_modelgate_error() -> None:
    html = httpx.Response(502, content=b"<html><body>Bad gateway</body></html>")
    client, _ = make_client(Recorder(html), retries=0)
    with pytest.raises(ModelgateError) as caught:
        client.list_models()
    assert caught.value.status == 502
    assert caught.value.code == "http-502"
    assert caught.value.title == "Bad Gateway"
    assert "Bad gateway" in caught.value.detail
    assert caught.value.problem["status"] == 502


def test_a_refused_connection_is_a_connection_error_with_no_status() -> None:
    client, _ = make_client(Recorder(httpx.ConnectError("[Errno 111] Connection refused")))
    with pytest.raises(ModelgateConnectionError) as caught:
        client.get_model("fraud")
    assert isinstance(caught.value, ModelgateError)
    assert caught.value.status is None
    assert (
        caught.value.detail == f"cannot connect to {BASE}/api/v1/models/fraud: Connection refused"
    )


# Retries --------------------------------------------------------------------------------


def test_get_is_retried_on_503_with_backoff_then_succeeds() -> None:
    recorder = Recorder(
        problem(503, "database-unavailable", "Database unavailable", "down"),
        httpx.Response(503, headers={"Retry-After": "2"}),
        httpx.Response(200, json=MODEL),
    )
    client, sleeps = make_client(recorder, backoff=0.5)
    assert client.get_model("fraud") == MODEL
    assert len(recorder.requests) == 3
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] <= 0.5  # half the cap plus jitter up to the cap
    assert sleeps[1] >= 2.0  # Retry-After honoured


def test_get_gives_up_after_the_configured_retries() -> None:
    recorder = Recorder(httpx.ConnectError("refused"))
    client, sleeps = make_client(recorder, retries=3)
    with pytest.raises(ModelgateConnectionError):
        client.list_promotions(status="pending_approval")
    assert len(recorder.requests) == 4
    assert len(sleeps) == 3
    # Exponential: attempt i waits between half and all of backoff * 2**i.
    for attempt, slept in enumerate(sleeps):
        assert 0.5 * 2**attempt / 2 <= slept <= 0.5 * 2**attempt


def test_500_is_not_retried_even_on_a_get() -> None:
    recorder = Recorder(problem(500, "internal-error", "Internal server error", "boom"))
    client, sleeps = make_client(recorder)
    with pytest.raises(ModelgateError) as caught:
        client.get_model("fraud")
    assert caught.value.status == 500
    assert len(recorder.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize(
    "failure",
    [httpx.Response(503), httpx.ConnectError("refused"), httpx.ReadTimeout("slow")],
    ids=["503", "connect-error", "read-timeout"],
)
def test_post_without_an_idempotency_key_is_never_retried(
    failure: httpx.Response | Exception,
) -> None:
    recorder = Recorder(failure, httpx.Response(200, json={"id": 1, "status": "applied"}))
    client, sleeps = make_client(recorder)
    with pytest.raises(ModelgateError):
        client.approve_promotion(1, comment="ok")
    assert len(recorder.requests) == 1
    assert sleeps == []


def test_post_with_an_idempotency_key_is_retried_with_the_same_key() -> None:
    created = {"model": "fraud", "version": 4}
    recorder = Recorder(
        httpx.ConnectError("reset"),
        httpx.Response(502),
        httpx.Response(201, json=created, headers={"Idempotent-Replayed": "true"}),
    )
    client, sleeps = make_client(recorder)
    result = client.create_version("fraud", {"metrics": []}, idempotency_key="submit-abc")
    assert result.body == created
    assert result.replayed is True
    assert len(recorder.requests) == 3
    assert {r.headers["Idempotency-Key"] for r in recorder.requests} == {"submit-abc"}
    assert len({bytes(b) for b in recorder.bodies}) == 1
    assert len(sleeps) == 2


def test_a_create_that_is_not_replayed_says_so() -> None:
    client, _ = make_client(Recorder(httpx.Response(201, json={"name": "fraud"})))
    result = client.create_model("fraud", primary_metric="accuracy", idempotency_key="k")
    assert result.replayed is False
    assert dict(result.body) == {"name": "fraud"}


def test_delete_is_retried() -> None:
    recorder = Recorder(httpx.Response(504), httpx.Response(200, json={"id": "ab", "name": "t"}))
    client, _ = make_client(recorder)
    assert client.revoke_token("ab")["id"] == "ab"
    assert [r.method for r in recorder.requests] == ["DELETE", "DELETE"]


def test_policy_put_is_sent_once_because_each_put_is_a_new_revision() -> None:
    recorder = Recorder(httpx.Response(503))
    client, _ = make_client(recorder)
    with pytest.raises(ModelgateError):
        client.put_policy("fraud", {"staging": {}})
    assert len(recorder.requests) == 1


# Requests -------------------------------------------------------------------------------


def test_requests_carry_the_token_and_drop_unset_query_parameters() -> None:
    recorder = Recorder(httpx.Response(200, json={"items": [], "next_cursor": None}))
    client, _ = make_client(recorder)
    client.list_versions("fraud", stage="production", limit=5)
    request = recorder.requests[0]
    assert request.headers["Authorization"] == "Bearer mgt_secret"
    assert request.url.path == "/api/v1/models/fraud/versions"
    assert dict(request.url.params) == {"stage": "production", "limit": "5"}


def test_evaluate_and_promotion_payloads() -> None:
    recorder = Recorder(httpx.Response(200, json={"passed": True}))
    client, _ = make_client(recorder)
    client.evaluate("fraud", 3, target="production")
    client.request_promotion("fraud", 3, target="staging", comment="go")
    client.rollback("fraud", reason="INC-1", to_version=2, idempotency_key="rb-1")
    evaluate, promote, rollback = recorder.requests
    assert (evaluate.method, evaluate.url.path) == (
        "POST",
        "/api/v1/models/fraud/versions/3/evaluate",
    )
    assert evaluate.url.params["target"] == "production"
    assert json.loads(promote.content) == {"version": 3, "target": "staging", "comment": "go"}
    assert "Idempotency-Key" not in promote.headers
    assert json.loads(rollback.content) == {"reason": "INC-1", "deep_check": False, "to_version": 2}
    assert rollback.headers["Idempotency-Key"] == "rb-1"


def test_all_items_follows_cursors() -> None:
    pages = {
        None: {"items": [1, 2], "next_cursor": "c1"},
        "c1": {"items": [3], "next_cursor": None},
    }
    assert list(all_items(lambda cursor: pages[cursor])) == [1, 2, 3]  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://h:8080", "http://h:8080/api/v1"),
        ("http://h:8080/", "http://h:8080/api/v1"),
        ("https://h/api/v1/", "https://h/api/v1"),
    ],
)
def test_base_urls_are_normalised(given: str, expected: str) -> None:
    assert normalize_base_url(given) == expected


def test_a_base_url_without_http_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        ModelgateClient("modelgate.example.com", "t")


# Streaming ------------------------------------------------------------------------------


def test_upload_streams_the_file_with_its_sha256_and_restarts_on_a_retry(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10_000  # 2.5 MB: several chunks
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    recorder = Recorder(httpx.Response(503), httpx.Response(200, json={"version": 1}))
    client, _ = make_client(recorder)
    progress: list[tuple[int, int]] = []
    answer = client.upload_artifact(
        "fraud", 1, path, sha256=digest.upper(), progress=lambda d, t: progress.append((d, t)),
        chunk_size=1024 * 1024,
    )  # fmt: skip
    assert dict(answer) == {"version": 1}
    assert len(recorder.requests) == 2
    for request, body in zip(recorder.requests, recorder.bodies, strict=True):
        assert request.method == "PUT"
        assert request.url.path == "/api/v1/models/fraud/versions/1/artifact"
        assert request.headers["X-Artifact-SHA256"] == digest
        assert request.headers["Content-Length"] == str(len(data))
        assert "Transfer-Encoding" not in request.headers
        assert request.headers["Content-Type"] == "application/octet-stream"
        assert body == data
    # Each attempt reports from 0 to the full size.
    assert progress.count((0, len(data))) == 2
    assert progress[-1] == (len(data), len(data))


def test_download_writes_the_file_when_the_sha256_matches(tmp_path: Path) -> None:
    data = b"weights" * 1000
    digest = hashlib.sha256(data).hexdigest()
    client, _ = make_client(
        Recorder(httpx.Response(200, content=data, headers={"X-Artifact-SHA256": digest}))
    )
    dest = tmp_path / "out.bin"
    done = client.download_artifact("fraud", 1, dest)
    assert done == {"path": str(dest), "sha256": digest, "size": len(data)}
    assert dest.read_bytes() == data


def test_a_corrupt_download_leaves_no_file(tmp_path: Path) -> None:
    client, _ = make_client(
        Recorder(httpx.Response(200, content=b"flipped", headers={"X-Artifact-SHA256": "0" * 64}))
    )
    dest = tmp_path / "out.bin"
    with pytest.raises(ModelgateConnectionError) as caught:
        client.download_artifact("fraud", 1, dest)
    assert caught.value.code == "download-corrupt"
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_download_follows_a_redirect_to_the_store_without_the_token(tmp_path: Path) -> None:
    data = b"from the bucket"
    digest = hashlib.sha256(data).hexdigest()
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "modelgate.test":
            return httpx.Response(
                307,
                headers={
                    "Location": "http://bucket.store.test/k?sig=1",
                    "X-Artifact-SHA256": digest,
                },
            )
        return httpx.Response(200, content=data)

    client, _ = make_client(handler)
    done = client.download_artifact("fraud", 1, tmp_path / "a.bin")
    assert done["sha256"] == digest
    assert "Authorization" not in seen[1].headers


def test_audit_export_yields_lines_and_errors_before_the_stream_raise() -> None:
    lines = b'{"id":1}\n{"id":2}\n'
    client, _ = make_client(Recorder(httpx.Response(200, content=lines)))
    assert [json.loads(line) for line in client.export_audit(model="fraud")] == [
        {"id": 1},
        {"id": 2},
    ]
    denied, _ = make_client(Recorder(problem(403, "forbidden", "Not allowed", "auditor only")))
    with pytest.raises(ModelgateError) as caught:
        list(denied.export_audit())
    assert caught.value.status == 403
