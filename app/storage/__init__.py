"""Artifact storage: content-addressed model artifacts behind one interface.

Two stores implement :class:`ArtifactStore`: :class:`LocalDirectoryStore` (the embedded
default) and :class:`S3Store` (AWS S3, MinIO, Ceph). :func:`open_store` builds one
from the ``artifact_store`` setting; :func:`store_stream` uploads a request body with
flat memory, hashing it on the way. Keys are ``sha256/<digest>`` and are only ever
made from digests computed here, so no client-supplied string reaches a path or an
object name, and no botocore or OS error type leaves this package: callers see
:mod:`app.errors` types only.
"""

from app.storage.base import (
    DEFAULT_PART_SIZE,
    ArtifactStore,
    ArtifactUpload,
    ObjectInfo,
    StoredObject,
    content_disposition,
    digest_of_key,
    key_for,
    validate_sha256,
)
from app.storage.factory import open_store
from app.storage.local import LocalDirectoryStore
from app.storage.s3 import S3Store
from app.storage.streaming import store_file, store_stream

__all__ = [
    "DEFAULT_PART_SIZE",
    "ArtifactStore",
    "ArtifactUpload",
    "LocalDirectoryStore",
    "ObjectInfo",
    "S3Store",
    "StoredObject",
    "content_disposition",
    "digest_of_key",
    "key_for",
    "open_store",
    "store_file",
    "store_stream",
    "validate_sha256",
]
