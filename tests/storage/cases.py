"""The store-under-test wrapper shared by the storage tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.storage.base import ArtifactStore, digest_of_key

PART = 5 * 1024 * 1024
"""S3's minimum part size; the smallest that exercises real multipart uploads."""


@dataclass
class StoreCase:
    """A store plus raw access to what it holds, bypassing the store's own API."""

    kind: str
    store: ArtifactStore
    root: Path | None = None
    client: Any = None
    bucket: str | None = None
    prefix: str = ""

    def leftovers(self) -> list[str]:
        """Everything in the store's area: objects, temp files, temp objects and
        unfinished multipart uploads (prefixed ``mpu:``)."""
        if self.root is not None:
            if not self.root.exists():
                return []
            return sorted(
                str(p.relative_to(self.root)) for p in self.root.rglob("*") if not p.is_dir()
            )
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            found += [obj["Key"] for obj in page.get("Contents", [])]
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        found += [f"mpu:{upload['Key']}" for upload in uploads]
        return sorted(found)

    def raw_name(self, key: str) -> str:
        """Where the store keeps ``key``: a path relative to the root, or an object name."""
        digest = digest_of_key(key)
        if self.root is not None:
            return f"sha256/{digest[:2]}/{digest}"
        return f"{self.prefix}/{key}" if self.prefix else key

    def overwrite_raw(self, key: str, data: bytes) -> None:
        """Replace the stored bytes directly, as disk rot or a stray tool would."""
        if self.root is not None:
            path = self.root / self.raw_name(key)
            path.chmod(0o644)
            path.write_bytes(data)
        else:
            self.client.put_object(Bucket=self.bucket, Key=self.raw_name(key), Body=data)

    def etag(self, key: str) -> str | None:
        if self.root is not None:
            return None
        head = self.client.head_object(Bucket=self.bucket, Key=self.raw_name(key))
        return str(head["ETag"]).strip('"')
