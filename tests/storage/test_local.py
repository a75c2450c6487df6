"""What only the local-directory store does: layout, permissions, unwritable roots."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from app.errors import StorageFull, StorageUnavailable
from app.storage import LocalDirectoryStore, store_file, store_stream
from app.storage.local import storage_error
from tests.storage.cases import PART


def test_layout_fans_out_and_objects_are_read_only(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path / "artifacts", part_size=PART)
    data = b"model weights"
    digest = hashlib.sha256(data).hexdigest()

    stored = store_file(store, io.BytesIO(data))

    path = tmp_path / "artifacts" / "sha256" / digest[:2] / digest
    assert stored.key == f"sha256/{digest}"
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert list((tmp_path / "artifacts" / ".tmp").iterdir()) == []


def test_relative_root_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = LocalDirectoryStore("data/../artifacts")
    assert store.root == tmp_path / "artifacts"
    assert store.describe() == f"directory {tmp_path / 'artifacts'}"


def test_root_under_a_regular_file_is_not_writable(tmp_path: Path) -> None:
    # Tests run as root, which chmod cannot stop; a parent that is a file stops anyone.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    store = LocalDirectoryStore(blocker / "artifacts", part_size=PART)

    with pytest.raises(StorageFull, match=r"artifact directory .*/not-a-directory/artifacts"):
        store.check()
    with pytest.raises(StorageFull, match="is not writable: Not a directory"):
        store_file(store, io.BytesIO(b"data"))

    async def stream() -> None:
        async def one_chunk() -> AsyncIterator[bytes]:
            yield b"data"

        await store_stream(store, one_chunk())

    with pytest.raises(StorageFull):
        anyio.run(stream)


def test_root_that_is_a_file_is_not_writable(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    root.write_text("x")
    with pytest.raises(StorageFull, match="is not writable"):
        LocalDirectoryStore(root).check()


def test_root_on_a_pseudo_filesystem_is_not_writable() -> None:
    with pytest.raises(StorageFull, match="is not writable"):
        LocalDirectoryStore("/proc/modelgate-artifacts").check()


@pytest.mark.parametrize(
    ("code", "kind", "words"),
    [
        (errno.ENOSPC, StorageFull, "is full: No space left on device"),
        (errno.EDQUOT, StorageFull, "is full: Disk quota exceeded"),
        (errno.EACCES, StorageFull, "is not writable: Permission denied"),
        (errno.EROFS, StorageFull, "is not writable: Read-only file system"),
        (errno.EIO, StorageUnavailable, "failed: Input/output error"),
    ],
)
def test_os_errors_are_translated(code: int, kind: type[Exception], words: str) -> None:
    error = storage_error(Path("/srv/artifacts"), OSError(code, os.strerror(code), "/srv/x"))
    assert type(error) is kind
    assert str(error) == f"artifact directory /srv/artifacts {words}"


def test_disk_full_while_writing_aborts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalDirectoryStore(tmp_path / "artifacts", part_size=PART)
    real_fdopen = os.fdopen

    class FullDisk(io.RawIOBase):
        """The temp file of a disk that fills up after the first part."""

        def __init__(self, fd: int) -> None:
            self.inner = real_fdopen(fd, "wb")
            self.parts = 0

        def write(self, data: bytes) -> int:  # type: ignore[override]
            self.parts += 1
            if self.parts > 1:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.inner.write(data)

        def close(self) -> None:
            self.inner.close()
            super().close()

    monkeypatch.setattr("app.storage.local.os.fdopen", lambda fd, mode: FullDisk(fd))

    with pytest.raises(StorageFull, match="is full: No space left on device"):
        store_file(store, io.BytesIO(os.urandom(2 * PART + 1)))
    assert list((tmp_path / "artifacts" / ".tmp").iterdir()) == []


def test_stale_temp_files_are_purged(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path / "artifacts", part_size=PART)
    store.check()
    stale = tmp_path / "artifacts" / ".tmp" / "0123"
    stale.write_bytes(b"half an upload")
    os.utime(stale, (0, 0))
    fresh = store.begin_upload()

    assert store.purge_stale_uploads(timedelta(hours=1)) == 1
    assert not stale.exists()
    fresh.abort()
