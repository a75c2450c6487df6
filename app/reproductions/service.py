"""Recording and reading reproductions, and the facts the ``reproducible`` gate reads."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app import pagination
from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.roles import Principal
from app.db.base import utcnow
from app.errors import StateMismatch
from app.gates.facts import ReproductionFact
from app.registry import service as registry
from app.registry.fingerprint import lineage_fingerprint
from app.registry.models import ModelVersion
from app.registry.schemas import Page
from app.reproductions import repository
from app.reproductions.models import Reproduction
from app.reproductions.schemas import ReproducedMetric, ReproductionCreate, ReproductionRead

GATE_REPRODUCTIONS = 20
"""How many of a version's latest reproductions the ``reproducible`` gate compares."""


def record(
    session: Session, *, actor: Principal, model_name: str, number: int, data: ReproductionCreate
) -> ReproductionRead:
    """Store a re-run's results as evidence for the version, and audit it."""
    model, version = registry.get_version(session, model_name, number)
    fingerprint = None
    if data.lineage is not None:
        fingerprint = lineage_fingerprint(data.lineage.model_dump(mode="json", exclude_none=True))
        if fingerprint != version.lineage_fingerprint:
            raise StateMismatch(
                "the re-run's lineage is another training specification than the version's "
                f"(fingerprint {fingerprint}, version {version.lineage_fingerprint})",
                errors=[
                    {"loc": ["body", "lineage"], "msg": "fingerprint differs from the version's"}
                ],
            )
    row = Reproduction(
        model_id=model.id,
        version_id=version.id,
        artifact_sha256=data.artifact_sha256,
        metrics=[m.model_dump(mode="json") for m in data.metrics],
        lineage_fingerprint=fingerprint,
        run_url=data.run_url,
        comment=data.comment,
        created_by=actor.name,
        created_at=utcnow(),
    )
    repository.add(session, row)
    read = _read(model.name, version, row)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.REPRODUCTION_RECORDED,
        model=model.name,
        version=version.version,
        details={
            "reproduction": row.id,
            "artifact_sha256": row.artifact_sha256,
            "artifact_identical": read.artifact_identical,
            "metrics": row.metrics,
            "lineage_fingerprint": fingerprint,
        },
    )
    return read


def list_reproductions(
    session: Session, *, model_name: str, number: int, cursor: str | None, limit: int
) -> Page[ReproductionRead]:
    model, version = registry.get_version(session, model_name, number)
    rows = repository.newest(
        session, version.id, before_id=pagination.after(cursor, int), limit=limit + 1
    )
    page, next_cursor = pagination.split_page(rows, limit, lambda r: [r.id])
    return Page[ReproductionRead](
        items=[_read(model.name, version, row) for row in page], next_cursor=next_cursor
    )


def facts_of(session: Session, version_id: int) -> list[ReproductionFact]:
    """The latest reproductions of a version, newest first, as the gate reads them."""
    rows = repository.newest(session, version_id, before_id=None, limit=GATE_REPRODUCTIONS)
    return [
        ReproductionFact(
            id=row.id,
            artifact_sha256=row.artifact_sha256,
            metrics={
                (m["name"], m["dataset"], m.get("slice") or ""): m["value"] for m in row.metrics
            },
        )
        for row in rows
    ]


def _read(model_name: str, version: ModelVersion, row: Reproduction) -> ReproductionRead:
    identical = (
        row.artifact_sha256 == version.artifact_sha256
        if row.artifact_sha256 is not None and version.artifact_sha256 is not None
        else None
    )
    return ReproductionRead(
        id=row.id,
        model=model_name,
        version=version.version,
        artifact_sha256=row.artifact_sha256,
        artifact_identical=identical,
        metrics=[ReproducedMetric.model_validate(m) for m in row.metrics],
        lineage_fingerprint=row.lineage_fingerprint,
        run_url=row.run_url,
        comment=row.comment,
        created_by=row.created_by,
        created_at=row.created_at,
    )
