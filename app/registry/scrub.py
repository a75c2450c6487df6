"""The scrub: re-verify every referenced artifact, and list stored objects no version names.

Stateless and batched so that a client can show progress and a long scrub never holds
one request open for hours: each call verifies the next ``limit`` distinct artifact
keys after ``cursor`` (key order), records each result on every version that names the
key (``artifact.corrupt`` on a change of verdict, see :mod:`app.registry.artifacts`),
and returns ``next_cursor`` until the last batch, which also lists the unreferenced
objects. The bytes are read with no lock held; results are written afterwards, models
locked in name order.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from app import pagination
from app.auth.roles import Principal
from app.registry import artifacts, repository
from app.schemas import Strict
from app.storage.base import ArtifactStore, digest_of_key
from app.storage.integrity import ArtifactCheck, verify_artifact

MAX_BATCH = 1000


class ScrubRequest(Strict):
    cursor: str | None = Field(
        default=None, max_length=2048, description="next_cursor of the previous batch."
    )
    limit: Annotated[int, Field(ge=1, le=MAX_BATCH)] = Field(
        default=100, description="Distinct artifacts to verify in this batch."
    )
    rehash: bool = Field(
        default=False,
        description="Re-hash every object, even where the store keeps a SHA-256 checksum.",
    )


class ScrubVersionRef(BaseModel):
    model: str
    version: int


class ScrubItem(BaseModel):
    key: str
    sha256: str
    versions: list[ScrubVersionRef]
    intact: bool
    check: dict[str, Any] = Field(
        description="What was checked and how: method ('sha256 re-computed' or 'store "
        "checksum'), sha256_observed (only when computed or read), detail."
    )


class ScrubReport(BaseModel):
    total_artifacts: int = Field(description="Distinct artifact keys referenced by versions.")
    checked: int = Field(description="Artifacts verified in this batch.")
    intact: int
    corrupt: int = Field(description="Altered, short or missing artifacts in this batch.")
    items: list[ScrubItem]
    unreferenced: list[str] | None = Field(
        default=None,
        description="Stored objects no version names; listed on the last batch only.",
    )
    next_cursor: str | None = None


def scrub(
    session: Session, *, actor: Principal, store: ArtifactStore, request: ScrubRequest
) -> ScrubReport:
    """Verify one batch of referenced artifacts and record the results (see module doc)."""
    keys = repository.artifact_keys_page(
        session, after=pagination.after(request.cursor, str), limit=request.limit + 1
    )
    batch, next_cursor = pagination.split_page(keys, request.limit, lambda key: [key])
    total = repository.count_artifact_keys(session)
    rows = repository.versions_with_keys(session, batch)
    checks: dict[str, ArtifactCheck] = {}
    for version, _ in rows:
        key = version.artifact_key
        if key is None or version.artifact_sha256 is None or key in checks:
            continue
        checks[key] = verify_artifact(
            store,
            key=key,
            sha256=version.artifact_sha256,
            size=version.artifact_size or 0,
            etag=version.artifact_etag,
            rehash=request.rehash,
        )
    refs: dict[str, list[ScrubVersionRef]] = {key: [] for key in batch}
    for version, model in rows:  # in lock order: model name, then version
        key = version.artifact_key
        if key is None or key not in checks:
            continue
        refs[key].append(ScrubVersionRef(model=model.name, version=version.version))
        artifacts.record_check_by_name(
            session,
            actor=actor,
            model_name=model.name,
            number=version.version,
            check=checks[key],
            via="scrub",
        )
    items = [
        ScrubItem(
            key=key,
            sha256=digest_of_key(key),
            versions=refs[key],
            intact=checks[key].intact,
            check=checks[key].as_dict(),
        )
        for key in batch
        if key in checks
    ]
    unreferenced = None
    if next_cursor is None:
        referenced = repository.referenced_artifact_keys(session)
        stored = store.keys()
        unreferenced = sorted(key for key in stored if key not in referenced)
    intact = sum(1 for item in items if item.intact)
    return ScrubReport(
        total_artifacts=total,
        checked=len(items),
        intact=intact,
        corrupt=len(items) - intact,
        items=items,
        unreferenced=unreferenced,
        next_cursor=next_cursor,
    )
