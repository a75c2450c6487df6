"""Artifact bookkeeping around the store: what may be uploaded, recording what was, and
whether the stored bytes are still the ones recorded.

An upload is three steps so that no database transaction stays open while bytes
stream: check (short read), stream to the content-addressed store (no database), then
record under the model lock. Bytes reach the store before any row points at them.

Verification (:func:`verify_version`) is the one path rollback, the ``artifact_intact``
gate and the scrub take; its result is recorded on the version
(``artifact_corrupt_at``, ``artifact_check``; the API reports status ``corrupt``), and a version
found corrupt is announced once with the ``artifact.corrupt`` audit action (and so
its ``artifact.corrupt`` webhook event). The download records what its streaming hash
found through :func:`record_check` in a transaction of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import event
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.roles import Principal
from app.db.base import utcnow
from app.errors import ArtifactConflict, ArtifactCorrupt, ArtifactNotFound, ChecksumMismatch
from app.registry import service as registry
from app.registry.models import ArtifactStatus, ModelVersion, RegisteredModel
from app.storage.base import ArtifactStore, StoredObject
from app.storage.integrity import ArtifactCheck, verify_artifact

logger = logging.getLogger(__name__)


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
    etag: str | None


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
    if version.artifact_corrupt_at is not None:
        check = version.artifact_check or {}
        raise ArtifactCorrupt(
            f"the stored artifact of version {number} of {model.name!r} does not match its "
            f"recorded sha256 ({check.get('detail', 'found corrupt')}); it is not served",
            artifact_check=check,
        )
    return DownloadInfo(
        key=version.artifact_key,
        sha256=version.artifact_sha256,
        size=version.artifact_size or 0,
        media_type=version.artifact_media_type or "application/octet-stream",
        filename=f"{model.name}-v{number}",
        etag=version.artifact_etag,
    )


def verify_version(
    session: Session,
    *,
    actor: Principal,
    store: ArtifactStore,
    model: RegisteredModel,
    version: ModelVersion,
    rehash: bool = False,
    via: str,
) -> ArtifactCheck | None:
    """Verify a version's stored artifact (content, see :mod:`app.storage.integrity`) and
    record the result on the version; None when the version has no artifact.

    A corrupt finding is recorded so that it survives the caller's transaction being
    rolled back (a refused rollback raises after this): see :func:`_keep_if_rolled_back`.
    """
    if version.artifact_key is None or version.artifact_sha256 is None:
        return None
    check = verify_artifact(
        store,
        key=version.artifact_key,
        sha256=version.artifact_sha256,
        size=version.artifact_size or 0,
        etag=version.artifact_etag,
        rehash=rehash,
    )
    record_check(session, actor=actor, model=model, version=version, check=check, via=via)
    if check.present and not check.intact:
        _keep_if_rolled_back(
            session,
            lambda retry: _record_again(
                retry, actor=actor, model_id=model.id, number=version.version, check=check, via=via
            ),
        )
    return check


def record_check(
    session: Session,
    *,
    actor: Principal,
    model: RegisteredModel,
    version: ModelVersion,
    check: ArtifactCheck,
    via: str,
) -> None:
    """Write a verification's result on the version; audit a change of verdict.

    Becoming corrupt records ``artifact.corrupt`` (a webhook event); a corrupt artifact
    found intact again (the object was repaired in the store) records ``artifact.verified``.
    A missing object changes nothing: it is reported to the caller, but a store that is
    misconfigured or being restored must not turn every version corrupt.
    """
    if not check.present:
        return
    now = utcnow()
    was_corrupt = version.artifact_corrupt_at is not None
    version.artifact_checked_at = now
    version.artifact_check = {**check.as_dict(), "via": via, "checked_at": now.isoformat()}
    if check.intact == (not was_corrupt):
        return
    if not check.intact:
        version.artifact_corrupt_at = now
        action, reason = AuditAction.ARTIFACT_CORRUPT, check.detail
    else:
        version.artifact_corrupt_at = None
        action, reason = (
            AuditAction.ARTIFACT_VERIFIED,
            "the stored artifact matches its sha256 again",
        )
    audit.record(
        session,
        actor=actor,
        action=action,
        model=model.name,
        version=version.version,
        reason=reason,
        details={**check.as_dict(), "via": via},
    )


def record_check_by_name(
    session: Session,
    *,
    actor: Principal,
    model_name: str,
    number: int,
    check: ArtifactCheck,
    via: str,
) -> None:
    """:func:`record_check` in a transaction of its own (the download's, after streaming)."""
    model, version = registry.lock_version(session, model_name, number)
    if version.artifact_sha256 != check.sha256_expected:
        return  # not the artifact that was checked (cannot happen: artifacts are immutable)
    record_check(session, actor=actor, model=model, version=version, check=check, via=via)


def _record_again(
    session: Session,
    *,
    actor: Principal,
    model_id: int,
    number: int,
    check: ArtifactCheck,
    via: str,
) -> None:
    model = session.get(RegisteredModel, model_id)
    if model is None:
        return
    record_check_by_name(
        session, actor=actor, model_name=model.name, number=number, check=check, via=via
    )


# Findings that must outlive a rolled-back transaction --------------------------------

_RETRY_KEY = "modelgate_keep_if_rolled_back"


@dataclass
class _Pending:
    callbacks: list[Callable[[Session], None]] = field(default_factory=list)


def _keep_if_rolled_back(session: Session, fn: Callable[[Session], None]) -> None:
    """Run ``fn`` in a new transaction if the current one rolls back; forget it on commit.

    A corrupt artifact refuses a rollback with an error, which rolls back the request's
    transaction together with the finding: this writes the finding again afterwards, on
    a session of its own (the first transaction's locks are released by then).
    """
    _install()
    pending: _Pending = session.info.setdefault(_RETRY_KEY, _Pending())
    pending.callbacks.append(fn)


def _after_commit(session: Session) -> None:
    if session.get_nested_transaction() is None:
        session.info.pop(_RETRY_KEY, None)


def _after_rollback(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return
    pending: _Pending | None = session.info.pop(_RETRY_KEY, None)
    if pending is None:
        return
    bind = session.get_bind()
    for fn in pending.callbacks:
        try:
            with Session(bind=bind) as retry, retry.begin():
                fn(retry)
        except Exception:
            logger.exception("could not record a corrupt artifact after a rollback")


_installed = False


def _install() -> None:
    global _installed
    if not _installed:
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_rollback", _after_rollback)
        _installed = True
