"""Artifact store in any S3-compatible bucket (AWS S3, MinIO, Ceph) through sync boto3.

Objects live under ``<prefix>/sha256/<digest>``. An upload whose digest is unknown in
advance goes to ``<prefix>/uploads/<uuid>`` and is copied server-side to its final key
once Modelgate has hashed the stream; an upload with a known digest goes straight to
the final key as a multipart upload, which S3 keeps invisible until it is completed,
and it is completed only if the digest matches. Objects smaller than one part skip
multipart and the temp key: their bytes are still in hand when the digest is known.

Existing objects are never replaced: writes check for the final key first and also
send ``If-None-Match: *`` so that two concurrent uploads of the same bytes cannot
both write (stores that ignore the header fall back to the check). The one exception
is a stored object whose size is wrong for its digest: it is damaged, and an upload
that holds the right bytes repairs it.

Every botocore and boto3 error is translated here into :mod:`app.errors` types; the
client is configured with short connect timeouts and few retries so that a dead
endpoint yields StorageUnavailable in seconds.
"""

from __future__ import annotations

import base64
import logging
import threading
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, cast

import boto3
import botocore.session
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.loaders import Loader, create_loader
from s3transfer.exceptions import RetriesExceededError, S3CopyFailedError
from urllib3.exceptions import HTTPError as Urllib3Error

from app.errors import (
    AppError,
    ArtifactNotFound,
    PayloadTooLarge,
    StorageFull,
    StorageUnavailable,
)
from app.storage.base import (
    DEFAULT_PART_SIZE,
    ObjectInfo,
    UploadBase,
    content_disposition,
    digest_of_key,
    key_for,
    take_unsent,
)

if TYPE_CHECKING:
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import (
        CompletedPartTypeDef,
        CopySourceTypeDef,
        HeadObjectOutputTypeDef,
    )

__all__ = ["S3Store"]

logger = logging.getLogger(__name__)

MIN_PART_SIZE = 5 * 1024 * 1024
"""S3's smallest allowed part (all but the last)."""
MAX_PART_SIZE = 5 * 1024**3
MAX_PARTS = 10_000
DEFAULT_PARTS_IN_FLIGHT = 4
"""UploadPart requests of one upload at once. Each holds one part in memory and one more
part is being filled: 5 x 8 MiB per upload by default. Measured with scripts/bench
(256 MiB into moto), 4 came closest to boto3's 10 of the 2-4 tried, with a server RSS
rise of 32-46 MiB."""
MAX_PARTS_IN_FLIGHT = 16
PRESIGN_MAX_SECONDS = 7 * 24 * 3600
"""SigV4 presigned URLs cannot live longer than a week."""

_UPLOADS = "uploads"
_PART_FIELDS = (
    "ETag",
    "ChecksumCRC32",
    "ChecksumCRC32C",
    "ChecksumCRC64NVME",
    "ChecksumSHA1",
    "ChecksumSHA256",
)
_TRANSPORT_ERRORS = (BotoCoreError, Boto3Error, S3CopyFailedError, RetriesExceededError)
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_DENIED_CODES = frozenset(
    {"403", "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
)
# What MinIO, Ceph and other S3-compatible stores answer when a quota or disk is full.
_FULL_CODES = frozenset(
    {
        "QuotaExceeded",
        "XMinioStorageFull",
        "XMinioAdminBucketQuotaExceeded",
        "XMinioAdminAccountQuotaExceeded",
        "InsufficientCapacity",
    }
)
# 412 from If-None-Match: * means the object appeared meanwhile; AWS answers 409
# ConditionalRequestConflict while a competing conditional write is in flight.
_CONDITION_CODES = frozenset({"412", "PreconditionFailed", "ConditionalRequestConflict"})


_Role = Literal["data", "control", "probe"]

# (connect timeout s, read timeout s, attempts) per kind of call. Refused connections
# fail in well under a second whatever the numbers; these bound the worse cases of an
# endpoint that never answers the SYN (connect x attempts) or accepts and then hangs
# (read x attempts).
_TIMEOUTS: dict[_Role, tuple[float, float, int]] = {
    # Part uploads, completes and copies: a large CompleteMultipartUpload or CopyObject
    # may take minutes, during which S3 sends keep-alive whitespace; 60 s of silence
    # means trouble.
    "data": (3, 60, 3),
    # HEAD, GET (first byte and every later read), DELETE, LIST, create/abort: small
    # answers, so a hung endpoint turns into a 503 in about 20 s instead of minutes.
    "control": (3, 10, 2),
    # The readiness probe does not retry: whoever calls it (an orchestrator) does.
    "probe": (2, 5, 1),
}


def _client_config(*, endpoint_url: str | None, role: _Role) -> Config:
    connect, read, attempts = _TIMEOUTS[role]
    options: dict[str, Any] = {
        "connect_timeout": connect,
        "read_timeout": read,
        "retries": {"mode": "standard", "total_max_attempts": attempts},
        # One pool per client shared by all request threads: anyio's default thread
        # limit is 40 and part uploads are limited to 32 at once per process
        # (streaming.PART_WRITERS), so 32 connections cover them without churn.
        "max_pool_connections": 32,
        "signature_version": "s3v4",
        "tcp_keepalive": True,
        "user_agent_extra": "modelgate",
    }
    if endpoint_url:
        # MinIO, Ceph and moto behind a plain host:port need path-style URLs; virtual
        # host style would put the bucket into a DNS name that does not resolve.
        options["s3"] = {"addressing_style": "path"}
    return Config(**options)


_LOADER_LOCK = threading.Lock()
_LOADER: Loader | None = None


def _botocore_session() -> botocore.session.Session:
    """A fresh botocore session (own credentials and config) sharing one model loader.

    Parsing the S3 service model costs ~0.2 s per session; sharing the read-only
    loader makes every store after the first cheap to build (CLI, tests, reloads).
    """
    global _LOADER
    with _LOADER_LOCK:
        if _LOADER is None:
            _LOADER = create_loader()
        session = botocore.session.get_session()
        session.register_component("data_loader", _LOADER)
    return session


def _etag(value: str | None) -> str | None:
    return value.strip('"') if value else None


def _full_object_sha256(value: str | None) -> str | None:
    """Hex digest of an S3 ``ChecksumSHA256`` if it covers the whole object.

    A multipart upload's checksum is a checksum of the parts' checksums (``...-N``),
    which says nothing comparable to the artifact's sha256: treated as none.
    """
    if not value or "-" in value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return None
    return raw.hex() if len(raw) == 32 else None


def _sha256_param(sha256: str) -> str:
    return base64.b64encode(bytes.fromhex(sha256)).decode("ascii")


def _error_code(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    code = error.get("Code")
    if code:
        return str(code)
    return str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "unknown"))


class S3Store:
    """Content-addressed artifacts in an S3 bucket; see the module docstring."""

    single_copy_limit: int = 5 * 1024**3
    """Largest object CopyObject accepts; bigger ones use boto3's multipart copy."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        parts_in_flight: int = DEFAULT_PARTS_IN_FLIGHT,
        client: Any = None,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 bucket name is required")
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(
                f"S3 part size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes, "
                f"got {part_size}"
            )
        if not 1 <= parts_in_flight <= MAX_PARTS_IN_FLIGHT:
            raise ValueError(
                f"S3 parts in flight must be between 1 and {MAX_PARTS_IN_FLIGHT}, "
                f"got {parts_in_flight}"
            )
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.part_size = part_size
        self.parts_in_flight = parts_in_flight
        self._base = f"{self.prefix}/" if self.prefix else ""
        if client is None:
            # A session of our own: boto3's default session is not thread-safe to create
            # clients from, and its config would leak into other code in the process.
            session = boto3.session.Session(
                botocore_session=_botocore_session(), region_name=region
            )
            clients = {
                role: session.client(
                    "s3",
                    endpoint_url=endpoint_url,
                    config=_client_config(endpoint_url=endpoint_url, role=role),
                )
                for role in _TIMEOUTS
            }
            self._data: S3Client = clients["data"]
            self._control: S3Client = clients["control"]
            self._probe: S3Client = clients["probe"]
        else:
            self._data = self._control = self._probe = client
        self.endpoint_url: str = self._data.meta.endpoint_url
        # Part checksums are computed here (_S3Upload._checksum) unless botocore was told to send
        # checksums only where S3 requires them (AWS_REQUEST_CHECKSUM_CALCULATION=
        # when_required, for S3-compatible stores that reject them).
        self._checksums: bool = (
            getattr(self._data.meta.config, "request_checksum_calculation", None) != "when_required"
        )

    def __repr__(self) -> str:
        return f"S3Store({self.bucket!r}, {self.prefix!r}, endpoint_url={self.endpoint_url!r})"

    def describe(self) -> str:
        location = f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket
        return f"s3://{location} (endpoint {self.endpoint_url})"

    def check(self) -> None:
        try:
            self._probe.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES | {"NoSuchBucket"}:
                raise StorageUnavailable(
                    f"S3 bucket {self.bucket} does not exist at {self.endpoint_url}"
                ) from exc
            raise self._translate(exc, "HeadBucket") from exc
        except _TRANSPORT_ERRORS as exc:
            raise self._translate(exc, "HeadBucket") from exc

    def key_for(self, sha256: str) -> str:
        return key_for(sha256)

    def exists(self, key: str) -> bool:
        return self._head(self._object_name(key)) is not None

    def begin_upload(self, expected_sha256: str | None = None) -> _S3Upload:
        if expected_sha256 is None:
            return _S3Upload(self, f"{self._base}{_UPLOADS}/{uuid.uuid4().hex}", None, "temp")
        final = self._object_name(key_for(expected_sha256))
        mode: Literal["direct", "discard"] = "discard" if self._head(final) else "direct"
        return _S3Upload(self, final, expected_sha256, mode)

    def open(self, key: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        name = self._object_name(key)
        try:
            # Requested here, not inside the generator, so a missing object raises now.
            response = self._control.get_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                raise ArtifactNotFound(f"artifact {key} is not in the store") from None
            raise self._translate(exc, "GetObject") from exc
        except _TRANSPORT_ERRORS as exc:
            raise self._translate(exc, "GetObject") from exc
        return self._stream(response["Body"], chunk_size)

    def size(self, key: str) -> int | None:
        head = self._head(self._object_name(key))
        return None if head is None else head["ContentLength"]

    def stat(self, key: str) -> ObjectInfo | None:
        head = self._head(self._object_name(key), checksum=self._checksums)
        if head is None:
            return None
        return ObjectInfo(
            size=head["ContentLength"],
            etag=_etag(head.get("ETag")),
            checksum_sha256=_full_object_sha256(head.get("ChecksumSHA256")),
        )

    def keys(self) -> Iterator[str]:
        namespace = f"{self._base}sha256/"
        with self._errors("ListObjectsV2"):
            pages = self._control.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=namespace
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    digest = obj["Key"][len(namespace) :]
                    try:
                        yield key_for(digest)
                    except ValueError:
                        continue  # not one of ours (a stray object under the namespace)

    def presigned_url(
        self, key: str, *, expires_seconds: int, filename: str | None = None
    ) -> str | None:
        if not 1 <= expires_seconds <= PRESIGN_MAX_SECONDS:
            raise ValueError(
                f"expires_seconds must be between 1 and {PRESIGN_MAX_SECONDS}, "
                f"got {expires_seconds}"
            )
        params: dict[str, str] = {"Bucket": self.bucket, "Key": self._object_name(key)}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        with self._errors("presign GetObject"):
            return self._control.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires_seconds
            )

    def delete(self, key: str) -> None:
        with self._errors("DeleteObject"):
            self._control.delete_object(Bucket=self.bucket, Key=self._object_name(key))

    def purge_stale_uploads(self, older_than: timedelta) -> int:
        cutoff = datetime.now(UTC) - older_than
        removed = 0
        # Only our own namespaces: with an empty prefix the bucket may be shared.
        namespaces = [f"{self._base}sha256/", f"{self._base}{_UPLOADS}/"]
        with self._errors("purge stale uploads"):
            for namespace in namespaces:
                pages = self._control.get_paginator("list_multipart_uploads").paginate(
                    Bucket=self.bucket, Prefix=namespace
                )
                for page in pages:
                    for mpu in page.get("Uploads", []):
                        if mpu["Initiated"] < cutoff:
                            self._abort_multipart(mpu["Key"], mpu["UploadId"])
                            removed += 1
            pages_v2 = self._control.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=namespaces[1]
            )
            for page_v2 in pages_v2:
                for obj in page_v2.get("Contents", []):
                    if obj["LastModified"] < cutoff:
                        self._control.delete_object(Bucket=self.bucket, Key=obj["Key"])
                        removed += 1
        return removed

    # internals ------------------------------------------------------------------

    def _object_name(self, key: str) -> str:
        digest_of_key(key)
        return f"{self._base}{key}"

    def _head(self, name: str, *, checksum: bool = False) -> HeadObjectOutputTypeDef | None:
        try:
            if checksum:
                return self._control.head_object(
                    Bucket=self.bucket, Key=name, ChecksumMode="ENABLED"
                )
            return self._control.head_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                return None
            raise self._translate(exc, "HeadObject") from exc
        except _TRANSPORT_ERRORS as exc:
            raise self._translate(exc, "HeadObject") from exc

    def _abort_multipart(self, name: str, upload_id: str) -> None:
        try:
            self._control.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
        except ClientError as exc:
            if _error_code(exc) != "NoSuchUpload":
                raise

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            raise self._translate(exc, action) from exc
        except _TRANSPORT_ERRORS as exc:
            raise self._translate(exc, action) from exc

    def _translate(self, exc: Exception, action: str) -> AppError:
        """The one place botocore errors become Modelgate errors."""
        where = f"bucket {self.bucket} at {self.endpoint_url}"
        if not isinstance(exc, ClientError):
            return StorageUnavailable(f"S3 {action} failed for {where}: {exc}")
        code = _error_code(exc)
        message = exc.response.get("Error", {}).get("Message", "")
        if code == "NoSuchBucket":
            return StorageUnavailable(
                f"S3 bucket {self.bucket} does not exist at {self.endpoint_url}"
            )
        if code in _DENIED_CODES:
            return StorageUnavailable(f"S3 {action} was denied for {where} ({code})")
        if code in _FULL_CODES:
            return StorageFull(f"S3 {action} failed for {where}: {code} {message}".rstrip())
        if code == "EntityTooLarge":
            return PayloadTooLarge(f"the artifact is larger than {where} accepts")
        return StorageUnavailable(f"S3 {action} failed for {where}: {code} {message}".rstrip())

    def _stream(self, body: StreamingBody, chunk_size: int) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(chunk_size)
        except (*_TRANSPORT_ERRORS, Urllib3Error, OSError) as exc:
            raise StorageUnavailable(
                f"S3 download from bucket {self.bucket} at {self.endpoint_url} broke off: {exc}"
            ) from exc
        finally:
            body.close()


class _S3Upload(UploadBase):
    """One upload; ``mode`` says where its bytes go.

    ``temp``: ``uploads/<uuid>``, then copied to the final key. ``direct``: a multipart
    upload on the final key, completed only if the digest matches. ``discard``: the
    final object already exists, so parts are only counted.

    Parts are numbered in stream order by :meth:`next_part` and may then be sent by
    several threads at once; the multipart upload is created by whichever part gets
    there first, and completion lists the parts by number whatever order they
    finished in.
    """

    def __init__(
        self,
        store: S3Store,
        target: str,
        expected_sha256: str | None,
        mode: Literal["temp", "direct", "discard"],
    ) -> None:
        super().__init__(expected_sha256)
        self._store = store
        self._data = store._data
        self._control = store._control
        self._target = target
        self._mode = mode
        self._lock = threading.Lock()
        """Guards the part maps below; held only briefly (next_part runs on the event loop)."""
        self._create_lock = threading.Lock()
        """Held while the multipart upload is created: other parts wait for it."""
        self._upload_id: str | None = None
        self._create_error: Exception | None = None
        self._parts: dict[int, CompletedPartTypeDef] = {}
        # A first part shorter than part_size is the whole object: keep it for one
        # PutObject at complete() instead of starting a multipart upload.
        self._small: bytes | bytearray | None = None
        self._single = False
        self._temp_written = False

    def next_part(self, size: int) -> int:
        self._check_open()
        if self._short_part_seen:
            raise ValueError("only the last part may be shorter than part_size")
        if self._mode != "discard" and self._numbered >= MAX_PARTS:
            limit = MAX_PARTS * self._store.part_size
            raise PayloadTooLarge(
                f"artifact exceeds {limit} bytes, the S3 limit of {MAX_PARTS} parts of "
                f"{self._store.part_size} bytes; raise the upload part size"
            )
        if size < self._store.part_size:
            self._short_part_seen = True
            self._single = self._numbered == 0
        self._written += size
        self._numbered += 1
        with self._lock:
            self._unsent[self._numbered] = size
        return self._numbered

    def send_part(self, number: int, data: bytes | bytearray) -> None:
        self._check_open()
        with self._lock:
            take_unsent(self._unsent, number, len(data), in_order=False)
        if self._mode == "discard":
            return
        if self._single:
            # Kept, not copied: the caller hands the last (here: only) part over.
            self._small = data
            return
        with self._store._errors("UploadPart"):
            upload_id = self._multipart_id()
            response = self._data.upload_part(
                Bucket=self._store.bucket,
                Key=self._target,
                UploadId=upload_id,
                PartNumber=number,
                # botocore takes a bytearray as it is (the stubs say bytes): one
                # sendall() of the caller's buffer, where bytes would be wrapped in a
                # BytesIO and sent 16 KiB at a time after an Expect: 100-continue.
                Body=cast("bytes", data),
                **self._checksum(data),
            )
        # Completing must repeat any per-part checksum sent or negotiated.
        raw = cast("dict[str, Any]", response)
        part = {field: raw[field] for field in _PART_FIELDS if field in raw}
        part["PartNumber"] = number
        with self._lock:
            self._parts[number] = cast("CompletedPartTypeDef", part)

    def _publish_key(self, key: str, size: int) -> tuple[str | None, bool]:
        return self._publish(self._store._object_name(key), key, size)

    def abort(self) -> None:
        if self._state != "open":
            return
        self._state = "aborted"
        self._small = None
        try:
            if self._upload_id is not None:
                self._store._abort_multipart(self._target, self._upload_id)
            if self._temp_written:
                self._control.delete_object(Bucket=self._store.bucket, Key=self._target)
        except (ClientError, *_TRANSPORT_ERRORS) as exc:
            # Raising here would hide the error that made the caller abort;
            # purge_stale_uploads() collects what is left.
            logger.warning("could not clean up aborted upload of %s: %s", self._target, exc)

    # internals ------------------------------------------------------------------

    def _multipart_id(self) -> str:
        """The multipart upload's id, created by the first part to need it.

        Other parts wait for the creation; if it failed, they fail with the same error
        instead of trying again each.
        """
        with self._create_lock:
            if self._upload_id is None:
                if self._create_error is not None:
                    raise self._create_error
                try:
                    created = self._control.create_multipart_upload(
                        Bucket=self._store.bucket,
                        Key=self._target,
                        ContentType="application/octet-stream",
                    )
                except Exception as exc:
                    self._create_error = exc
                    raise
                self._upload_id = created["UploadId"]
            return self._upload_id

    def _checksum(self, body: bytes | bytearray) -> dict[str, Any]:
        """The CRC32 that botocore would otherwise compute, as a request parameter.

        Computed here so that botocore sends the checksum as a header: left to itself it
        sends it as an aws-chunked trailer over HTTPS, and for that copies a bytearray
        body into a BytesIO (one more part in memory per part in flight).
        """
        if not self._store._checksums:
            return {}
        digest = zlib.crc32(body).to_bytes(4, "big")
        return {"ChecksumCRC32": base64.b64encode(digest).decode("ascii")}

    def _completed_parts(self) -> list[CompletedPartTypeDef]:
        """Every part, by number; a gap would complete a different object."""
        missing = [n for n in range(1, self._numbered + 1) if n not in self._parts]
        if missing:
            raise RuntimeError(f"parts {missing} were never uploaded")
        return [self._parts[n] for n in range(1, self._numbered + 1)]

    def _publish(self, final: str, key: str, size: int) -> tuple[str | None, bool]:
        """Make the bytes available under ``final``; returns (etag, deduplicated)."""
        existing = self._store._head(final)
        damaged = existing is not None and existing["ContentLength"] != size
        if existing is not None and not damaged:
            self._discard()
            return _etag(existing.get("ETag")), True
        if damaged and self._mode == "discard":
            assert existing is not None
            logger.error(
                "stored artifact %s is damaged: size %d, expected %d",
                key,
                existing["ContentLength"],
                size,
            )
            raise StorageUnavailable(
                f"stored artifact {key} is damaged (size {existing['ContentLength']}, "
                f"expected {size}); upload it without an expected digest to repair it"
            )
        if self._mode == "discard":
            raise StorageUnavailable(
                f"artifact {key} was removed while the upload ran; retry the upload"
            )
        if damaged:
            # We hold the right bytes for this digest: replacing is a repair.
            logger.warning("replacing damaged artifact %s (size differs)", key)
        try:
            etag = self._write_final(final, digest_of_key(key), size, overwrite=damaged)
        except ClientError as exc:
            if _error_code(exc) not in _CONDITION_CODES:
                raise self._store._translate(exc, "publish") from exc
            # Another upload of the same bytes got there first.
            existing = self._store._head(final)
            if existing is None:
                raise StorageUnavailable(
                    f"a concurrent upload of artifact {key} is in progress; retry"
                ) from exc
            self._discard()
            return _etag(existing.get("ETag")), True
        return etag, False

    def _write_final(self, final: str, sha256: str, size: int, *, overwrite: bool) -> str | None:
        """Write the object to ``final``; ClientError passes through for the caller's 412 check."""
        condition: dict[str, Any] = {} if overwrite else {"IfNoneMatch": "*"}
        bucket = self._store.bucket
        try:
            if self._small is not None or self._upload_id is None:
                body, self._small = self._small or b"", None
                # The store keeps (and S3 verifies) the artifact's own sha256: later
                # integrity checks can read it back instead of re-reading the bytes.
                checksum: dict[str, Any] = (
                    {"ChecksumAlgorithm": "SHA256", "ChecksumSHA256": _sha256_param(sha256)}
                    if self._store._checksums
                    else {}
                )
                put = self._data.put_object(
                    Bucket=bucket,
                    Key=final,
                    Body=cast("bytes", body),
                    ContentType="application/octet-stream",
                    **checksum,
                    **condition,
                )
                return _etag(put.get("ETag"))
            if self._mode == "direct":
                done = self._data.complete_multipart_upload(
                    Bucket=bucket,
                    Key=final,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._completed_parts()},
                    **condition,
                )
                self._upload_id = None
                return _etag(done.get("ETag"))
            # temp mode: finish the temp object, then copy it server-side.
            self._data.complete_multipart_upload(
                Bucket=bucket,
                Key=self._target,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._completed_parts()},
            )
            self._upload_id = None
            self._temp_written = True
            etag = self._copy(final, size, condition)
            self._discard()
            return etag
        except _TRANSPORT_ERRORS as exc:
            raise self._store._translate(exc, "publish") from exc

    def _copy(self, final: str, size: int, condition: dict[str, Any]) -> str | None:
        bucket = self._store.bucket
        source: CopySourceTypeDef = {"Bucket": bucket, "Key": self._target}
        if size <= self._store.single_copy_limit:
            # No ChecksumAlgorithm=SHA256 here, though S3 would then keep a full-object
            # sha256 of the copy: moto's CopyObject fails with 500s under concurrent
            # copies to one key far more often with it. Objects of one part and more are
            # verified by re-hashing (docs/decisions/0012-artifact-integrity.md).
            copied = self._data.copy_object(
                Bucket=bucket, Key=final, CopySource=source, **condition
            )
            return _etag(copied.get("CopyObjectResult", {}).get("ETag"))
        # Multipart copy cannot carry If-None-Match; _publish checked just before.
        self._data.copy(
            source,
            bucket,
            final,
            Config=TransferConfig(
                multipart_threshold=self._store.single_copy_limit,
                multipart_chunksize=max(256 * 1024 * 1024, -(-size // (MAX_PARTS - 1))),
                max_concurrency=8,
            ),
        )
        head = self._store._head(final)
        return None if head is None else _etag(head.get("ETag"))

    def _discard(self) -> None:
        """Drop this upload's own bytes once the final object is in place.

        Best effort: the artifact is already safely stored, so a failed clean-up must
        not fail the upload; purge_stale_uploads() collects what is left.
        """
        self._small = None
        try:
            if self._upload_id is not None:
                upload_id, self._upload_id = self._upload_id, None
                self._store._abort_multipart(self._target, upload_id)
            if self._temp_written:
                self._temp_written = False
                self._control.delete_object(Bucket=self._store.bucket, Key=self._target)
        except (ClientError, *_TRANSPORT_ERRORS) as exc:
            logger.warning("could not clean up upload of %s: %s", self._target, exc)
