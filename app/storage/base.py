"""The artifact store contract shared by the local-directory and S3 implementations.

Artifacts are content-addressed: an object lives under ``sha256/<hex digest>`` and is
never overwritten, so identical bytes are stored once and a key recorded in the
database always names the same bytes. Keys are built only from digests computed by
Modelgate (see :func:`key_for`); every store method that takes a key checks it with
:func:`digest_of_key`, so nothing a client sends can become a path or object name.

Stores are synchronous (plain file I/O, sync boto3). Async callers go through
:mod:`app.storage.streaming`, which hashes while streaming and runs the blocking
calls in worker threads.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol
from urllib.parse import quote

from app.errors import ChecksumMismatch

__all__ = [
    "DEFAULT_PART_SIZE",
    "KEY_NAMESPACE",
    "ArtifactStore",
    "ArtifactUpload",
    "ObjectInfo",
    "StoredObject",
    "content_disposition",
    "digest_of_key",
    "hash_chunks",
    "key_for",
    "take_unsent",
    "validate_sha256",
]

DEFAULT_PART_SIZE = 8 * 1024 * 1024
KEY_NAMESPACE = "sha256"

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class StoredObject:
    """What an upload produced; the caller records it on the model version."""

    key: str
    """``sha256/<digest>``, relative to the store's prefix or root."""
    sha256: str
    size: int
    etag: str | None
    """S3 ETag without quotes (a cheap identity check for later shallow verifies); None locally."""
    deduplicated: bool
    """True when identical bytes were already stored and this upload wrote nothing new."""


@dataclass(frozen=True)
class ObjectInfo:
    """What the store says about one object without reading its bytes (a HEAD or a stat)."""

    size: int
    etag: str | None
    """S3 ETag without quotes; None locally."""
    checksum_sha256: str | None
    """The store's own full-object SHA-256 (hex) as S3 keeps it (``ChecksumSHA256``, sent at
    upload and read with ``ChecksumMode=ENABLED``); None where the store keeps none, or only
    a composite checksum of multipart parts."""


class ArtifactUpload(Protocol):
    """One upload in progress, written part by part.

    A part is numbered with :meth:`next_part`, in stream order, then its bytes are
    written with :meth:`send_part`; :meth:`write_part` does both. Up to the store's
    ``parts_in_flight`` parts may be sent at once from different threads; everything
    else (numbering, ``complete``, ``abort``) is called from one thread at a time and
    only while no part is being sent, so that an abort leaves no part behind.

    Either :meth:`complete` succeeds or :meth:`abort` must be called; after a
    successful ``complete`` an ``abort`` is a no-op, so callers can abort in a
    ``finally``-style cleanup without risking the stored object.
    """

    def write_part(self, data: bytes | bytearray) -> None:
        """Number and send the next part; every part but the last is ``part_size`` long."""
        ...

    def next_part(self, size: int) -> int:
        """Number the next part of the stream (1, 2, ...), ``size`` bytes long; no I/O.

        Raises ValueError after a short part (only the last may be shorter than
        ``part_size``) and PayloadTooLarge when the store cannot take another part.
        """
        ...

    def send_part(self, number: int, data: bytes | bytearray) -> None:
        """Write part ``number`` (as numbered by :meth:`next_part`, with that many bytes).

        The store may keep ``data`` until ``complete`` or ``abort`` when it is the
        whole (short) object; otherwise the caller may reuse it once this returns.
        """
        ...

    def complete(self, sha256: str, size: int) -> StoredObject:
        """Publish the bytes under ``sha256/<digest>`` without overwriting an existing object.

        ``sha256`` and ``size`` are what the caller computed while streaming; the store
        does not re-hash. Raises ChecksumMismatch (after aborting) when the upload was
        begun with an expected digest that differs.
        """
        ...

    def abort(self) -> None:
        """Drop everything this upload wrote. Idempotent and best effort: failures are
        logged, not raised, because it runs while another error is propagating."""
        ...


class UploadBase:
    """What every store's upload shares: the state (open, then completed or aborted), the
    bookkeeping of numbered parts, and :meth:`complete`'s checks around the store's own
    way of publishing the bytes (``_publish_key``)."""

    def __init__(self, expected_sha256: str | None) -> None:
        self._expected = expected_sha256
        self._written = 0
        self._numbered = 0
        self._unsent: dict[int, int] = {}
        """Size of each numbered part not yet sent."""
        self._short_part_seen = False
        self._state = "open"

    def _check_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(f"upload is {self._state}")

    def write_part(self, data: bytes | bytearray) -> None:
        self.send_part(self.next_part(len(data)), data)

    def next_part(self, size: int) -> int:
        raise NotImplementedError

    def send_part(self, number: int, data: bytes | bytearray) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def _publish_key(self, key: str, size: int) -> tuple[str | None, bool]:
        """Make the upload's bytes the object ``key``; returns (etag, deduplicated)."""
        raise NotImplementedError

    def complete(self, sha256: str, size: int) -> StoredObject:
        validate_sha256(sha256)
        self._check_open()
        try:
            check_completion(
                sha256=sha256,
                size=size,
                written=self._written,
                expected=self._expected,
                unsent=self._unsent,
            )
            key = key_for(sha256)
            etag, deduplicated = self._publish_key(key, size)
        except BaseException:
            self.abort()
            raise
        self._state = "completed"
        return StoredObject(key=key, sha256=sha256, size=size, etag=etag, deduplicated=deduplicated)


class ArtifactStore(Protocol):
    """Where artifact bytes live. Implementations: LocalDirectoryStore, S3Store."""

    part_size: int
    parts_in_flight: int
    """How many parts of one upload may be sent at once (1: strictly one after another)."""

    def describe(self) -> str:
        """One line for logs and the readiness report, without secrets."""
        ...

    def check(self) -> None:
        """Readiness probe: StorageUnavailable if unreachable, StorageFull if not writable."""
        ...

    def key_for(self, sha256: str) -> str:
        """``sha256/<digest>`` for a 64-character lowercase hex digest; ValueError otherwise."""
        ...

    def exists(self, key: str) -> bool: ...

    def begin_upload(self, expected_sha256: str | None = None) -> ArtifactUpload:
        """Start an upload. With a known digest the store may write straight to the final
        key (and skip the bytes entirely when that object already exists)."""
        ...

    def open(self, key: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream an object. Raises ArtifactNotFound at call time, before any chunk is
        produced, so an HTTP handler can answer 404 before it starts a response."""
        ...

    def size(self, key: str) -> int | None:
        """Size in bytes, or None if the object is missing."""
        ...

    def stat(self, key: str) -> ObjectInfo | None:
        """Size, ETag and stored checksum of an object, or None if it is missing."""
        ...

    def keys(self) -> Iterator[str]:
        """Every published object's key (``sha256/<digest>``), in no particular order."""
        ...

    def presigned_url(
        self, key: str, *, expires_seconds: int, filename: str | None = None
    ) -> str | None:
        """A time-limited GET URL, or None when the store cannot serve clients directly."""
        ...

    def delete(self, key: str) -> None:
        """Remove an object (tests, orphan cleanup). Missing objects are not an error."""
        ...

    def purge_stale_uploads(self, older_than: timedelta) -> int:
        """Remove leftovers of uploads interrupted by a crash (temp files, unfinished
        multipart uploads) older than ``older_than``; returns how many were removed."""
        ...


def validate_sha256(value: str) -> str:
    """Return ``value`` if it is a 64-character lowercase hex digest, else raise ValueError."""
    if _SHA256_HEX.fullmatch(value) is None:
        raise ValueError(f"not a sha256 hex digest (64 lowercase hex characters): {value!r}")
    return value


def key_for(sha256: str) -> str:
    """The store key of a digest: the only way keys are made."""
    return f"{KEY_NAMESPACE}/{validate_sha256(sha256)}"


def digest_of_key(key: str) -> str:
    """The digest named by an artifact key; ValueError for anything else.

    Every store method that receives a key calls this first, which is what keeps
    arbitrary strings (``../``, absolute paths, other prefixes) away from the store.
    """
    namespace, sep, digest = key.partition("/")
    if namespace != KEY_NAMESPACE or not sep or _SHA256_HEX.fullmatch(digest) is None:
        raise ValueError(f"not an artifact key (expected sha256/<hex digest>): {key!r}")
    return digest


def hash_chunks(chunks: Iterable[bytes]) -> tuple[str, int]:
    """sha256 hex digest and byte count of a stream, reading it once."""
    hasher = hashlib.sha256()
    size = 0
    for chunk in chunks:
        hasher.update(chunk)
        size += len(chunk)
    return hasher.hexdigest(), size


def content_disposition(filename: str) -> str:
    """An RFC 6266 ``attachment`` header value that is safe for any file name.

    The quoted ``filename`` keeps only printable ASCII without quotes or backslashes
    (old clients read it); ``filename*`` carries the exact name, percent-encoded.
    """
    name = filename.replace("/", "_").replace("\\", "_").strip() or "artifact"
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def take_unsent(unsent: dict[int, int], number: int, size: int, *, in_order: bool) -> None:
    """Check a part about to be sent against what :meth:`ArtifactUpload.next_part`
    numbered, and strike it from ``unsent`` (part number -> size)."""
    expected = unsent.get(number)
    if expected is None:
        raise RuntimeError(f"part {number} was not numbered by next_part() or was already sent")
    if in_order and number != min(unsent):
        raise RuntimeError(f"part {number} sent before part {min(unsent)}: parts go in order")
    if size != expected:
        raise ValueError(f"part {number} was numbered with {expected} bytes but has {size}")
    del unsent[number]


def check_completion(
    *,
    sha256: str,
    size: int,
    written: int,
    expected: str | None,
    unsent: dict[int, int] | None = None,
) -> None:
    """What every store checks before publishing an upload: every numbered part was sent,
    the caller's size matches the bytes written, and the digest matches the one the
    upload was started with."""
    if unsent:
        raise RuntimeError(f"parts {sorted(unsent)} were numbered but never sent")
    if size != written:
        raise ValueError(f"complete() got size {size} but {written} bytes were written")
    if expected is not None and sha256 != expected:
        raise ChecksumMismatch(f"artifact sha256 {sha256} does not match the expected {expected}")
