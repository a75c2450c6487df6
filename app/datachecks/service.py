"""Checking a dataset against a version's data contract, storing the report, and the facts
the ``data_contract`` gate reads."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app import pagination
from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.roles import Principal
from app.datachecks import contract, repository
from app.datachecks.models import DataCheck
from app.datachecks.schemas import DataCheckCreate, DataCheckRead, DataCheckRow
from app.db.base import utcnow
from app.drift import profiles
from app.drift import service as drift
from app.errors import Conflict, ReferenceProfileNotFound
from app.gates.facts import DataCheckFact
from app.registry import service as registry
from app.registry.schemas import Page


def record(
    session: Session, *, actor: Principal, model_name: str, number: int, data: DataCheckCreate
) -> DataCheckRead:
    """Check the dataset against the version's signature and reference profile; store and
    audit the report (a failing report is stored too: it is the evidence)."""
    model, version = registry.get_version(session, model_name, number)
    if version.signature is None:
        raise Conflict(f"version {number} of {model_name!r} has no signature to check against")
    if data.sample is not None:
        columns = {name: profiles.observe(name, values) for name, values in data.sample.items()}
    else:
        columns = {
            name: profiles.from_profile(name, p.model_dump(mode="json"))
            for name, p in (data.features or {}).items()
        }
    try:
        reference = drift.get_reference_profile(
            session, model_name=model.name, number=number, include_sample=False
        )
        reference_rows = float(reference.rows) if reference.rows is not None else None
    except ReferenceProfileNotFound:
        reference_rows = None
    checks = contract.check(
        signature_inputs=version.signature.get("inputs", []),
        columns=columns,
        reference_rows=reference_rows,
        bounds=contract.Bounds(data.max_null_rate, data.min_row_ratio, data.max_row_ratio),
    )
    row = DataCheck(
        model_id=model.id,
        version_id=version.id,
        dataset=data.dataset,
        purpose=data.purpose,
        passed=all(c.passed is not False for c in checks),
        rows=max((c.rows for c in columns.values()), default=0.0),
        checks=[c.to_dict() for c in checks],
        created_by=actor.name,
        created_at=utcnow(),
    )
    repository.add(session, row)
    read = _read(model.name, number, row)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.DATA_CHECK_RECORDED,
        model=model.name,
        version=number,
        details={
            "data_check": row.id,
            "dataset": row.dataset,
            "purpose": row.purpose,
            "passed": row.passed,
            "failed": read.failed,
        },
    )
    return read


def list_data_checks(
    session: Session,
    *,
    model_name: str,
    number: int,
    dataset: str | None,
    cursor: str | None,
    limit: int,
) -> Page[DataCheckRead]:
    model, version = registry.get_version(session, model_name, number)
    rows = repository.newest(
        session,
        version.id,
        dataset=dataset,
        before_id=pagination.after(cursor, int),
        limit=limit + 1,
    )
    page, next_cursor = pagination.split_page(rows, limit, lambda r: [r.id])
    return Page[DataCheckRead](
        items=[_read(model.name, number, row) for row in page], next_cursor=next_cursor
    )


def latest_fact(session: Session, version_id: int, dataset: str) -> DataCheckFact | None:
    """The latest data check of the dataset, as the ``data_contract`` gate reads it."""
    rows = repository.newest(session, version_id, dataset=dataset, before_id=None, limit=1)
    if not rows:
        return None
    row = rows[0]
    return DataCheckFact(
        id=row.id, purpose=row.purpose, passed=row.passed, rows=row.rows, failed=_failed(row)
    )


def _failed(row: DataCheck) -> list[str]:
    return [
        f"{c['check']}:{c['column']}" if c["column"] else str(c["check"])
        for c in row.checks
        if c["passed"] is False
    ]


def _read(model_name: str, number: int, row: DataCheck) -> DataCheckRead:
    return DataCheckRead(
        id=row.id,
        model=model_name,
        version=number,
        dataset=row.dataset,
        purpose=row.purpose,
        passed=row.passed,
        failed=_failed(row),
        rows=row.rows,
        checks=[DataCheckRow.model_validate(c) for c in row.checks],
        created_by=row.created_by,
        created_at=row.created_at,
    )
