"""Several parts of one upload in flight to S3 at once (store.parts_in_flight).

The parts are hashed in stream order and completed in part-number order whatever
order they finish in; at most ``parts_in_flight`` are sent at once and at most one
more buffer is being filled; a failing part stops the upload, waits for the parts
still on their way and aborts, so nothing is left in the bucket.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
from botocore.exceptions import EndpointConnectionError
from fastapi.testclient import TestClient

from app.errors import StorageUnavailable
from app.main import create_app
from app.settings import Settings
from app.storage import LocalDirectoryStore, S3Store, store_stream, streaming
from app.storage.factory import open_store
from app.storage.s3 import DEFAULT_PARTS_IN_FLIGHT
from tests.storage.cases import PART, StoreCase
from tests.support.s3server import MotoServer

pytestmark = pytest.mark.anyio


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def chunked(data: bytes, size: int = 256 * 1024 + 3) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


class PartSpy:
    """Wraps the store's UploadPart and AbortMultipartUpload calls: records how many
    parts were in flight at once, which buffers were sent, and in which order calls
    started and ended; ``delay`` and ``fail`` shape each part's call."""

    def __init__(
        self,
        store: S3Store,
        monkeypatch: pytest.MonkeyPatch,
        *,
        delay: Callable[[int], float] = lambda number: 0.0,
        fail: Callable[[int, int], bool] = lambda number, attempt: False,
    ) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.events: list[tuple[str, int]] = []
        self.buffers: dict[int, Any] = {}
        """id -> buffer, every distinct buffer object sent (kept alive, so ids stay unique)."""
        self.attempts: dict[int, int] = {}
        self.starts = threading.Semaphore(0)
        """Released once per part call started."""
        real_upload_part = store._data.upload_part
        real_abort = store._control.abort_multipart_upload

        def upload_part(**kwargs: Any) -> Any:
            number = kwargs["PartNumber"]
            body = kwargs["Body"]
            with self.lock:
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
                self.events.append(("start", number))
                self.buffers[id(body)] = body
                attempt = self.attempts[number] = self.attempts.get(number, 0) + 1
            self.starts.release()
            try:
                time.sleep(delay(number))
                if fail(number, attempt):
                    raise EndpointConnectionError(endpoint_url=store.endpoint_url)
                return real_upload_part(**kwargs)
            finally:
                with self.lock:
                    self.in_flight -= 1
                    self.events.append(("end", number))

        def abort_multipart_upload(**kwargs: Any) -> Any:
            with self.lock:
                self.events.append(("abort", 0))
            return real_abort(**kwargs)

        monkeypatch.setattr(store._data, "upload_part", upload_part)
        monkeypatch.setattr(store._control, "abort_multipart_upload", abort_multipart_upload)

    def started(self) -> list[int]:
        return [number for kind, number in self.events if kind == "start"]


def s3_store(case: StoreCase, parts_in_flight: int) -> S3Store:
    store = case.store
    assert isinstance(store, S3Store)
    store.parts_in_flight = parts_in_flight
    return store


def test_defaults() -> None:
    assert 2 <= DEFAULT_PARTS_IN_FLIGHT <= 4
    assert S3Store("bucket", endpoint_url="http://127.0.0.1:9").parts_in_flight == (
        DEFAULT_PARTS_IN_FLIGHT
    )
    assert LocalDirectoryStore("/nonexistent").parts_in_flight == 1
    store = open_store("s3://bucket/p", s3_endpoint_url="http://127.0.0.1:9", parts_in_flight=2)
    assert store.parts_in_flight == 2
    for bad in (0, 17):
        with pytest.raises(ValueError, match="parts in flight"):
            S3Store("bucket", endpoint_url="http://127.0.0.1:9", parts_in_flight=bad)


@pytest.mark.parametrize("in_flight", [1, 2, 3])
async def test_parts_in_flight_are_bounded(
    s3_case: StoreCase, monkeypatch: pytest.MonkeyPatch, in_flight: int
) -> None:
    store = s3_store(s3_case, in_flight)
    spy = PartSpy(store, monkeypatch, delay=lambda number: 0.3)
    data = payload(6 * PART + 77, seed=1)

    stored = await store_stream(store, chunked(data), expected_sha256=sha(data))

    assert spy.peak == in_flight  # slow parts overlap up to the bound, never beyond
    assert sorted(spy.started()) == list(range(1, 8))
    # Buffers are reused: one per part in flight plus the one being filled.
    assert len(spy.buffers) <= in_flight + 1
    assert stored.sha256 == sha(data)
    assert b"".join(store.open(stored.key)) == data
    assert s3_case.leftovers() == [s3_case.raw_name(stored.key)]


@pytest.mark.parametrize("expected", [False, True], ids=["temp-then-copy", "direct"])
async def test_parts_finishing_out_of_order_keep_their_place(
    s3_case: StoreCase, monkeypatch: pytest.MonkeyPatch, expected: bool
) -> None:
    store = s3_store(s3_case, 3)
    # Earlier parts take longer: each round of three finishes back to front.
    spy = PartSpy(store, monkeypatch, delay=lambda number: 0.1 * (3 - (number - 1) % 3))
    data = payload(5 * PART + 1234, seed=2)

    stored = await store_stream(
        store, chunked(data, 64 * 1024 + 7), expected_sha256=sha(data) if expected else None
    )

    ends = [number for kind, number in spy.events if kind == "end"]
    assert ends != sorted(ends), "the parts did not finish out of order"
    assert stored.sha256 == sha(data)  # hashed in stream order
    assert stored.size == len(data)
    assert b"".join(store.open(stored.key)) == data  # completed in part-number order
    if expected:
        assert stored.etag is not None
        assert stored.etag.endswith("-6")  # the multipart upload itself, six parts
    assert s3_case.leftovers() == [s3_case.raw_name(stored.key)]


async def test_failing_part_aborts_after_the_parts_in_flight_and_a_retry_succeeds(
    s3_case: StoreCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = s3_store(s3_case, 3)
    # Part 2 fails (once) while parts 1 and 3 are still on their way.
    spy = PartSpy(
        store,
        monkeypatch,
        delay=lambda number: 0.05 if number == 2 else 0.5,
        fail=lambda number, attempt: number == 2 and attempt == 1,
    )
    data = payload(6 * PART + 5, seed=3)

    with pytest.raises(StorageUnavailable, match=r"UploadPart failed .*Could not connect"):
        await store_stream(store, chunked(data), expected_sha256=sha(data))

    # The abort came after every part call had returned: no part can land after it.
    assert spy.events[-1] == ("abort", 0)
    assert [kind for kind, _ in spy.events].count("abort") == 1
    # Part 4 needed the slot that part 2 freed by failing: it was never sent.
    assert 2 in spy.started()
    assert set(spy.started()) <= {1, 2, 3}
    assert s3_case.leftovers() == []

    retried = await store_stream(store, chunked(data), expected_sha256=sha(data))

    assert retried.sha256 == sha(data)
    assert retried.deduplicated is False
    assert b"".join(store.open(retried.key)) == data
    assert s3_case.leftovers() == [s3_case.raw_name(retried.key)]


async def test_failing_create_fails_every_waiting_part_once(
    s3_case: StoreCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = s3_store(s3_case, 3)
    calls = 0

    def create_multipart_upload(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        time.sleep(0.2)  # the other parts arrive and wait for the creation
        raise EndpointConnectionError(endpoint_url=store.endpoint_url)

    monkeypatch.setattr(store._control, "create_multipart_upload", create_multipart_upload)
    data = payload(4 * PART, seed=4)

    with pytest.raises(StorageUnavailable, match="Could not connect"):
        await store_stream(store, chunked(data, PART))

    assert calls == 1
    assert s3_case.leftovers() == []


async def test_client_gone_while_parts_are_in_flight(
    s3_case: StoreCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = s3_store(s3_case, 3)
    spy = PartSpy(store, monkeypatch, delay=lambda number: 0.4)
    data = payload(3 * PART, seed=5)

    class ClientGone(Exception):
        pass

    async def breaks_off() -> AsyncIterator[bytes]:
        async for chunk in chunked(data):
            yield chunk
        for _ in range(3):  # the three parts are on their way
            await anyio.to_thread.run_sync(spy.starts.acquire)
        raise ClientGone("client disconnected")

    with pytest.raises(ClientGone):
        await store_stream(store, breaks_off())

    assert sorted(spy.started()) == [1, 2, 3]
    assert spy.events[-1] == ("abort", 0)
    assert s3_case.leftovers() == []


async def test_cancelled_while_parts_are_in_flight(
    s3_case: StoreCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = s3_store(s3_case, 3)
    spy = PartSpy(store, monkeypatch, delay=lambda number: 0.5)
    data = payload(2 * PART, seed=6)

    async def stalls() -> AsyncIterator[bytes]:
        async for chunk in chunked(data):
            yield chunk
        await anyio.sleep(3600)  # a client that stops sending
        yield b""

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:

            async def cancel_while_both_parts_are_sent() -> None:
                for _ in range(2):
                    await anyio.to_thread.run_sync(spy.starts.acquire)
                tg.cancel_scope.cancel()

            tg.start_soon(cancel_while_both_parts_are_sent)
            await store_stream(store, stalls())

    # Cancelled while parts 1 and 2 were being sent: they finished, then the abort.
    assert sorted(spy.started()) == [1, 2]
    assert spy.events[-1] == ("abort", 0)
    assert s3_case.leftovers() == []


def test_local_upload_refuses_parts_out_of_order(local_case: StoreCase) -> None:
    upload = local_case.store.begin_upload()
    first = upload.next_part(PART)
    second = upload.next_part(PART)
    with pytest.raises(RuntimeError, match="in order"):
        upload.send_part(second, bytes(PART))
    upload.send_part(first, bytes(PART))
    upload.send_part(second, bytes(PART))
    upload.abort()
    assert local_case.leftovers() == []


def test_upload_part_bookkeeping(case: StoreCase) -> None:
    data = payload(2 * PART + 9, seed=7)
    upload = case.store.begin_upload()
    numbers = [upload.next_part(PART), upload.next_part(PART), upload.next_part(9)]
    assert numbers == [1, 2, 3]
    with pytest.raises(ValueError, match="only the last part"):
        upload.next_part(1)
    with pytest.raises(ValueError, match="numbered with 5242880 bytes but has 3"):
        upload.send_part(1, b"abc")
    with pytest.raises(RuntimeError, match="not numbered"):
        upload.send_part(4, b"x")
    upload.send_part(1, data[:PART])
    with pytest.raises(RuntimeError, match="already sent"):
        upload.send_part(1, data[:PART])
    upload.send_part(2, bytearray(data[PART : 2 * PART]))
    # Part 3 was numbered but never sent: completing would publish a truncated object.
    with pytest.raises(RuntimeError, match=r"parts \[3\] were numbered but never sent"):
        upload.complete(sha(data), len(data))
    assert case.leftovers() == []


async def test_small_body_is_one_put(s3_case: StoreCase, monkeypatch: pytest.MonkeyPatch) -> None:
    store = s3_store(s3_case, 3)
    spy = PartSpy(store, monkeypatch)
    data = payload(1000, seed=8)

    stored = await store_stream(store, chunked(data, 100))

    assert spy.events == []
    assert b"".join(store.open(stored.key)) == data
    assert s3_case.leftovers() == [s3_case.raw_name(stored.key)]


async def test_s3_checksums_can_be_left_to_botocore(
    moto_server: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # For S3-compatible stores that reject checksums: botocore's opt-out is honoured.
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
    store = S3Store(bucket, endpoint_url=moto_server.endpoint_url, part_size=PART)
    sent: list[dict[str, Any]] = []
    real = store._data.upload_part

    def upload_part(**kwargs: Any) -> Any:
        sent.append({k: v for k, v in kwargs.items() if k != "Body"})
        return real(**kwargs)

    monkeypatch.setattr(store._data, "upload_part", upload_part)
    data = payload(PART + 1, seed=9)
    stored = await store_stream(store, chunked(data))
    assert [s.get("ChecksumCRC32") for s in sent] == [None, None]
    assert b"".join(store.open(stored.key)) == data

    monkeypatch.delenv("AWS_REQUEST_CHECKSUM_CALCULATION")
    store = S3Store(bucket, "p", endpoint_url=moto_server.endpoint_url, part_size=PART)
    sent.clear()
    real = store._data.upload_part
    monkeypatch.setattr(store._data, "upload_part", upload_part)
    await store_stream(store, chunked(data))
    assert len(sent) == 2
    assert all(s.get("ChecksumCRC32") for s in sent)


async def test_part_writers_are_limited_per_process(
    s3_case: StoreCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Concurrent uploads share one limit of part writers, kept apart from anyio's
    # default thread limiter (which the request handlers' database calls use).
    store = s3_store(s3_case, 3)
    spy = PartSpy(store, monkeypatch, delay=lambda number: 0.2)
    streaming._part_writers.set(anyio.CapacityLimiter(4))
    default = anyio.to_thread.current_default_thread_limiter()
    borrowed: list[float] = []

    async def watch_default_limiter() -> None:
        while True:
            borrowed.append(default.borrowed_tokens)
            await anyio.sleep(0.01)

    datas = [payload(3 * PART, seed=20 + i) for i in range(3)]
    results = []

    async def upload(data: bytes) -> None:
        results.append(await store_stream(store, chunked(data)))

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_default_limiter)
        async with anyio.create_task_group() as uploads:
            for data in datas:
                uploads.start_soon(upload, data)
        tg.cancel_scope.cancel()

    assert spy.peak == 4  # three uploads of three parts in flight each, four writers
    assert max(borrowed) <= 3  # hashing and begin/complete; never the slow part writes
    assert sorted(r.sha256 for r in results) == sorted(sha(d) for d in datas)


def test_the_setting_reaches_the_store_of_the_app(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"upload_parts_in_flight": 2}))
    with TestClient(app):
        store = app.state.store
        expected = 2 if isinstance(store, S3Store) else 1  # a directory: one part at a time
        assert store.parts_in_flight == expected
