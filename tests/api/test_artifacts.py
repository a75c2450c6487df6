"""Artifacts: streamed upload with sha256 and size, content-addressed, immutable, downloads."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.support.api import (
    ADMIN_TOKEN,
    API,
    assert_problem,
    audit_events,
    auth,
    create_model,
    create_version,
    sha256_hex,
)

MIB = 1024 * 1024
StoreContents = Callable[[], list[str]]


def make_bytes(size: int, seed: int = 0) -> bytes:
    """Deterministic, incompressible bytes (a sha256 counter stream)."""
    out = bytearray()
    counter = 0
    block = hashlib.sha256(f"seed-{seed}".encode()).digest()
    while len(out) < size:
        out += hashlib.sha256(block + counter.to_bytes(8, "big")).digest() * 64
        counter += 1
    return bytes(out[:size])


@pytest.fixture
def store_contents(settings: Settings, s3_endpoint_if_any: Any) -> StoreContents:
    """Everything the configured store holds: objects, temp files and unfinished
    multipart uploads (prefixed ``mpu:``), seen behind the service's back."""
    url = settings.artifact_store
    if url.startswith("s3://"):
        bucket = url[len("s3://") :].split("/", 1)[0]
        client = s3_endpoint_if_any

        def s3_listing() -> list[str]:
            found: list[str] = []
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                found += [obj["Key"] for obj in page.get("Contents", [])]
            uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
            found += [f"mpu:{u['Key']}" for u in uploads]
            return sorted(found)

        return s3_listing
    root = Path(url)

    def dir_listing() -> list[str]:
        if not root.exists():
            return []
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    return dir_listing


@pytest.fixture
def s3_endpoint_if_any(request: pytest.FixtureRequest, settings: Settings) -> Any:
    if settings.artifact_store.startswith("s3://"):
        return request.getfixturevalue("s3_client")
    return None


def artifact_url(model: str, version: int) -> str:
    return f"{API}/models/{model}/versions/{version}/artifact"


def upload(
    client: TestClient,
    model: str,
    version: int,
    data: bytes,
    *,
    sha256: str | None = None,
    token: str | None = None,
    chunked: bool = False,
    content_type: str = "application/octet-stream",
) -> httpx.Response:
    headers = {"Content-Type": content_type}
    if sha256 is not None:
        headers["X-Artifact-SHA256"] = sha256
    if token is not None:
        headers.update(auth(token))
    content: bytes | Iterator[bytes] = data
    if chunked:

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(data), 256 * 1024):
                yield data[start : start + 256 * 1024]

        content = chunks()
    return client.put(artifact_url(model, version), content=content, headers=headers)


def sha256_objects(listing: list[str]) -> list[str]:
    return [name for name in listing if "sha256/" in name]


@pytest.mark.parametrize("chunked", [False, True])
def test_upload_and_download_are_byte_identical(
    client: TestClient, store_contents: StoreContents, chunked: bool
) -> None:
    create_model(client, "big")
    create_version(client, "big")
    data = make_bytes(12 * MIB + 12345)  # more than one 8 MiB part
    digest = sha256_hex(data)

    response = upload(
        client, "big", 1, data, sha256=digest, chunked=chunked, content_type="application/x-onnx"
    )
    assert response.status_code == 200, response.text
    artifact = response.json()["artifact"]
    assert artifact["status"] == "verified"
    assert artifact["sha256"] == digest
    assert artifact["size"] == len(data)
    assert artifact["media_type"] == "application/x-onnx"
    assert artifact["uploaded_at"] is not None
    assert client.get(f"{API}/models/big/versions/1").json()["artifact"] == artifact

    download = client.get(artifact_url("big", 1))
    assert download.status_code == 200
    assert download.headers["x-artifact-sha256"] == digest
    assert download.headers["content-length"] == str(len(data))
    assert download.headers["content-type"].startswith("application/x-onnx")
    assert "attachment" in download.headers["content-disposition"]
    assert download.content == data

    objects = sha256_objects(store_contents())
    assert len(objects) == 1
    assert objects[0].endswith(digest)
    assert [n for n in store_contents() if n.startswith("mpu:") or ".tmp" in n] == []

    events = audit_events(client, model="big", action="artifact.uploaded")
    assert len(events) == 1
    assert events[0]["version"] == 1
    assert events[0]["details"]["sha256"] == digest
    assert events[0]["details"]["size"] == len(data)
    assert events[0]["request_id"] == response.headers["x-request-id"]


def test_upload_without_declared_sha256_computes_it(client: TestClient) -> None:
    create_model(client, "m")
    create_version(client, "m")
    data = make_bytes(3 * MIB, seed=1)
    response = upload(client, "m", 1, data)
    assert response.status_code == 200, response.text
    assert response.json()["artifact"]["sha256"] == sha256_hex(data)
    assert response.json()["artifact"]["size"] == len(data)
    assert client.get(artifact_url("m", 1)).content == data


def test_small_artifact_round_trip(client: TestClient) -> None:
    create_model(client, "tiny")
    create_version(client, "tiny")
    response = upload(client, "tiny", 1, b"x")
    assert response.status_code == 200, response.text
    assert client.get(artifact_url("tiny", 1)).content == b"x"


@pytest.mark.parametrize("chunked", [False, True])
def test_declared_sha256_mismatch_is_422_and_nothing_is_kept(
    client: TestClient, store_contents: StoreContents, chunked: bool
) -> None:
    create_model(client, "m")
    create_version(client, "m")
    data = make_bytes(9 * MIB, seed=2)
    wrong = sha256_hex(b"something else")
    assert_problem(
        upload(client, "m", 1, data, sha256=wrong, chunked=chunked), 422, "checksum-mismatch"
    )
    assert store_contents() == []
    version = client.get(f"{API}/models/m/versions/1").json()
    assert version["artifact"]["status"] == "missing"
    assert version["artifact"]["sha256"] is None
    assert audit_events(client, model="m", action="artifact.uploaded") == []
    assert_problem(client.get(artifact_url("m", 1)), 404, "artifact-not-found")
    # The right bytes still go in afterwards.
    assert upload(client, "m", 1, data, sha256=sha256_hex(data)).status_code == 200


def test_version_expectation_refuses_other_bytes(
    client: TestClient, store_contents: StoreContents
) -> None:
    create_model(client, "pinned")
    good = make_bytes(2 * MIB, seed=3)
    bad = make_bytes(2 * MIB, seed=4)
    create_version(client, "pinned", {"artifact": {"sha256": sha256_hex(good)}})

    assert_problem(upload(client, "pinned", 1, bad), 422, "checksum-mismatch")
    assert store_contents() == []
    # A declared digest that contradicts the version's expectation is refused up front.
    assert_problem(
        upload(client, "pinned", 1, bad, sha256=sha256_hex(bad)), 422, "checksum-mismatch"
    )
    assert store_contents() == []
    assert client.get(f"{API}/models/pinned/versions/1").json()["artifact"]["status"] == "missing"

    response = upload(client, "pinned", 1, good)
    assert response.status_code == 200, response.text
    assert response.json()["artifact"]["status"] == "verified"
    assert response.json()["artifact"]["expected_sha256"] == sha256_hex(good)


def test_reupload_same_bytes_is_noop_other_bytes_409(
    client: TestClient, store_contents: StoreContents
) -> None:
    create_model(client, "immutable")
    create_version(client, "immutable")
    data = make_bytes(1 * MIB, seed=5)
    first = upload(client, "immutable", 1, data)
    assert first.status_code == 200, first.text

    again = upload(client, "immutable", 1, data)
    assert again.status_code == 200, again.text
    assert again.json()["artifact"] == first.json()["artifact"]
    again_declared = upload(client, "immutable", 1, data, sha256=sha256_hex(data))
    assert again_declared.status_code == 200
    assert again_declared.json()["artifact"] == first.json()["artifact"]
    assert len(audit_events(client, model="immutable", action="artifact.uploaded")) == 1

    other = make_bytes(1 * MIB, seed=6)
    assert_problem(upload(client, "immutable", 1, other), 409, "artifact-conflict")
    # With the digest declared the conflict is found before a byte is stored.
    assert_problem(
        upload(client, "immutable", 1, other, sha256=sha256_hex(other)), 409, "artifact-conflict"
    )
    assert client.get(artifact_url("immutable", 1)).content == data
    assert (
        client.get(f"{API}/models/immutable/versions/1").json()["artifact"]
        == (first.json()["artifact"])
    )


def test_identical_bytes_on_two_versions_are_stored_once(
    client: TestClient, store_contents: StoreContents
) -> None:
    create_model(client, "a")
    create_model(client, "b")
    create_version(client, "a")
    create_version(client, "a")
    create_version(client, "b")
    data = make_bytes(6 * MIB, seed=7)
    digest = sha256_hex(data)
    assert upload(client, "a", 1, data).status_code == 200
    assert upload(client, "a", 2, data, sha256=digest).status_code == 200
    assert upload(client, "b", 1, data, chunked=True).status_code == 200
    assert sha256_objects(store_contents()) == [n for n in store_contents() if n.endswith(digest)]
    assert len(store_contents()) == 1
    for model, number in (("a", 1), ("a", 2), ("b", 1)):
        assert client.get(artifact_url(model, number)).content == data
    dedup = [e["details"]["deduplicated"] for e in audit_events(client, action="artifact.uploaded")]
    assert dedup == [False, True, True]


def test_download_without_artifact_is_404(client: TestClient) -> None:
    create_model(client, "empty")
    create_version(client, "empty")
    assert_problem(client.get(artifact_url("empty", 1)), 404, "artifact-not-found")
    assert_problem(client.get(artifact_url("empty", 2)), 404, "version-not-found")
    assert_problem(client.get(artifact_url("nothing", 1)), 404, "model-not-found")


def test_reader_downloads_but_cannot_upload(
    client: TestClient, make_token: Callable[..., str], store_contents: StoreContents
) -> None:
    create_model(client, "shared")
    create_version(client, "shared")
    create_version(client, "shared")
    reader = make_token("reader")
    submitter = make_token("submitter")
    data = make_bytes(MIB, seed=8)
    assert_problem(upload(client, "shared", 1, data, token=reader), 403, "forbidden")
    assert store_contents() == []
    assert upload(client, "shared", 1, data, token=submitter).status_code == 200
    download = client.get(artifact_url("shared", 1), headers=auth(reader))
    assert download.status_code == 200
    assert download.content == data
    no_token = client.put(artifact_url("shared", 2), content=data, headers={"Authorization": ""})
    assert_problem(no_token, 401, "unauthenticated")


def test_empty_body_is_422(client: TestClient, store_contents: StoreContents) -> None:
    create_model(client, "m")
    create_version(client, "m")
    assert_problem(upload(client, "m", 1, b""), 422)
    assert store_contents() == []
    assert client.get(f"{API}/models/m/versions/1").json()["artifact"]["status"] == "missing"


@pytest.mark.parametrize("header", ["xyz", "0" * 63, "g" * 64])
def test_malformed_declared_sha256_is_422(client: TestClient, header: str) -> None:
    create_model(client, "m")
    create_version(client, "m")
    problem = assert_problem(upload(client, "m", 1, b"data", sha256=header), 422)
    assert ["header", "X-Artifact-SHA256"] in [e["loc"] for e in problem["errors"]]


def test_uppercase_declared_sha256_is_accepted(client: TestClient) -> None:
    create_model(client, "m")
    create_version(client, "m")
    data = b"case-insensitive digest"
    response = upload(client, "m", 1, data, sha256=sha256_hex(data).upper())
    assert response.status_code == 200, response.text
    assert response.json()["artifact"]["sha256"] == sha256_hex(data)


@pytest.mark.parametrize("chunked", [False, True])
def test_artifact_over_the_limit_is_413_and_nothing_kept(
    settings: Settings, store_contents: StoreContents, chunked: bool
) -> None:
    limited = settings.model_copy(update={"max_artifact_bytes": 2 * MIB})
    with TestClient(create_app(limited), base_url="http://modelgate.test") as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        create_model(client, "m")
        create_version(client, "m")
        data = make_bytes(3 * MIB, seed=9)
        assert_problem(upload(client, "m", 1, data, chunked=chunked), 413, "payload-too-large")
        assert [n for n in store_contents() if "sha256/" in n or n.startswith("mpu:")] == []
        assert client.get(f"{API}/models/m/versions/1").json()["artifact"]["status"] == "missing"
        assert upload(client, "m", 1, data[: 2 * MIB]).status_code == 200


def test_refused_uploads_are_answered_before_the_body_is_read(
    client: TestClient, store_contents: StoreContents, make_token: Callable[..., str]
) -> None:
    """An endless body: the answer can only come if the server never reads it."""
    create_model(client, "known")
    create_version(client, "known")
    pinned = sha256_hex(b"the expected bytes")
    create_version(client, "known", {"artifact": {"sha256": pinned}})
    reader = make_token("reader")
    app = client.app
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        chunk = b"\0" * (64 * 1024)
        while pulled < 10_000:  # a 625 MiB ceiling, should the server read after all
            pulled += 1
            yield chunk

    async def send(path: str, headers: dict[str, str]) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return await http.put(
                path,
                content=endless(),
                headers={"Content-Type": "application/octet-stream", **headers},
            )

    admin = auth(ADMIN_TOKEN)
    other = sha256_hex(b"other bytes")
    for path, headers, status, code in [
        (artifact_url("known", 7), admin, 404, "version-not-found"),
        (artifact_url("unknown", 1), admin, 404, "model-not-found"),
        (artifact_url("known", 1), {}, 401, "unauthenticated"),
        (artifact_url("known", 1), auth(reader), 403, "forbidden"),
        (artifact_url("known", 2), {**admin, "X-Artifact-SHA256": other}, 422, "checksum-mismatch"),
        (artifact_url("known", 1), {**admin, "X-Artifact-SHA256": "nothex"}, 422, None),
    ]:
        pulled = 0
        response = anyio.run(send, path, headers)
        assert_problem(response, status, code)
        assert pulled <= 1, f"{path}: the server read {pulled} chunks of a body it refuses"
    assert store_contents() == []


def test_local_store_files_are_read_only(settings: Settings, client: TestClient) -> None:
    if settings.artifact_store.startswith("s3://"):
        pytest.skip("directory store only")
    create_model(client, "m")
    create_version(client, "m")
    data = b"immutable bytes"
    assert upload(client, "m", 1, data).status_code == 200
    digest = sha256_hex(data)
    path = Path(settings.artifact_store) / "sha256" / digest[:2] / digest
    assert path.read_bytes() == data
    assert not os.access(path, os.W_OK) or os.geteuid() == 0
    assert path.stat().st_mode & 0o222 == 0


def test_download_redirects_to_a_presigned_url_on_s3(
    client: TestClient, settings: Settings
) -> None:
    create_model(client, "presigned")
    create_version(client, "presigned")
    data = make_bytes(2 * MIB, seed=10)
    assert upload(client, "presigned", 1, data).status_code == 200
    response = client.get(
        artifact_url("presigned", 1), params={"redirect": "true"}, follow_redirects=False
    )
    if not settings.artifact_store.startswith("s3://"):
        # The directory store cannot serve clients itself: the bytes come through the API.
        assert response.status_code == 200
        assert response.content == data
        return
    assert response.status_code == 307, response.text
    assert response.headers["x-artifact-sha256"] == sha256_hex(data)
    location = response.headers["location"]
    assert location.startswith(settings.s3_endpoint_url or "")
    fetched = httpx.get(location, timeout=30)
    assert fetched.status_code == 200
    assert fetched.content == data
    # Without asking, the download streams through the server (the default setting).
    assert client.get(artifact_url("presigned", 1), follow_redirects=False).status_code == 200


def test_artifact_gone_from_the_store_is_a_problem_not_a_broken_200(
    client: TestClient, settings: Settings, s3_endpoint_if_any: Any
) -> None:
    create_model(client, "vanished")
    create_version(client, "vanished")
    data = make_bytes(MIB, seed=11)
    assert upload(client, "vanished", 1, data).status_code == 200
    digest = sha256_hex(data)
    if settings.artifact_store.startswith("s3://"):
        bucket, _, prefix = settings.artifact_store[len("s3://") :].partition("/")
        s3_endpoint_if_any.delete_object(Bucket=bucket, Key=f"{prefix}/sha256/{digest}")
    else:
        path = Path(settings.artifact_store) / "sha256" / digest[:2] / digest
        path.chmod(0o644)
        path.unlink()
    problem = assert_problem(client.get(artifact_url("vanished", 1)), 404, "artifact-not-found")
    assert "store" in problem["detail"]


def test_client_disconnect_mid_upload_keeps_nothing(
    client: TestClient, store_contents: StoreContents
) -> None:
    create_model(client, "dropped")
    create_version(client, "dropped")
    app = client.app
    chunk = make_bytes(4 * MIB, seed=12)
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": True} for _ in range(3)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await anyio.sleep(0.05)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    path = artifact_url("dropped", 1)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"modelgate.test"),
            (b"authorization", f"Bearer {ADMIN_TOKEN}".encode()),
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(64 * MIB).encode()),
        ],
        "client": ("127.0.0.1", 12345),
        "server": ("modelgate.test", 80),
    }

    async def call() -> None:
        await app(scope, receive, send)  # type: ignore[arg-type]

    anyio.run(call)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert all(m["status"] < 500 for m in starts), starts
    assert store_contents() == []
    version = client.get(f"{API}/models/dropped/versions/1").json()
    assert version["artifact"]["status"] == "missing"
    assert audit_events(client, model="dropped", action="artifact.uploaded") == []
