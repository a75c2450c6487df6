"""Artifact bookkeeping around the store: what may be uploaded, and recording what was.

An upload is three steps so that no database transaction stays open while bytes
stream: check (short read), stream to the content-addressed store (no database), then
record under the model lock. Bytes reach the store before any row points at them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.roles import Principal
from app.db.base import utcnow
from app.errors import ArtifactConflict, ArtifactNotFound, ChecksumMismatch
from app.registry import service as registry
from app.registry.models import ArtifactStatus, ModelVersion
from app.storage.base import StoredObject


@dataclass(frozen=True)
class UploadPlan:
    expected_sha256: str | None


@dataclass(frozen=True)
class DownloadInfo:
    key: str
    sha256: str
    size: int
    media_type: str
    filename: str


def plan_upload(
    session: Session, *, model_name: str, number: int, declared_sha256: str | None
) -> UploadPlan:
    """Refuse early what can be refused before reading the body."""
    _, version = registry.get_version(session, model_name, number)
    expected = version.artifact_expected_sha256
    if declared_sha256 and expected and declared_sha256 != expected:
        raise ChecksumMismatch(
            f"the declared sha256 {declared_sha256} differs from the one the version "
            f"was created with ({expected})"
        )
    current = version.artifact_sha256
    if current is not None and declared_sha256 and declared_sha256 != current:
        raise ArtifactConflict(
            f"version {number} already has artifact sha256:{current}; artifacts are immutable"
        )
    return UploadPlan(expected_sha256=declared_sha256 or expected)


def record_upload(
    session: Session,
    *,
    actor: Principal,
    model_name: str,
    number: int,
    stored: StoredObject,
    media_type: str,
) -> ModelVersion:
    """Point the version at its stored, verified artifact (under the model lock)."""
    model, version = registry.lock_version(session, model_name, number)
    if version.artifact_sha256 is not None:
        if version.artifact_sha256 != stored.sha256:
            raise ArtifactConflict(
                f"version {number} already has artifact sha256:{version.artifact_sha256}; "
                "artifacts are immutable"
            )
        return version
    if version.artifact_expected_sha256 and version.artifact_expected_sha256 != stored.sha256:
        raise ChecksumMismatch(
            f"uploaded bytes have sha256 {stored.sha256}, the version expects "
            f"{version.artifact_expected_sha256}"
        )
    version.artifact_key = stored.key
    version.artifact_sha256 = stored.sha256
    version.artifact_size = stored.size
    version.artifact_etag = stored.etag
    version.artifact_media_type = media_type
    version.artifact_status = ArtifactStatus.VERIFIED.value
    version.artifact_uploaded_at = utcnow()
    version.updated_at = version.artifact_uploaded_at
    audit.record(
        session,
        actor=actor,
        action=AuditAction.ARTIFACT_UPLOADED,
        model=model.name,
        version=number,
        details={
            "sha256": stored.sha256,
            "size": stored.size,
            "media_type": media_type,
            "deduplicated": stored.deduplicated,
        },
    )
    return version


def download_info(session: Session, *, model_name: str, number: int) -> DownloadInfo:
    model, version = registry.get_version(session, model_name, number)
    if version.artifact_key is None or version.artifact_sha256 is None:
        raise ArtifactNotFound(f"version {number} of {model.name!r} has no artifact yet")
    return DownloadInfo(
        key=version.artifact_key,
        sha256=version.artifact_sha256,
        size=version.artifact_size or 0,
        media_type=version.artifact_media_type or "application/octet-stream",
        filename=f"{model.name}-v{number}",
    )
