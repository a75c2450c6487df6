"""What only the S3 store does: faults of the endpoint, presigned URLs, the copy path."""

from __future__ import annotations

import hashlib
import io
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import anyio
import boto3
import httpx
import pytest

from app.errors import StorageUnavailable
from app.storage import S3Store, key_for, store_file, store_stream
from app.storage.integrity import REHASHED, verify_artifact
from tests.storage.cases import PART, StoreCase
from tests.support.s3server import MotoServer, free_port, start_moto_server

DIGEST = "0" * 64


def s3_store(endpoint_url: str, bucket: str, prefix: str = "") -> S3Store:
    return S3Store(bucket, prefix, endpoint_url=endpoint_url, region="us-east-1", part_size=PART)


@pytest.fixture
def dead_endpoint() -> str:
    """A loopback port with nothing listening: every connection is refused."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A port that accepts connections (into the backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_refused_endpoint_is_unavailable_quickly(dead_endpoint: str) -> None:
    store = s3_store(dead_endpoint, "some-bucket")
    calls: dict[str, Callable[[], object]] = {
        "check": store.check,
        "exists": lambda: store.exists(key_for(DIGEST)),
        "size": lambda: store.size(key_for(DIGEST)),
        "open": lambda: store.open(key_for(DIGEST)),
        "stat": lambda: store.stat(key_for(DIGEST)),
        "delete": lambda: store.delete(key_for(DIGEST)),
        "upload": lambda: store_file(store, io.BytesIO(b"x" * (PART + 1))),
        "upload-known-digest": lambda: store_file(
            store, io.BytesIO(b"x"), expected_sha256=hashlib.sha256(b"x").hexdigest()
        ),
    }
    for name, call in calls.items():
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="Could not connect") as raised:
            call()
        assert time.monotonic() - started < 10, name
        assert dead_endpoint in raised.value.detail


def test_silent_endpoint_fails_the_readiness_probe_quickly(silent_endpoint: str) -> None:
    store = s3_store(silent_endpoint, "some-bucket")
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="timeout"):
        store.check()
    assert time.monotonic() - started < 10


def test_missing_bucket(moto_server: MotoServer) -> None:
    store = s3_store(moto_server.endpoint_url, "no-such-bucket-here")
    with pytest.raises(StorageUnavailable, match="bucket no-such-bucket-here does not exist"):
        store.check()
    with pytest.raises(StorageUnavailable, match="does not exist"):
        store_file(store, io.BytesIO(b"x" * (PART + 1)))


def test_missing_credentials(
    moto_server: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = s3_store(moto_server.endpoint_url, bucket)
    with pytest.raises(StorageUnavailable, match="credentials"):
        store.check()


@pytest.mark.anyio
async def test_store_killed_mid_upload(caplog: pytest.LogCaptureFixture) -> None:
    data = b"\x01" * PART
    with start_moto_server() as server:
        admin = boto3.client("s3", endpoint_url=server.endpoint_url)
        admin.create_bucket(Bucket="victim")
        store = s3_store(server.endpoint_url, "victim")

        async def body() -> AsyncIterator[bytes]:
            yield data  # the first part goes up while the store is alive
            for _ in range(50):
                await anyio.sleep(0.05)
                if admin.list_multipart_uploads(Bucket="victim").get("Uploads"):
                    break
            await anyio.to_thread.run_sync(server.kill)
            yield data
            yield data

        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match=r"UploadPart failed .*Could not connect"):
            await store_stream(store, body())
        assert time.monotonic() - started < 15
        # The abort could not reach the store either: logged, not raised over the
        # original error, and left for purge_stale_uploads().
        assert "could not clean up aborted upload" in caplog.text


def test_presigned_url_downloads_the_bytes(s3_case: StoreCase) -> None:
    data = b"presigned bytes"
    stored = store_file(s3_case.store, io.BytesIO(data))

    url = s3_case.store.presigned_url(stored.key, expires_seconds=60, filename='modèle "v1".bin')

    assert url is not None
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == data
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="mod_le _v1_.bin"')
    assert "filename*=UTF-8''mod%C3%A8le%20%22v1%22.bin" in disposition


def test_presigned_url_expiry_bounds(s3_case: StoreCase) -> None:
    for seconds in (0, 7 * 24 * 3600 + 1):
        with pytest.raises(ValueError, match="expires_seconds"):
            s3_case.store.presigned_url(key_for(DIGEST), expires_seconds=seconds)


def test_objects_live_under_the_prefix(s3_case: StoreCase) -> None:
    stored = store_file(s3_case.store, io.BytesIO(b"abc"))
    assert s3_case.leftovers() == [f"models/sha256/{stored.sha256}"]
    assert s3_case.store.describe() == (
        f"s3://{s3_case.bucket}/models (endpoint {s3_case.store.endpoint_url})"  # type: ignore[attr-defined]
    )


def test_empty_prefix(moto_server: MotoServer, s3_admin: Any, bucket: str) -> None:
    store = s3_store(moto_server.endpoint_url, bucket, "")
    data = b"y" * (PART + 1)
    stored = store_file(store, io.BytesIO(data))
    assert store.describe() == f"s3://{bucket} (endpoint {moto_server.endpoint_url})"
    keys = [o["Key"] for o in s3_admin.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [f"sha256/{stored.sha256}"]
    assert b"".join(store.open(stored.key)) == data


def test_objects_over_the_copy_object_limit_use_multipart_copy(s3_case: StoreCase) -> None:
    store = s3_case.store
    assert isinstance(store, S3Store)
    store.single_copy_limit = PART  # stands in for S3's 5 GiB CopyObject limit
    data = bytes(range(256)) * ((2 * PART + 123) // 256) + b"tail"

    stored = store_file(store, io.BytesIO(data))

    assert b"".join(store.open(stored.key)) == data
    assert stored.etag is not None
    assert stored.etag.endswith("-1")  # written by UploadPartCopy, not CopyObject
    assert s3_case.leftovers() == [s3_case.raw_name(stored.key)]


def test_purge_spares_other_applications(s3_case: StoreCase, s3_admin: Any) -> None:
    foreign = s3_admin.create_multipart_upload(Bucket=s3_case.bucket, Key="other-app/file")
    ours = s3_case.store.begin_upload()
    ours.write_part(b"z" * PART)

    assert s3_case.store.purge_stale_uploads(timedelta(seconds=-1)) == 1

    assert s3_case.leftovers() == ["mpu:other-app/file"]
    s3_admin.abort_multipart_upload(
        Bucket=s3_case.bucket, Key="other-app/file", UploadId=foreign["UploadId"]
    )


def test_part_size_below_the_s3_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="part size"):
        S3Store("bucket", part_size=PART - 1)


@pytest.mark.parametrize("size", [10, 2 * PART + 1], ids=["put", "multipart"])
def test_losing_a_race_to_the_same_bytes_is_deduplication(
    s3_case: StoreCase, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    store = s3_case.store
    assert isinstance(store, S3Store)
    data = bytes([7]) * size
    digest = hashlib.sha256(data).hexdigest()
    first = store_file(store, io.BytesIO(data))
    real_head = store._head
    calls: list[str] = []

    def head_before_the_other_upload_finished(name: str) -> Any:
        # The first two existence checks (begin_upload, complete) miss the object, as
        # if the other upload landed just after them; the write then meets
        # If-None-Match: * and S3 answers 412.
        calls.append(name)
        return None if len(calls) <= 2 else real_head(name)

    monkeypatch.setattr(store, "_head", head_before_the_other_upload_finished)
    second = store_file(store, io.BytesIO(data), expected_sha256=digest)

    assert len(calls) == 3
    assert second.deduplicated is True
    assert second.etag == first.etag
    assert s3_case.leftovers() == [s3_case.raw_name(first.key)]


def test_rewritten_object_with_same_bytes_is_still_intact(s3_case: StoreCase) -> None:
    data = bytes(range(256)) * (PART // 256) + b"!"
    digest = hashlib.sha256(data).hexdigest()
    # Straight to the final key as a multipart upload: an ETag ending in "-2".
    stored = store_file(s3_case.store, io.BytesIO(data), expected_sha256=digest)
    s3_case.overwrite_raw(stored.key, data)  # a single-part PUT: a plain MD5 ETag
    assert s3_case.etag(stored.key) != stored.etag

    result = verify_artifact(
        s3_case.store, key=stored.key, sha256=stored.sha256, size=stored.size, etag=stored.etag
    )

    assert result.intact
    assert result.method == REHASHED
    assert result.sha256_observed == stored.sha256
