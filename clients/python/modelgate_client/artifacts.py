"""Artifacts on the client side: sha256 while reading, and directories packed as one tar.

A directory is packed deterministically, so that the same files give the same bytes and
so the same sha256 wherever and whenever they are packed: entries in sorted order, every
mtime 0, owner and group 0 with no names, modes normalised (0755 for directories and
executables, 0644 otherwise), no compression (gzip output may differ between zlib
versions), the POSIX ustar/pax format. Symbolic links are stored as links; other special
files are refused.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes in total) as bytes are read, hashed or sent."""

CHUNK_SIZE = 1024 * 1024
TAR_MEDIA_TYPE = "application/x-tar"


def sha256_file(path: Path, *, progress: Progress | None = None) -> str:
    """The hex sha256 of a file, read in chunks (``progress`` sees every chunk)."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    done = 0
    if progress is not None:
        progress(0, size)
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_SIZE):
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, size)
    return digest.hexdigest()


def _entries(root: Path) -> Iterator[Path]:
    """Every path under ``root``, directories before their contents, in sorted order."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted([*dirnames, *filenames]):
            yield base / name


def _normalised(info: tarfile.TarInfo, mode: int) -> tarfile.TarInfo:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    executable = stat.S_ISDIR(mode) or bool(mode & 0o111)
    info.mode = 0o755 if executable else 0o644
    info.pax_headers = {}
    return info


def pack_directory(source: Path, dest: Path) -> None:
    """Write ``source`` (a directory) to ``dest`` as a deterministic tar."""
    paths = sorted(_entries(source), key=lambda p: p.relative_to(source).as_posix())
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in paths:
            name = path.relative_to(source).as_posix()
            st = path.lstat()
            kinds = (stat.S_ISDIR, stat.S_ISREG, stat.S_ISLNK)
            if not any(kind(st.st_mode) for kind in kinds):
                raise ValueError(f"{path}: only files, directories and links can be packed")
            info = _normalised(tar.gettarinfo(str(path), arcname=name), st.st_mode)
            if info.isreg():
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)


class PreparedArtifact:
    """A file ready to upload: its path, sha256, size and media type. A packed directory
    lives in a temporary file, removed by :meth:`close` (or the ``with`` block)."""

    def __init__(self, path: Path, sha256: str, media_type: str, *, temporary: bool) -> None:
        self.path = path
        self.sha256 = sha256
        self.media_type = media_type
        self.size = path.stat().st_size
        self._temporary = temporary

    def __enter__(self) -> PreparedArtifact:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._temporary:
            self.path.unlink(missing_ok=True)


def prepare_artifact(
    artifact: str | os.PathLike[str],
    *,
    media_type: str | None = None,
    progress: Progress | None = None,
) -> PreparedArtifact:
    """A file as it is, or a directory packed into a temporary tar; hashed either way."""
    source = Path(artifact)
    if source.is_dir():
        handle, name = tempfile.mkstemp(prefix="modelgate-", suffix=".tar")
        os.close(handle)
        packed = Path(name)
        try:
            pack_directory(source, packed)
            digest = sha256_file(packed, progress=progress)
        except BaseException:
            packed.unlink(missing_ok=True)
            raise
        return PreparedArtifact(packed, digest, media_type or TAR_MEDIA_TYPE, temporary=True)
    if not source.is_file():
        raise FileNotFoundError(2, "no such file or directory", str(source))
    digest = sha256_file(source, progress=progress)
    return PreparedArtifact(
        source, digest, media_type or "application/octet-stream", temporary=False
    )
