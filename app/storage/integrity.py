"""Is a stored artifact still the bytes Modelgate recorded? One answer for every caller.

Rollback, the ``artifact_intact`` gate, the scrub and the download all ask
:func:`verify_artifact` (the download through :class:`StreamVerifier`, which hashes
the bytes it sends). Content is always verified, by one of two methods, and the
result says which:

``sha256 re-computed``
    The object is read and hashed here. Works on every store.
``store checksum``
    The store's own full-object SHA-256 (S3 ``ChecksumSHA256``, sent at upload, so S3
    verified it on arrival, and read back with ``ChecksumMode=ENABLED``), trusted only
    while the object's ETag is still the one recorded at upload: an object rewritten
    since then carries whatever checksum its writer sent (S3-compatible stores such as
    moto accept a wrong one), so it is re-hashed instead.

A result names a digest in ``sha256_observed`` only when it was computed here or read
from the store; a size mismatch or a missing object names none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from app.errors import ArtifactNotFound
from app.storage.base import ArtifactStore, hash_chunks

__all__ = [
    "REHASHED",
    "STORE_CHECKSUM",
    "ArtifactCheck",
    "ContentMismatch",
    "StreamVerifier",
    "verify_artifact",
]

Method = Literal["sha256 re-computed", "store checksum", "size", "none"]
REHASHED: Method = "sha256 re-computed"
STORE_CHECKSUM: Method = "store checksum"


@dataclass(frozen=True)
class ArtifactCheck:
    """The outcome of one verification, worded for reports and audit details."""

    present: bool
    intact: bool
    method: Method
    """How content was judged; ``size`` when a wrong size settled it, ``none`` when missing."""
    sha256_expected: str
    sha256_observed: str | None
    """Computed (``sha256 re-computed``) or read from the store (``store checksum``); else None."""
    size_expected: int
    size_observed: int | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "present": self.present,
            "intact": self.intact,
            "method": self.method,
            "sha256_expected": self.sha256_expected,
            "sha256_observed": self.sha256_observed,
            "size_expected": self.size_expected,
            "size_observed": self.size_observed,
            "detail": self.detail,
        }


def verify_artifact(
    store: ArtifactStore,
    *,
    key: str,
    sha256: str,
    size: int,
    etag: str | None = None,
    rehash: bool = False,
) -> ArtifactCheck:
    """Verify the content of the object under ``key`` against the recorded digest and size.

    ``rehash`` forces a re-hash even where the store holds a checksum. Raises only
    storage errors (StorageUnavailable): a missing, short or altered object is a result.
    """

    def result(
        present: bool,
        intact: bool,
        method: Method,
        observed: str | None,
        seen: int | None,
        why: str,
    ) -> ArtifactCheck:
        return ArtifactCheck(present, intact, method, sha256, observed, size, seen, why)

    info = store.stat(key)
    if info is None:
        return result(False, False, "none", None, None, "object missing from the store")
    if info.size != size:
        return result(True, False, "size", None, info.size, f"size {info.size} != recorded {size}")
    stored = info.checksum_sha256
    if not rehash and stored is not None:
        if stored != sha256:
            return result(
                True,
                False,
                STORE_CHECKSUM,
                stored,
                info.size,
                f"store checksum sha256 {stored} != recorded {sha256}",
            )
        if etag is not None and info.etag == etag.strip('"'):
            return result(True, True, STORE_CHECKSUM, stored, info.size, "store checksum matches")
    try:
        observed, seen = hash_chunks(store.open(key))
    except ArtifactNotFound:
        return result(False, False, "none", None, None, "object missing from the store")
    if seen != size:
        return result(True, False, REHASHED, observed, seen, f"read {seen} bytes, recorded {size}")
    if observed != sha256:
        return result(
            True, False, REHASHED, observed, seen, f"sha256 {observed} != recorded {sha256}"
        )
    return result(True, True, REHASHED, observed, seen, "sha256 re-computed, matches")


class ContentMismatch(Exception):
    """Raised by :class:`StreamVerifier` instead of the last chunk of altered bytes."""

    def __init__(self, check: ArtifactCheck) -> None:
        super().__init__(check.detail)
        self.check = check


class StreamVerifier:
    """Hashes a download while it streams and holds back the last chunk until the digest
    is known: altered bytes end in :class:`ContentMismatch` before the body is complete,
    so a client never sees a clean end of a corrupt artifact (with a Content-Length, the
    connection closes short of it)."""

    def __init__(self, chunks: Iterator[bytes], *, sha256: str, size: int) -> None:
        self._chunks = chunks
        self._sha256 = sha256
        self._size = size
        self._hasher = hashlib.sha256()
        self._seen = 0

    def __iter__(self) -> Iterator[bytes]:
        held: bytes | None = None
        for chunk in self._chunks:
            if not chunk:
                continue
            self._hasher.update(chunk)
            self._seen += len(chunk)
            if held is not None:
                yield held
            held = chunk
            if self._seen > self._size:
                self._fail()
        observed = self._hasher.hexdigest()
        if self._seen != self._size or observed != self._sha256:
            self._fail()
        if held is not None:
            yield held

    def _fail(self) -> None:
        observed = self._hasher.hexdigest()
        method: Method = "size"
        observed_digest: str | None = None
        if self._seen > self._size:
            detail = f"download read more than the recorded {self._size} bytes"
        elif self._seen < self._size:
            detail = f"download read {self._seen} bytes, recorded {self._size}"
        else:
            method, observed_digest = REHASHED, observed
            detail = f"download hashed to sha256 {observed} != recorded {self._sha256}"
        raise ContentMismatch(
            ArtifactCheck(
                present=True,
                intact=False,
                method=method,
                sha256_expected=self._sha256,
                sha256_observed=observed_digest,
                size_expected=self._size,
                size_observed=self._seen,
                detail=detail,
            )
        )
