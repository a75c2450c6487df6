"""Deterministic packing of a model directory, hashing, and progress lines for CI logs."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import pytest

from modelgate_client.artifacts import TAR_MEDIA_TYPE, pack_directory, prepare_artifact
from modelgate_client.cli.progress import LogProgress, progress_line


def _model_dir(root: Path, *, mtime: int, mode: int) -> Path:
    (root / "b").mkdir(parents=True)
    (root / "a.json").write_text('{"x": 1}\n')
    (root / "b" / "weights.bin").write_bytes(b"\x00\x01" * 5000)
    (root / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "run.sh", 0o755)  # noqa: S103  (an executable in the model)
    for path in [root / "a.json", root / "b" / "weights.bin"]:
        os.chmod(path, mode)
    for path in [*root.rglob("*"), root]:
        os.utime(path, (mtime, mtime))
    return root


def test_same_files_give_the_same_digest(tmp_path: Path) -> None:
    one = _model_dir(tmp_path / "one", mtime=1_000_000, mode=0o600)
    two = _model_dir(tmp_path / "two", mtime=2_000_000, mode=0o664)
    with prepare_artifact(one) as first, prepare_artifact(two) as second:
        assert first.sha256 == second.sha256
        assert first.media_type == TAR_MEDIA_TYPE
        assert first.path.read_bytes() == second.path.read_bytes()
        packed = first.path
        with tarfile.open(packed) as tar:
            members = {m.name: m for m in tar.getmembers()}
        assert list(members) == ["a.json", "b", "b/weights.bin", "run.sh"]
        assert {m.mtime for m in members.values()} == {0}
        assert {(m.uid, m.gid, m.uname, m.gname) for m in members.values()} == {(0, 0, "", "")}
        assert members["a.json"].mode == 0o644
        assert members["run.sh"].mode == 0o755
        assert members["b"].mode == 0o755
    assert not packed.exists()  # the temporary tar is removed


def test_a_changed_file_changes_the_digest(tmp_path: Path) -> None:
    root = _model_dir(tmp_path / "m", mtime=5, mode=0o644)
    before = tmp_path / "before.tar"
    pack_directory(root, before)
    (root / "a.json").write_text('{"x": 2}\n')
    after = tmp_path / "after.tar"
    pack_directory(root, after)
    assert before.read_bytes() != after.read_bytes()


def test_a_file_is_hashed_as_it_is_with_progress(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"x" * (3 * 1024 * 1024 + 5))
    seen: list[tuple[int, int]] = []
    with prepare_artifact(path, progress=lambda d, t: seen.append((d, t))) as prepared:
        assert prepared.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert prepared.path == path
        assert prepared.media_type == "application/octet-stream"
    assert path.exists()  # the caller's file is never removed
    assert seen[0] == (0, path.stat().st_size)
    assert seen[-1] == (path.stat().st_size, path.stat().st_size)


def test_a_missing_artifact_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        prepare_artifact(tmp_path / "nope")


def test_log_progress_writes_a_line_every_interval() -> None:
    now = [0.0]
    lines: list[str] = []
    log = LogProgress("uploading m.tar", interval=5, write=lines.append, clock=lambda: now[0])
    mib = 1024 * 1024
    for second in range(1, 13):
        now[0] = float(second)
        log(second * 2 * mib, 24 * mib)
    log.finish()
    assert len(lines) == 3  # at 5 s and 10 s, and the last line at 12 s
    assert lines[0] == "uploading m.tar: 10.0 MiB of 24.0 MiB (41%), 2.0 MiB/s, 7s left"
    assert lines[-1].startswith("uploading m.tar: 24.0 MiB of 24.0 MiB (100%)")


def test_a_short_transfer_stays_quiet() -> None:
    lines: list[str] = []
    log = LogProgress("hashing", interval=5, write=lines.append, clock=lambda: 1.0)
    log(10, 10)
    log.finish()
    assert lines == []
    assert progress_line("x", 0, 0, 0) == "x: 0 B of 0 B, 0 B/s"
