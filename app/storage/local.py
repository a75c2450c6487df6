"""Artifact store in a local directory: the embedded default for a one-command registry.

Layout under the root::

    sha256/<first two hex digits>/<digest>   published objects, read-only (0444)
    .tmp/<uuid>                              uploads in progress

The two-digit fan-out keeps directories small once there are many thousands of
artifacts; the key stays ``sha256/<digest>`` either way. An upload is written to
``.tmp``, fsynced, then published with ``link()``, which is atomic and fails instead
of replacing an existing file: readers never see a partial object and an existing
object is never overwritten. ``.tmp`` sits on the same filesystem as the objects,
so the link never crosses devices.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from app.errors import AppError, ArtifactNotFound, StorageFull, StorageUnavailable
from app.storage.base import (
    DEFAULT_PART_SIZE,
    KEY_NAMESPACE,
    ObjectInfo,
    UploadBase,
    digest_of_key,
    key_for,
    take_unsent,
    validate_sha256,
)

__all__ = ["LocalDirectoryStore"]

logger = logging.getLogger(__name__)

_TMP_DIR = ".tmp"
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
# Everything that means "this process cannot write there", including a root whose
# parent is a regular file (ENOTDIR, EEXIST) or a pseudo-filesystem (ENOENT, EPERM).
_UNWRITABLE_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENOTDIR,
        errno.EEXIST,
        errno.ENOENT,
        errno.EISDIR,
        errno.ELOOP,
    }
)
# link() is refused by filesystems without hard links (vfat, some FUSE and SMB mounts).
_NO_HARDLINK_ERRNOS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK})


def storage_error(root: Path, exc: OSError) -> AppError:
    """Translate an OSError met while writing under ``root`` into a Modelgate error.

    The detail names the configured root and the reason, not the internal file path,
    because it is shown to API clients.
    """
    reason = exc.strerror or exc.__class__.__name__
    if exc.errno in _FULL_ERRNOS:
        return StorageFull(f"artifact directory {root} is full: {reason}")
    if exc.errno in _UNWRITABLE_ERRNOS:
        return StorageFull(f"artifact directory {root} is not writable: {reason}")
    return StorageUnavailable(f"artifact directory {root} failed: {reason}")


class LocalDirectoryStore:
    """Content-addressed artifacts in a directory; see the module docstring for the layout."""

    parts_in_flight = 1
    """A temp file is written in order, one part at a time."""

    def __init__(self, root: Path | str, part_size: int = DEFAULT_PART_SIZE) -> None:
        if part_size < 1:
            raise ValueError(f"part_size must be positive, got {part_size}")
        # abspath, not resolve(): normalise the name without requiring it to exist yet.
        self.root = Path(os.path.abspath(Path(root).expanduser()))
        self.part_size = part_size
        self._objects = self.root / KEY_NAMESPACE
        self._tmp = self.root / _TMP_DIR

    def __repr__(self) -> str:
        return f"LocalDirectoryStore({str(self.root)!r})"

    def describe(self) -> str:
        return f"directory {self.root}"

    def check(self) -> None:
        try:
            self._ensure_dirs()
            # Probe both places an upload writes to: .tmp for the bytes, sha256/ for
            # the fan-out directories and links.
            for directory in (self._tmp, self._objects):
                probe = directory / f".probe-{uuid.uuid4().hex}"
                fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    os.write(fd, b"ok")
                finally:
                    os.close(fd)
                probe.unlink()
        except OSError as exc:
            raise storage_error(self.root, exc) from exc

    def key_for(self, sha256: str) -> str:
        return key_for(sha256)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def begin_upload(self, expected_sha256: str | None = None) -> _LocalUpload:
        if expected_sha256 is not None:
            validate_sha256(expected_sha256)
            if self._path(key_for(expected_sha256)).is_file():
                # Same bytes already stored: count and hash them, write nothing.
                return _LocalUpload(self, expected_sha256, tmp_path=None)
        try:
            self._ensure_dirs()
            tmp_path = self._tmp / uuid.uuid4().hex
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise storage_error(self.root, exc) from exc
        return _LocalUpload(self, expected_sha256, tmp_path=tmp_path, fd=fd)

    def open(self, key: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        path = self._path(key)
        try:
            # Opened here, not inside the generator, so a missing object raises now.
            handle = path.open("rb")
        except FileNotFoundError:
            raise ArtifactNotFound(f"artifact {key} is not in the store") from None
        except OSError as exc:
            raise StorageUnavailable(
                f"artifact directory {self.root} failed: {exc.strerror}"
            ) from exc
        return _read_chunks(handle, chunk_size, self.root)

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageUnavailable(
                f"artifact directory {self.root} failed: {exc.strerror}"
            ) from exc

    def stat(self, key: str) -> ObjectInfo | None:
        size = self.size(key)
        # A directory keeps no checksum of its own: verifying content means re-hashing.
        return None if size is None else ObjectInfo(size=size, etag=None, checksum_sha256=None)

    def keys(self) -> Iterator[str]:
        try:
            fan_out = sorted(os.scandir(self._objects), key=lambda e: e.name)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise storage_error(self.root, exc) from exc
        for directory in fan_out:
            if not directory.is_dir(follow_symlinks=False):
                continue
            for entry in sorted(os.scandir(directory.path), key=lambda e: e.name):
                if entry.is_file(follow_symlinks=False) and _is_digest(entry.name):
                    yield key_for(entry.name)

    # A directory has no presigned URLs: the server streams the bytes itself.
    def presigned_url(
        self,
        key: str,
        *,
        expires_seconds: int,  # noqa: ARG002
        filename: str | None = None,  # noqa: ARG002
    ) -> str | None:
        digest_of_key(key)
        return None

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise storage_error(self.root, exc) from exc

    def purge_stale_uploads(self, older_than: timedelta) -> int:
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        try:
            entries = list(os.scandir(self._tmp))
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise storage_error(self.root, exc) from exc
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue  # finished or aborted meanwhile
            except OSError as exc:
                raise storage_error(self.root, exc) from exc
        return removed

    # internals ------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        digest = digest_of_key(key)
        return self._objects / digest[:2] / digest

    def _ensure_dirs(self) -> None:
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._objects.mkdir(parents=True, exist_ok=True)


class _LocalUpload(UploadBase):
    """A temp file in ``.tmp`` (or nothing, when the expected object already exists)."""

    def __init__(
        self,
        store: LocalDirectoryStore,
        expected_sha256: str | None,
        *,
        tmp_path: Path | None,
        fd: int | None = None,
    ) -> None:
        super().__init__(expected_sha256)
        self._store = store
        self._tmp_path = tmp_path
        self._file: BinaryIO | None = os.fdopen(fd, "wb") if fd is not None else None

    def next_part(self, size: int) -> int:
        self._check_open()
        if self._short_part_seen:
            raise ValueError("only the last part may be shorter than part_size")
        if size < self._store.part_size:
            self._short_part_seen = True
        self._written += size
        self._numbered += 1
        self._unsent[self._numbered] = size
        return self._numbered

    def send_part(self, number: int, data: bytes | bytearray) -> None:
        self._check_open()
        take_unsent(self._unsent, number, len(data), in_order=True)
        if self._file is None:
            return
        try:
            self._file.write(data)
        except OSError as exc:
            raise storage_error(self._store.root, exc) from exc

    def _publish_key(self, key: str, size: int) -> tuple[str | None, bool]:
        final = self._store._path(key)
        if self._file is None:
            return None, self._confirm_existing(final, key, size)
        return None, self._publish(final, key, size)

    def abort(self) -> None:
        if self._state != "open":
            return
        self._state = "aborted"
        if self._file is not None:
            # The bytes are being thrown away; a failed flush on close changes nothing.
            with contextlib.suppress(OSError):
                self._file.close()
        if self._tmp_path is not None:
            try:
                self._tmp_path.unlink(missing_ok=True)
            except OSError as exc:
                logger.warning(
                    "could not remove upload temp file %s: %s", self._tmp_path, exc.strerror
                )

    def _publish(self, final: Path, key: str, size: int) -> bool:
        """Move the temp file into place; True if an identical object was already there."""
        assert self._file is not None
        assert self._tmp_path is not None
        try:
            self._file.flush()
            os.fchmod(self._file.fileno(), 0o444)
            os.fsync(self._file.fileno())
            self._file.close()
            final.parent.mkdir(parents=True, exist_ok=True)
            created = _link_no_replace(self._tmp_path, final)
            if not created and final.stat().st_size != size:
                # Same digest, different size: the stored copy is damaged. We hold the
                # right bytes, so replacing it is a repair, not an overwrite.
                logger.warning("replacing damaged artifact %s (size differs)", key)
                os.replace(self._tmp_path, final)
                created = True
            self._tmp_path.unlink(missing_ok=True)
            if created:
                _fsync_dir(final.parent)
        except OSError as exc:
            raise storage_error(self._store.root, exc) from exc
        return not created

    def _confirm_existing(self, final: Path, key: str, size: int) -> bool:
        try:
            existing_size = final.stat().st_size
        except FileNotFoundError:
            raise StorageUnavailable(
                f"artifact {key} was removed while the upload ran; retry the upload"
            ) from None
        except OSError as exc:
            raise storage_error(self._store.root, exc) from exc
        if existing_size != size:
            logger.error(
                "stored artifact %s is damaged: size %d, expected %d", key, existing_size, size
            )
            raise StorageUnavailable(
                f"stored artifact {key} is damaged (size {existing_size}, expected {size}); "
                "upload it without an expected digest to repair it"
            )
        return True


def _link_no_replace(source: Path, target: Path) -> bool:
    """Make ``target`` name ``source``'s file unless it exists; True if it was created."""
    try:
        os.link(source, target)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_HARDLINK_ERRNOS:
            raise
    # No hard links here: check-then-rename leaves a window in which two uploads of
    # the same bytes both rename; the loser replaces identical bytes, which is harmless.
    if target.exists():
        return False
    os.rename(source, target)
    return True


def _is_digest(name: str) -> bool:
    try:
        validate_sha256(name)
    except ValueError:
        return False
    return True


def _fsync_dir(path: Path) -> None:
    """Persist a new directory entry, so a published object survives a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_chunks(handle: BinaryIO, chunk_size: int, root: Path) -> Iterator[bytes]:
    with handle:
        while True:
            try:
                chunk = handle.read(chunk_size)
            except OSError as exc:
                raise StorageUnavailable(
                    f"artifact directory {root} failed: {exc.strerror}"
                ) from exc
            if not chunk:
                return
            yield chunk
