"""Behaviour every artifact store must share; each test runs on the local and S3 store."""

from __future__ import annotations

import base64
import hashlib
import io
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import anyio
import pytest

from app.errors import ArtifactNotFound, ChecksumMismatch, PayloadTooLarge, ValidationFailed
from app.storage import key_for, store_file, store_stream
from app.storage.integrity import REHASHED, STORE_CHECKSUM, verify_artifact
from tests.storage.cases import PART, StoreCase

pytestmark = pytest.mark.anyio


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def chunked(data: bytes, size: int = 64 * 1024 + 7) -> AsyncIterator[bytes]:
    # An odd chunk size so that chunks straddle part boundaries.
    for start in range(0, len(data), size):
        yield data[start : start + size]


def read_all(case: StoreCase, key: str) -> bytes:
    return b"".join(case.store.open(key, chunk_size=1 << 20))


@pytest.mark.parametrize("size", [1, PART, 2 * PART + 123], ids=["1B", "part", "2parts+123"])
async def test_round_trip_is_byte_identical(case: StoreCase, size: int) -> None:
    data = payload(size)

    stored = await store_stream(case.store, chunked(data))

    assert stored.sha256 == sha(data)
    assert stored.size == size
    assert stored.key == f"sha256/{sha(data)}" == case.store.key_for(sha(data))
    assert stored.deduplicated is False
    assert read_all(case, stored.key) == data
    assert case.store.exists(stored.key)
    assert case.store.size(stored.key) == size
    # Only the object itself: no temp file, temp object or pending multipart upload.
    assert case.leftovers() == [case.raw_name(stored.key)]
    if case.kind == "s3":
        assert stored.etag == case.etag(stored.key)
    else:
        assert stored.etag is None


@pytest.mark.parametrize("size", [7, 2 * PART + 5], ids=["small", "multipart"])
async def test_expected_digest_upload_goes_to_final_key(case: StoreCase, size: int) -> None:
    data = payload(size, seed=3)

    stored = await store_stream(case.store, chunked(data), expected_sha256=sha(data).upper())

    assert stored.sha256 == sha(data)
    assert stored.deduplicated is False
    assert read_all(case, stored.key) == data
    assert case.leftovers() == [case.raw_name(stored.key)]


async def test_empty_body_is_rejected_and_leaves_nothing(case: StoreCase) -> None:
    with pytest.raises(ValidationFailed, match="artifact body is empty"):
        await store_stream(case.store, chunked(b""))
    assert case.leftovers() == []


@pytest.mark.parametrize("expected", [False, True], ids=["unknown-digest", "known-digest"])
async def test_identical_bytes_are_stored_once(case: StoreCase, expected: bool) -> None:
    data = payload(PART + 99, seed=1)
    first = await store_stream(case.store, chunked(data))

    second = await store_stream(
        case.store, chunked(data), expected_sha256=sha(data) if expected else None
    )

    assert first.deduplicated is False
    assert second.deduplicated is True
    assert second.key == first.key
    assert second.etag == first.etag
    assert case.leftovers() == [case.raw_name(first.key)]
    assert read_all(case, first.key) == data


async def test_concurrent_uploads_of_same_bytes_store_one_object(case: StoreCase) -> None:
    data = payload(PART + 1, seed=2)
    results = []

    async def upload() -> None:
        results.append(await store_stream(case.store, chunked(data)))

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(upload)

    assert {r.key for r in results} == {f"sha256/{sha(data)}"}
    assert any(not r.deduplicated for r in results)
    assert case.leftovers() == [case.raw_name(results[0].key)]
    assert read_all(case, results[0].key) == data


@pytest.mark.parametrize("size", [1000, 2 * PART + 1], ids=["small", "multipart"])
async def test_checksum_mismatch_leaves_nothing(case: StoreCase, size: int) -> None:
    data = payload(size, seed=4)
    wrong = sha(b"something else")

    with pytest.raises(ChecksumMismatch) as raised:
        await store_stream(case.store, chunked(data), expected_sha256=wrong)

    assert sha(data) in raised.value.detail
    assert wrong in raised.value.detail
    assert case.leftovers() == []
    assert not case.store.exists(key_for(wrong))
    assert not case.store.exists(key_for(sha(data)))


async def test_checksum_mismatch_against_existing_object_keeps_it(case: StoreCase) -> None:
    data = payload(100, seed=5)
    stored = await store_stream(case.store, chunked(data))

    with pytest.raises(ChecksumMismatch):
        await store_stream(case.store, chunked(b"x" + data[1:]), expected_sha256=stored.sha256)

    assert case.leftovers() == [case.raw_name(stored.key)]
    assert read_all(case, stored.key) == data


async def test_max_bytes_stops_early_and_leaves_nothing(case: StoreCase) -> None:
    data = payload(3 * PART, seed=6)
    consumed = 0

    async def counting() -> AsyncIterator[bytes]:
        nonlocal consumed
        async for chunk in chunked(data):
            consumed += len(chunk)
            yield chunk

    with pytest.raises(PayloadTooLarge, match=f"limit of {PART + 5} bytes"):
        await store_stream(case.store, counting(), max_bytes=PART + 5)

    assert consumed < PART + 5 + 64 * 1024 + 7  # stopped at the chunk that crossed the limit
    assert case.leftovers() == []


async def test_max_bytes_allows_exact_size(case: StoreCase) -> None:
    data = payload(PART, seed=7)
    stored = await store_stream(case.store, chunked(data), max_bytes=PART)
    assert stored.size == PART


class ClientGone(Exception):
    pass


async def test_iterator_failure_mid_stream_aborts(case: StoreCase) -> None:
    data = payload(2 * PART + 10, seed=8)

    async def breaks_off() -> AsyncIterator[bytes]:
        async for chunk in chunked(data[: 2 * PART]):
            yield chunk
        raise ClientGone("client disconnected")

    with pytest.raises(ClientGone):
        await store_stream(case.store, breaks_off())

    # Two full parts were handed over before the failure; all of it is gone.
    assert case.leftovers() == []


async def test_cancellation_mid_stream_aborts(case: StoreCase) -> None:
    data = payload(PART + 10, seed=9)
    sent_a_part = anyio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        async for chunk in chunked(data):
            yield chunk
        sent_a_part.set()
        await anyio.sleep(3600)  # a client that stops sending
        yield b""

    with anyio.move_on_after(30) as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_when_stalled() -> None:
                await sent_a_part.wait()
                await anyio.sleep(0.2)  # let the first part reach the store
                tg.cancel_scope.cancel()

            tg.start_soon(cancel_when_stalled)
            await store_stream(case.store, stalls())

    assert not scope.cancelled_caught, "store_stream did not react to cancellation"
    assert case.leftovers() == []


async def test_verify_checks_content_and_says_how(case: StoreCase) -> None:
    data = payload(PART + 3, seed=10)
    stored = await store_stream(case.store, chunked(data))
    expect: dict[str, Any] = {"sha256": stored.sha256, "size": stored.size, "etag": stored.etag}

    default = verify_artifact(case.store, key=stored.key, **expect)
    forced = verify_artifact(case.store, key=stored.key, **expect, rehash=True)

    # More than one part: S3 keeps no full-object sha256 of it (a multipart checksum is
    # one of the parts' checksums), the directory none at all. Both re-hash.
    for check in (default, forced):
        assert (check.present, check.intact, check.method) == (True, True, REHASHED)
    for check in (default, forced):
        assert check.sha256_observed == stored.sha256
        assert check.size_observed == stored.size
    wrong_size = verify_artifact(case.store, key=stored.key, sha256=stored.sha256, size=1)
    assert (wrong_size.intact, wrong_size.method, wrong_size.sha256_observed) == (
        False,
        "size",
        None,
    )
    assert wrong_size.detail == f"size {stored.size} != recorded 1"


async def test_small_object_on_s3_is_verified_by_the_store_checksum(case: StoreCase) -> None:
    data = payload(1000, seed=14)
    stored = await store_stream(case.store, chunked(data))
    info = case.store.stat(stored.key)
    assert info is not None
    assert info.size == 1000

    check = verify_artifact(
        case.store, key=stored.key, sha256=stored.sha256, size=stored.size, etag=stored.etag
    )

    assert check.intact
    if case.kind == "s3":
        # Sent as ChecksumSHA256 with the PUT, read back with HEAD ChecksumMode=ENABLED.
        assert info.checksum_sha256 == stored.sha256
        assert (check.method, check.sha256_observed) == (STORE_CHECKSUM, stored.sha256)
    else:
        assert info.checksum_sha256 is None
        assert (check.method, check.sha256_observed) == (REHASHED, stored.sha256)


@pytest.mark.parametrize("size", [1000, PART + 3])
async def test_verify_detects_overwritten_bytes(case: StoreCase, size: int) -> None:
    data = payload(size, seed=11)
    stored = await store_stream(case.store, chunked(data))
    tampered = bytes([data[0] ^ 0xFF]) + data[1:]
    case.overwrite_raw(stored.key, tampered)

    for rehash in (False, True):
        check = verify_artifact(
            case.store,
            key=stored.key,
            sha256=stored.sha256,
            size=stored.size,
            etag=stored.etag,
            rehash=rehash,
        )
        assert check.present
        assert not check.intact
        assert check.method == REHASHED
        assert check.sha256_observed == sha(tampered)
        assert sha(tampered) in check.detail


async def test_a_rewrite_carrying_the_old_checksum_is_still_rehashed(case: StoreCase) -> None:
    """moto accepts a ChecksumSHA256 that does not match the body (AWS would not): an
    object rewritten since the upload (another ETag) is re-hashed, whatever it claims."""
    if case.kind != "s3":
        pytest.skip("only S3 keeps a checksum of its own")
    data = payload(1000, seed=15)
    stored = await store_stream(case.store, chunked(data))
    tampered = bytes([data[0] ^ 0xFF]) + data[1:]
    claimed = base64.b64encode(bytes.fromhex(stored.sha256)).decode()
    case.client.put_object(
        Bucket=case.bucket, Key=case.raw_name(stored.key), Body=tampered, ChecksumSHA256=claimed
    )

    check = verify_artifact(
        case.store, key=stored.key, sha256=stored.sha256, size=stored.size, etag=stored.etag
    )

    assert not check.intact
    assert (check.method, check.sha256_observed) == (REHASHED, sha(tampered))


async def test_verify_missing_object(case: StoreCase) -> None:
    data = payload(10, seed=12)
    stored = await store_stream(case.store, chunked(data))
    case.store.delete(stored.key)

    for rehash in (False, True):
        check = verify_artifact(
            case.store, key=stored.key, sha256=stored.sha256, size=10, rehash=rehash
        )
        assert (check.present, check.intact, check.method, check.sha256_observed) == (
            False,
            False,
            "none",
            None,
        )
    assert case.leftovers() == []


async def test_keys_lists_published_objects_only(case: StoreCase) -> None:
    first = await store_stream(case.store, chunked(payload(10, seed=16)))
    second = await store_stream(case.store, chunked(payload(PART + 1, seed=17)))

    assert sorted(case.store.keys()) == sorted([first.key, second.key])


async def test_reupload_repairs_damaged_object(case: StoreCase) -> None:
    data = payload(PART + 50, seed=13)
    stored = await store_stream(case.store, chunked(data))
    case.overwrite_raw(stored.key, data[:100])

    repaired = await store_stream(case.store, chunked(data))

    assert repaired.deduplicated is False
    assert read_all(case, stored.key) == data
    assert verify_artifact(
        case.store, key=stored.key, sha256=stored.sha256, size=stored.size, rehash=True
    ).intact


def test_missing_object(case: StoreCase) -> None:
    key = key_for("0" * 64)
    with pytest.raises(ArtifactNotFound):
        case.store.open(key)  # raises before any iteration
    assert case.store.size(key) is None
    assert case.store.exists(key) is False
    case.store.delete(key)  # deleting what is not there is fine


@pytest.mark.parametrize(
    "bad", ["", "abc", "A" * 64, "g" * 64, "0" * 63, "0" * 65, "../" + "0" * 61, " " + "0" * 63]
)
def test_key_for_rejects_non_digests(case: StoreCase, bad: str) -> None:
    with pytest.raises(ValueError, match="sha256"):
        case.store.key_for(bad)


@pytest.mark.parametrize(
    "key",
    ["../../etc/passwd", "/etc/passwd", "sha256/../x", "uploads/abc", "sha256/" + "A" * 64, "x"],
)
def test_store_methods_reject_foreign_keys(case: StoreCase, key: str) -> None:
    for call in (
        lambda: case.store.exists(key),
        lambda: case.store.open(key),
        lambda: case.store.size(key),
        lambda: case.store.delete(key),
        lambda: case.store.stat(key),
        lambda: case.store.presigned_url(key, expires_seconds=60),
    ):
        with pytest.raises(ValueError, match="not an artifact key"):
            call()


def test_store_file_round_trip_and_mismatch(case: StoreCase) -> None:
    data = payload(2 * PART + 1, seed=14)

    class Trickle(io.RawIOBase):
        """A pipe-like reader that returns fewer bytes than asked for."""

        def __init__(self) -> None:
            self.inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            return self.inner.read(min(size, 100_000) if size > 0 else size)

    stored = store_file(case.store, Trickle(), expected_sha256=sha(data))  # type: ignore[arg-type]
    assert stored.sha256 == sha(data)
    assert read_all(case, stored.key) == data

    with pytest.raises(ChecksumMismatch):
        store_file(case.store, io.BytesIO(b"other bytes"), expected_sha256=sha(data + b"!"))
    with pytest.raises(PayloadTooLarge):
        store_file(case.store, io.BytesIO(payload(PART + 1)), max_bytes=PART)
    with pytest.raises(ValidationFailed):
        store_file(case.store, io.BytesIO(b""))
    assert case.leftovers() == [case.raw_name(stored.key)]


def test_upload_contract(case: StoreCase) -> None:
    data = b"short"
    upload = case.store.begin_upload()
    upload.write_part(data)
    with pytest.raises(ValueError, match="only the last part"):
        upload.write_part(payload(PART))
    stored = upload.complete(sha(data), len(data))
    upload.abort()  # after complete: a no-op, the object stays
    upload.abort()
    assert read_all(case, stored.key) == data

    failed = case.store.begin_upload()
    failed.write_part(b"abc")
    with pytest.raises(ValueError, match="size"):
        failed.complete(sha(b"abc"), 4)
    failed.abort()
    assert case.leftovers() == [case.raw_name(stored.key)]


def test_purge_stale_uploads(case: StoreCase) -> None:
    interrupted = case.store.begin_upload()
    interrupted.write_part(payload(PART))  # a temp file, or a multipart upload in progress
    assert case.leftovers() != []

    if case.kind == "local":
        # moto reports every multipart upload as initiated in 2010, so on S3 only the
        # "stale" half of this check means anything.
        assert case.store.purge_stale_uploads(timedelta(hours=1)) == 0
    assert case.store.purge_stale_uploads(timedelta(seconds=-1)) == 1

    assert case.leftovers() == []
    interrupted.abort()  # its leftovers are already gone; still fine


def test_presigned_url(case: StoreCase) -> None:
    data = payload(10, seed=15)
    stored = store_file(case.store, io.BytesIO(data))
    url = case.store.presigned_url(stored.key, expires_seconds=60)
    if case.kind == "local":
        assert url is None
    else:
        assert url is not None
        assert "X-Amz-Signature" in url


def test_check_passes(case: StoreCase) -> None:
    case.store.check()
    assert case.leftovers() == []  # the probe cleans up after itself
