"""Stream an upload of unknown length into an artifact store with flat memory.

The request body arrives as small chunks on the event loop; stores want large parts
(S3 parts are at least 5 MiB) and block while writing them. :func:`store_stream`
gathers chunks into ``store.part_size`` parts and hands each full part to one worker
thread, which hashes it and writes it while the loop keeps receiving the next part.
The hand-over is a zero-capacity channel, so at most two parts are alive at a time
(one being written, one being filled, plus briefly the pieces of the one being joined):
memory is bounded by about three parts whatever the body's size or the client's speed
(measured: under 40 MiB of peak growth for 256 MiB and 1 GiB bodies with 8 MiB parts).
sha256 and size are always computed here, never taken from the store.

Any failure -- a client that disconnects, a body over ``max_bytes``, a store error,
a digest that differs from the expected one, cancellation -- aborts the upload so that
nothing is left in the store.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from typing import BinaryIO

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from app.errors import ChecksumMismatch, PayloadTooLarge, ValidationFailed
from app.storage.base import ArtifactStore, ArtifactUpload, StoredObject, validate_sha256

__all__ = ["store_file", "store_stream"]

logger = logging.getLogger(__name__)


async def store_stream(
    store: ArtifactStore,
    chunks: AsyncIterator[bytes],
    *,
    expected_sha256: str | None = None,
    max_bytes: int | None = None,
) -> StoredObject:
    """Store an async byte stream under its sha256; see the module docstring.

    ``expected_sha256`` (any case) lets the store write straight to the final key and
    skip bytes it already has; a different actual digest raises ChecksumMismatch. A
    body longer than ``max_bytes`` raises PayloadTooLarge as soon as it crosses the
    limit, and an empty body raises ValidationFailed.
    """
    expected = _normalise_expected(expected_sha256)
    # Shielded: a cancellation here would discard the returned upload unaborted (its
    # temp file left behind); begin_upload is short and bounded by the store's timeouts.
    with anyio.CancelScope(shield=True):
        upload = await anyio.to_thread.run_sync(store.begin_upload, expected)
    try:
        sha256, size = await _pump(upload, chunks, store.part_size, max_bytes)
        _check_result(sha256, size, expected)
        return await anyio.to_thread.run_sync(upload.complete, sha256, size)
    except BaseException:
        # Shielded: when the request is cancelled (client gone) the clean-up must
        # still run to the end, or a multipart upload would be left behind.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_abort_quietly, upload)
        raise


def store_file(
    store: ArtifactStore,
    fileobj: BinaryIO,
    *,
    expected_sha256: str | None = None,
    max_bytes: int | None = None,
) -> StoredObject:
    """Blocking counterpart of :func:`store_stream` for the CLI and tests.

    Reads and writes one part at a time in the calling thread; same checks and
    clean-up as the async version.
    """
    expected = _normalise_expected(expected_sha256)
    upload = store.begin_upload(expected)
    try:
        hasher = hashlib.sha256()
        size = 0
        while part := _read_part(fileobj, store.part_size):
            size += len(part)
            if max_bytes is not None and size > max_bytes:
                raise _too_large(max_bytes)
            hasher.update(part)
            upload.write_part(part)
        sha256 = hasher.hexdigest()
        _check_result(sha256, size, expected)
        return upload.complete(sha256, size)
    except BaseException:
        _abort_quietly(upload)
        raise


class _PartWriter:
    """The worker side: hashes and writes parts strictly in order, in a thread.

    It never raises into the task group (anyio would wrap the error in an
    ExceptionGroup); a failure is kept in ``error`` and the channel is closed, which
    makes the producer's next send fail so that it can re-raise the original error.
    """

    def __init__(self, upload: ArtifactUpload) -> None:
        self.upload = upload
        self.hasher = hashlib.sha256()
        self.error: Exception | None = None

    def _write(self, part: bytes) -> None:
        self.hasher.update(part)
        self.upload.write_part(part)

    async def run(self, parts: ObjectReceiveStream[bytes]) -> None:
        async with parts:
            async for part in parts:
                try:
                    await anyio.to_thread.run_sync(self._write, part)
                except Exception as exc:
                    self.error = exc
                    return


async def _pump(
    upload: ArtifactUpload,
    chunks: AsyncIterator[bytes],
    part_size: int,
    max_bytes: int | None,
) -> tuple[str, int]:
    """Feed ``chunks`` to the worker as parts; returns (sha256, size) once all are written."""
    writer = _PartWriter(upload)
    send, receive = anyio.create_memory_object_stream[bytes](0)
    failure: BaseException | None = None
    size = 0
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run, receive)
        async with send:
            try:
                pending: list[bytes | memoryview] = []
                pending_len = 0
                async for chunk in chunks:
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise _too_large(max_bytes)
                    view = memoryview(chunk)
                    while view:
                        room = part_size - pending_len
                        piece, view = view[:room], view[room:]
                        pending.append(piece)
                        pending_len += len(piece)
                        if pending_len == part_size:
                            # join() is the one copy of each byte; pieces are views.
                            part = b"".join(pending)
                            pending.clear()
                            pending_len = 0
                            await _hand_over(send, part, writer)
                if pending_len:
                    await _hand_over(send, b"".join(pending), writer)
                pending.clear()
            except Exception as exc:
                # Kept and re-raised after the task group, which would otherwise wrap
                # it in an ExceptionGroup; closing `send` lets the worker finish.
                failure = exc
    if failure is not None:
        raise failure
    if writer.error is not None:
        raise writer.error
    return writer.hasher.hexdigest(), size


async def _hand_over(send: ObjectSendStream[bytes], part: bytes, writer: _PartWriter) -> None:
    try:
        await send.send(part)
    except anyio.BrokenResourceError:
        # The worker stopped after a failed write; report that failure.
        assert writer.error is not None
        raise writer.error from None


def _read_part(fileobj: BinaryIO, part_size: int) -> bytes:
    """Read a full part; pipes and sockets may return fewer bytes per read."""
    first = fileobj.read(part_size)
    if not first or len(first) == part_size:
        return first
    pieces = [first]
    missing = part_size - len(first)
    while missing:
        more = fileobj.read(missing)
        if not more:
            break
        pieces.append(more)
        missing -= len(more)
    return b"".join(pieces)


def _normalise_expected(expected_sha256: str | None) -> str | None:
    if expected_sha256 is None:
        return None
    value = expected_sha256.strip().lower()
    try:
        return validate_sha256(value)
    except ValueError:
        raise ValidationFailed(
            f"expected sha256 must be 64 hex characters, got {expected_sha256!r}"
        ) from None


def _check_result(sha256: str, size: int, expected: str | None) -> None:
    if size == 0:
        raise ValidationFailed("artifact body is empty")
    if expected is not None and sha256 != expected:
        raise ChecksumMismatch(
            f"artifact sha256 {sha256} does not match the expected sha256 {expected}"
        )


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"artifact is larger than the limit of {max_bytes} bytes")


def _abort_quietly(upload: ArtifactUpload) -> None:
    """Abort without letting a clean-up failure replace the error being raised."""
    try:
        upload.abort()
    except Exception:
        logger.exception("aborting an artifact upload failed")
