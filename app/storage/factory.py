"""Build the configured artifact store from one URL setting.

``s3://bucket/optional/prefix`` selects :class:`S3Store`; anything else is a directory
(``file://`` accepted). Mistakes are reported as ConfigurationError with one line that
says what is wrong and what is expected, because they surface at start-up.
"""

from __future__ import annotations

import re
from pathlib import Path

from app.errors import ConfigurationError
from app.storage.base import DEFAULT_PART_SIZE, ArtifactStore
from app.storage.local import LocalDirectoryStore
from app.storage.s3 import DEFAULT_PARTS_IN_FLIGHT, S3Store

__all__ = ["open_store"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# S3's naming rules for new buckets (3-63 characters, lowercase, digits, dots, hyphens).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def open_store(
    url: str,
    *,
    s3_endpoint_url: str | None = None,
    s3_region: str | None = None,
    part_size: int = DEFAULT_PART_SIZE,
    parts_in_flight: int = DEFAULT_PARTS_IN_FLIGHT,
) -> ArtifactStore:
    """The store named by ``url``; ConfigurationError (one line) if it cannot work.

    ``parts_in_flight`` applies to S3 (parts of one upload sent at once); a directory
    is always written one part after another."""
    url = url.strip()
    if not url:
        raise ConfigurationError(
            "artifact store URL is empty: use a directory path or s3://bucket/prefix"
        )
    match = _SCHEME.match(url)
    scheme = match.group(1).lower() if match else None
    if scheme == "s3":
        return _open_s3(
            url,
            s3_endpoint_url=s3_endpoint_url,
            s3_region=s3_region,
            part_size=part_size,
            parts_in_flight=parts_in_flight,
        )
    if scheme not in (None, "file"):
        raise ConfigurationError(
            f"unsupported artifact store scheme {scheme}:// in {url!r}: "
            "use a directory path, file:///path or s3://bucket/prefix"
        )
    path = url[len("file://") :] if scheme == "file" else url
    if not path:
        raise ConfigurationError(f"artifact store URL {url!r} names no directory")
    try:
        return LocalDirectoryStore(Path(path), part_size=part_size)
    except ValueError as exc:
        raise ConfigurationError(f"artifact store {url!r}: {exc}") from None


def _open_s3(
    url: str,
    *,
    s3_endpoint_url: str | None,
    s3_region: str | None,
    part_size: int,
    parts_in_flight: int,
) -> S3Store:
    rest = url[len("s3://") :]
    if any(c in rest for c in "?#"):
        raise ConfigurationError(f"artifact store URL {url!r} must not carry a query or fragment")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ConfigurationError(
            f"artifact store URL {url!r} has no bucket: use s3://bucket/prefix"
        )
    if "@" in bucket or ":" in bucket:
        raise ConfigurationError(
            f"artifact store URL {url!r} must not hold credentials or a port: "
            "credentials come from the AWS environment, the endpoint from MODELGATE_S3_ENDPOINT_URL"
        )
    if _BUCKET.fullmatch(bucket) is None or ".." in bucket:
        raise ConfigurationError(
            f"artifact store URL {url!r}: {bucket!r} is not a valid S3 bucket name "
            "(3-63 lowercase letters, digits, dots and hyphens)"
        )
    prefix = prefix.strip("/")
    if any(segment in ("", ".", "..") for segment in prefix.split("/")) and prefix:
        raise ConfigurationError(f"artifact store URL {url!r} has an empty, . or .. prefix segment")
    try:
        return S3Store(
            bucket,
            prefix,
            endpoint_url=s3_endpoint_url or None,
            region=s3_region or None,
            part_size=part_size,
            parts_in_flight=parts_in_flight,
        )
    except ValueError as exc:
        # botocore rejects malformed endpoint URLs and region names with ValueError.
        raise ConfigurationError(f"artifact store {url!r}: {exc}") from None
