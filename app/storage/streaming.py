"""Stream an upload of unknown length into an artifact store with flat memory.

The request body arrives as chunks on the event loop; stores want large parts (S3
parts are at least 5 MiB) and block while writing them. :func:`store_stream` copies
the chunks into ``store.part_size`` buffers and hands each full buffer to a task of its
own, which hashes it in a worker thread -- strictly after the part before it, so the
sha256 covers the stream in order -- and then writes it in another. Up to
``store.parts_in_flight`` parts are hashed or written at once (S3: several UploadPart
requests in parallel, as boto3's transfer manager sends them; the local store: one,
a file is written in order) while the loop fills the next buffer; when all are busy the
loop stops reading the body, which holds the client back. A written buffer is reused
for a later part, so memory is bounded by ``parts_in_flight + 1`` parts whatever the
body's size or the client's speed, and every byte is copied once on the way (chunk to
buffer; the buffer itself goes to the store). sha256 and size are always computed
here, never taken from the store.

Any failure -- a client that disconnects, a body over ``max_bytes``, a store error,
a digest that differs from the expected one, cancellation -- stops new parts, waits
for the parts being written (a part still on its way could outlive the abort), and
aborts the upload so that nothing is left in the store.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from typing import BinaryIO

import anyio
from anyio.abc import TaskGroup
from anyio.lowlevel import RunVar

from app.errors import ChecksumMismatch, PayloadTooLarge, ValidationFailed
from app.storage.base import ArtifactStore, ArtifactUpload, StoredObject, validate_sha256

__all__ = ["store_file", "store_stream"]

logger = logging.getLogger(__name__)

PART_WRITERS = 32
"""Parts written at once by all the uploads of one process (event loop) together."""
_part_writers: RunVar[anyio.CapacityLimiter] = RunVar("modelgate_part_writers")


def _part_writer_limiter() -> anyio.CapacityLimiter:
    """The threads writing parts have a limiter of their own, not anyio's default one
    (40 threads), which the request handlers' database calls share: a dozen uploads
    with parts in flight must not keep every other request waiting for a thread."""
    try:
        return _part_writers.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(PART_WRITERS)
        _part_writers.set(limiter)
        return limiter


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
        sha256, size = await _pump(
            upload, chunks, store.part_size, max_bytes, max(1, store.parts_in_flight)
        )
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


class _Parts:
    """Hashes parts strictly in order and writes up to ``in_flight`` of them at once.

    Tasks never raise into the task group (anyio would wrap the error in an
    ExceptionGroup): the first failure is kept in ``error``, later parts are skipped,
    and the producer re-raises it.
    """

    def __init__(self, upload: ArtifactUpload, part_size: int, in_flight: int) -> None:
        self.upload = upload
        self.part_size = part_size
        self.hasher = hashlib.sha256()
        self.error: BaseException | None = None
        self.stopped = False
        """Set when the producer fails: parts not yet written are dropped."""
        self._slots = anyio.Semaphore(in_flight)
        self._hashed = anyio.Event()
        """Set once the latest dispatched part has been hashed (or given up)."""
        self._hashed.set()
        self._free: list[bytearray] = []
        self._dispatched = 0

    def buffer(self) -> bytearray:
        """A buffer to fill from the start: a written one if any is free; else, once the
        body has proved larger than a part, a new full-size one; else an empty one that
        grows as it is filled, so that a small body costs no more than its size."""
        if self._free:
            return self._free.pop()
        return bytearray(self.part_size) if self._dispatched else bytearray()

    async def dispatch(self, tg: TaskGroup, buffer: bytearray) -> None:
        """Number ``buffer`` as the next part and start hashing and writing it once one
        of the ``in_flight`` slots is free; raises the error of a failed part."""
        self._raise_failure()
        number = self.upload.next_part(len(buffer))
        await self._slots.acquire()
        try:
            self._raise_failure()
        except BaseException:
            self._slots.release()
            raise
        previous, hashed = self._hashed, anyio.Event()
        self._hashed = hashed
        self._dispatched += 1
        tg.start_soon(self._handle, number, buffer, previous, hashed)

    async def _handle(
        self, number: int, buffer: bytearray, previous: anyio.Event, hashed: anyio.Event
    ) -> None:
        try:
            await previous.wait()
            if self._going():
                await anyio.to_thread.run_sync(self.hasher.update, buffer)
            hashed.set()
            if self._going():
                await anyio.to_thread.run_sync(
                    self.upload.send_part, number, buffer, limiter=_part_writer_limiter()
                )
        except Exception as exc:
            if self.error is None:
                self.error = exc
        finally:
            hashed.set()
            # A short buffer is the last part (and may be kept by the store).
            if len(buffer) == self.part_size:
                self._free.append(buffer)
            self._slots.release()

    def _going(self) -> bool:
        return self.error is None and not self.stopped

    def _raise_failure(self) -> None:
        if self.error is not None:
            raise self.error


async def _pump(
    upload: ArtifactUpload,
    chunks: AsyncIterator[bytes],
    part_size: int,
    max_bytes: int | None,
    in_flight: int,
) -> tuple[str, int]:
    """Feed ``chunks`` to the store as parts; returns (sha256, size) once all are written."""
    parts = _Parts(upload, part_size, in_flight)
    failure: BaseException | None = None
    size = 0
    async with anyio.create_task_group() as tg:
        try:
            buffer: bytearray | None = None
            filled = 0
            async for chunk in chunks:
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise _too_large(max_bytes)
                if buffer is None:
                    buffer = parts.buffer()
                room = part_size - filled
                if len(chunk) < room:
                    # The usual case: the chunk fits. Copied in place into a full-size
                    # buffer, appended to a growing one.
                    buffer[filled : filled + len(chunk)] = chunk
                    filled += len(chunk)
                    continue
                view = memoryview(chunk)
                while len(view) >= room:
                    buffer[filled:part_size] = view[:room]
                    view = view[room:]
                    await parts.dispatch(tg, buffer)
                    buffer, filled, room = parts.buffer(), 0, part_size
                buffer[: len(view)] = view
                filled = len(view)
            if buffer is not None and filled:
                # The last, short part: trimmed in place (no copy), handed over for good.
                del buffer[filled:]
                await parts.dispatch(tg, buffer)
        except Exception as exc:
            # Kept and re-raised after the task group, which would otherwise wrap it
            # in an ExceptionGroup; the task group still waits for parts in flight.
            failure = exc
            parts.stopped = True
    if failure is not None:
        raise failure
    if parts.error is not None:
        raise parts.error
    return parts.hasher.hexdigest(), size


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
