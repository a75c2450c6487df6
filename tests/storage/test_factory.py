"""open_store(): which URL builds which store, and one clear line when it cannot."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import ConfigurationError
from app.storage import LocalDirectoryStore, S3Store, open_store


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://models", "models", ""),
        ("s3://models/", "models", ""),
        ("s3://models/team-a/artifacts/", "models", "team-a/artifacts"),
        ("  s3://my.bucket-1/x  ", "my.bucket-1", "x"),
    ],
)
def test_s3_urls(url: str, bucket: str, prefix: str) -> None:
    store = open_store(url, s3_endpoint_url="http://127.0.0.1:9000", s3_region="eu-west-1")
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix) == (bucket, prefix)
    assert store.endpoint_url == "http://127.0.0.1:9000"
    assert store.part_size == 8 * 1024 * 1024


def test_part_size_is_passed_on(tmp_path: Path) -> None:
    assert open_store("s3://models", part_size=16 << 20).part_size == 16 << 20
    assert open_store(str(tmp_path), part_size=1 << 20).part_size == 1 << 20


def test_directory_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for url, expected in [
        (str(tmp_path / "a"), tmp_path / "a"),
        (f"file://{tmp_path}/b", tmp_path / "b"),
        ("relative/dir", tmp_path / "relative" / "dir"),
    ]:
        store = open_store(url)
        assert isinstance(store, LocalDirectoryStore)
        assert store.root == expected
    assert not (tmp_path / "a").exists()  # opening does not create; check() does


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("", "is empty"),
        ("s3://", "has no bucket"),
        ("s3:///prefix", "has no bucket"),
        ("gs://bucket/x", "unsupported artifact store scheme gs://"),
        ("https://example.com/x", "unsupported artifact store scheme https://"),
        ("s3://Bad_Bucket", "not a valid S3 bucket name"),
        ("s3://ab", "not a valid S3 bucket name"),
        ("s3://key:secret@bucket", "must not hold credentials"),
        ("s3://bucket?region=x", "query or fragment"),
        ("s3://bucket/a/../b", "prefix segment"),
        ("file://", "names no directory"),
    ],
)
def test_bad_urls(url: str, words: str) -> None:
    with pytest.raises(ConfigurationError, match=words) as raised:
        open_store(url)
    assert "\n" not in str(raised.value)


def test_bad_part_size_and_endpoint() -> None:
    with pytest.raises(ConfigurationError, match="part size"):
        open_store("s3://models", part_size=1 << 20)
    with pytest.raises(ConfigurationError, match="endpoint"):
        open_store("s3://models", s3_endpoint_url="not a url")
