"""Routes that stream artifacts into and out of the store."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from itertools import chain
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from app.api.deps import (
    Admin,
    ModelPath,
    ModelReader,
    ModelSubmitter,
    SettingsDep,
    StoreDep,
    UowDep,
    VersionPath,
    require_unscoped,
)
from app.api.problems import responses
from app.api.uow import UnitOfWork
from app.auth.roles import Principal
from app.errors import ValidationFailed
from app.registry import artifacts, scrub
from app.registry import service as registry
from app.registry.schemas import VersionRead
from app.registry.scrub import ScrubReport, ScrubRequest
from app.storage.base import ArtifactStore, content_disposition
from app.storage.integrity import ArtifactCheck, ContentMismatch, StreamVerifier
from app.storage.streaming import store_stream

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/models/{model}/versions/{version:int}", tags=["artifacts"])

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MEDIA_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")


@router.put(
    "/artifact",
    response_model=VersionRead,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503, 507),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {
                    # an empty body is refused (no model is zero bytes): stated, not a surprise
                    "schema": {"type": "string", "format": "binary", "minLength": 1}
                }
            },
        }
    },
)
async def upload_artifact(
    model: ModelPath,
    version: VersionPath,
    request: Request,
    uow: UowDep,
    principal: ModelSubmitter,
    store: StoreDep,
    settings: SettingsDep,
    sha256: Annotated[
        str | None,
        Header(
            alias="X-Artifact-SHA256",
            pattern="^[0-9A-Fa-f]{64}$",
            description="Hex sha256 of the body; a mismatch is refused and nothing is kept.",
        ),
    ] = None,
    content_type: Annotated[str | None, Header(alias="Content-Type")] = None,
) -> VersionRead:
    """Stream the artifact body to the store, computing its sha256 and size on the way.

    Artifacts are immutable and stored by content: uploading the same bytes again is a
    no-op, other bytes are a 409."""
    declared = sha256.lower() if sha256 else None
    if declared is not None and not _SHA256.match(declared):
        raise ValidationFailed(
            "X-Artifact-SHA256 must be 64 hex characters",
            errors=[{"loc": ["header", "X-Artifact-SHA256"], "msg": "not a sha256 hex digest"}],
        )
    media_type = (content_type or "application/octet-stream").split(";", 1)[0].strip().lower()
    if not _MEDIA_TYPE.match(media_type) or len(media_type) > 255:
        media_type = "application/octet-stream"

    plan = await run_in_threadpool(
        artifacts.plan_upload,
        uow.session,
        model_name=model,
        number=version,
        declared_sha256=declared,
    )
    # End the read transaction: no connection or lock is held while the body streams.
    await run_in_threadpool(uow.commit)
    stored = await store_stream(
        store,
        request.stream(),
        expected_sha256=plan.expected_sha256,
        max_bytes=settings.max_artifact_bytes,
    )

    def record() -> VersionRead:
        v = artifacts.record_upload(
            uow.session,
            actor=principal,
            model_name=model,
            number=version,
            stored=stored,
            media_type=media_type,
        )
        return registry.to_version_read(model, v)

    return await run_in_threadpool(record)


@router.get(
    "/artifact",
    response_class=Response,
    responses={
        200: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            }
        },
        307: {"description": "Redirect to a presigned URL of the store"},
        **responses(401, 403, 404, 409, 422, 503),
    },
)
def download_artifact(
    model: ModelPath,
    version: VersionPath,
    request: Request,
    uow: UowDep,
    principal: ModelReader,
    store: StoreDep,
    settings: SettingsDep,
    redirect: Annotated[
        bool | None,
        Query(description="Redirect to a presigned store URL (S3 only); default from settings."),
    ] = None,
) -> Response:
    """Download the artifact: streamed through the server (verified while it streams), or a
    redirect to the store. A corrupt artifact is not served (409)."""
    info = artifacts.download_info(uow.session, model_name=model, number=version)
    headers = {
        "ETag": f'"{info.sha256}"',
        "X-Artifact-SHA256": info.sha256,
        "Content-Disposition": content_disposition(info.filename),
    }
    want_redirect = settings.s3_presign_downloads if redirect is None else redirect
    if want_redirect and _unchanged_since_upload(store, info):
        url = store.presigned_url(
            info.key, expires_seconds=settings.presign_expiry_seconds, filename=info.filename
        )
        if url is not None:
            return RedirectResponse(url, status_code=307, headers=headers)
    # Read the first chunk before answering, so that a missing object or a dead store is
    # a problem answer, not a 200 whose body breaks off.
    chunks = store.open(info.key)
    first = next(chunks, b"")
    verified = StreamVerifier(chain([first], chunks), sha256=info.sha256, size=info.size)
    sessions: sessionmaker[Session] = request.app.state.sessions

    def body() -> Iterator[bytes]:
        try:
            yield from verified
        except ContentMismatch as exc:
            # The last chunk is still held back: the client gets a body that breaks off
            # short of Content-Length, never a clean end of altered bytes.
            _record_corrupt(sessions, principal, model, version, exc.check)
            raise

    headers["Content-Length"] = str(info.size)
    return StreamingResponse(
        iterate_in_threadpool(body()), media_type=info.media_type, headers=headers
    )


def _unchanged_since_upload(store: ArtifactStore, info: artifacts.DownloadInfo) -> bool:
    """Whether the store may serve the bytes itself: the object still has the size and
    ETag recorded at upload (a rewrite changes the ETag). Otherwise the download streams
    through the server, which hashes what it sends."""
    if info.etag is None:
        return False
    found = store.stat(info.key)
    return found is not None and found.size == info.size and found.etag == info.etag


def _record_corrupt(
    sessions: sessionmaker[Session], actor: Principal, model: str, number: int, check: ArtifactCheck
) -> None:
    """Mark the version corrupt in a transaction of its own (the request's has ended)."""
    logger.error("artifact of %s v%s failed verification while downloading: %s", model, number,
                 check.detail)  # fmt: skip
    uow = UnitOfWork(sessions)
    try:
        artifacts.record_check_by_name(
            uow.session, actor=actor, model_name=model, number=number, check=check, via="download"
        )
        uow.finish()
    except Exception:
        uow.abort()
        logger.exception("could not mark the artifact of %s v%s corrupt", model, number)


scrub_router = APIRouter(prefix="/artifacts", tags=["artifacts"])


@scrub_router.post(
    "/scrub", response_model=ScrubReport, responses=responses(400, 401, 403, 413, 422, 503)
)
def scrub_artifacts(
    body: ScrubRequest, uow: UowDep, principal: Admin, store: StoreDep
) -> ScrubReport:
    """Re-verify the next batch of referenced artifacts, record each result (a corrupt one
    is marked and announced), and on the last batch list the objects no version names."""
    require_unscoped(principal)
    return scrub.scrub(uow.session, actor=principal, store=store, request=body)
