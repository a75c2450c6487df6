"""Registry use cases: models, versions, metrics and the stages they sit in.

Services run inside the request's unit of work: they flush, never commit. Every write
locks the model row first (``SELECT ... FOR UPDATE``), which serialises version
numbering, transitions and the model's audit chain across server processes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app import gates, pagination
from app.audit import service as audit
from app.audit.actions import AuditAction
from app.audit.hashing import canonical_json
from app.auth.roles import Principal, Role, role_allows
from app.db.base import utcnow
from app.errors import (
    Forbidden,
    MetricConflict,
    ModelAlreadyExists,
    ModelNotFound,
    StateMismatch,
    ValidationFailed,
    VersionNotFound,
)
from app.pagination import DEFAULT_LIMIT
from app.registry import repository, search
from app.registry.fingerprint import lineage_fingerprint
from app.registry.models import (
    EvaluationEvidence,
    Metric,
    ModelVersion,
    RegisteredModel,
    Stage,
)
from app.registry.schemas import (
    CountsEvidence,
    EvaluationIn,
    ModelCreate,
    ModelRead,
    ModelUpdate,
    Page,
    VersionCreate,
    VersionRead,
)

# Gate inputs: what a gate reads changes only with the rights to change the policy.
# The default production policy compares the model's primary metric on its primary
# dataset, and every comparing rule reads production's (and, after a rollback, an
# archived version's) metrics and evidence: a submitter who could change these could
# turn a failing gate into a passing one without touching the policy.
GATE_MODEL_FIELDS = ("primary_metric", "primary_dataset")
BASELINE_STAGES = (Stage.PRODUCTION, Stage.ARCHIVED)

TAG_FILTER_PATTERN = search.TAG_FILTER_PATTERN
MAX_TAG_FILTERS = search.MAX_TAG_FILTERS


def _require_policy_rights(actor: Principal, what: str) -> None:
    if not role_allows(actor.role, Role.ADMIN):
        raise Forbidden(
            f"{what} changes what the promotion gates compare; it needs the rights to change "
            "the gate policy (admin)"
        )


# Models -----------------------------------------------------------------------


def get_model(session: Session, name: str) -> RegisteredModel:
    model = repository.model_by_name(session, name)
    if model is None:
        raise ModelNotFound(f"no model named {name!r}")
    return model


def lock_model(session: Session, name: str) -> RegisteredModel:
    """The model, locked for the rest of the transaction; other features call this too."""
    model = repository.lock_model(session, name)
    if model is None:
        raise ModelNotFound(f"no model named {name!r}")
    return model


def create_model(session: Session, *, actor: Principal, data: ModelCreate) -> RegisteredModel:
    if repository.model_by_name(session, data.name) is not None:
        raise ModelAlreadyExists(f"a model named {data.name!r} already exists")
    now = utcnow()
    model = RegisteredModel(
        name=data.name,
        description=data.description,
        owner=data.owner,
        tags=dict(data.tags),
        primary_metric=data.primary_metric,
        primary_dataset=data.primary_dataset,
        last_version=0,
        created_by=actor.name,
        created_at=now,
        updated_at=now,
    )
    repository.add(session, model)
    try:
        session.flush()
    except IntegrityError:
        # Lost a race with a concurrent create of the same name on another process.
        raise ModelAlreadyExists(f"a model named {data.name!r} already exists") from None
    audit.record(
        session,
        actor=actor,
        action=AuditAction.MODEL_CREATED,
        model=model.name,
        details=data.model_dump(mode="json", exclude={"name"}),
    )
    return model


def update_model(
    session: Session, *, actor: Principal, name: str, data: ModelUpdate
) -> RegisteredModel:
    model = lock_model(session, name)
    changes = data.model_dump(mode="json", exclude_unset=True)
    before = {field: getattr(model, field) for field in changes}
    gate_fields = [f for f in GATE_MODEL_FIELDS if f in changes and changes[f] != before[f]]
    if gate_fields:
        _require_policy_rights(actor, "changing " + " and ".join(gate_fields))
    for field, value in changes.items():
        if field == "description" and value is None:
            value = ""
        if field == "tags" and value is None:
            value = {}
        setattr(model, field, value)
    changed = {f: v for f, v in changes.items() if before[f] != getattr(model, f)}
    if changed:
        model.updated_at = utcnow()
        audit.record(
            session,
            actor=actor,
            action=AuditAction.MODEL_UPDATED,
            model=model.name,
            details={"changes": changed, "before": {f: before[f] for f in changed}},
        )
    return model


def list_models(
    session: Session,
    *,
    cursor: str | None,
    limit: int = DEFAULT_LIMIT,
    owner: str | None = None,
    name_prefix: str | None = None,
    only_name: str | None = None,
) -> Page[ModelRead]:
    rows = repository.page_models(
        session,
        after_name=pagination.after(cursor, str),
        limit=limit + 1,
        owner=owner,
        name_prefix=name_prefix,
        only_name=only_name,
    )
    page, next_cursor = pagination.split_page(rows, limit, lambda m: [m.name])
    production = repository.production_versions(session, [m.id for m in page])
    items = [to_model_read(m, production.get(m.id)) for m in page]
    return Page[ModelRead](items=items, next_cursor=next_cursor)


def read_model(session: Session, name: str) -> ModelRead:
    model = get_model(session, name)
    production = repository.production_versions(session, [model.id])
    return to_model_read(model, production.get(model.id))


def to_model_read(model: RegisteredModel, production_version: int | None) -> ModelRead:
    return ModelRead(
        name=model.name,
        description=model.description,
        owner=model.owner,
        tags=model.tags,
        primary_metric=model.primary_metric,
        primary_dataset=model.primary_dataset,
        latest_version=model.last_version,
        production_version=production_version,
        frozen=model.frozen_at is not None,
        frozen_by=model.frozen_by,
        frozen_reason=model.frozen_reason,
        created_by=model.created_by,
        created_at=model.created_at,
        updated_at=model.updated_at,
    )


# Versions ---------------------------------------------------------------------


def create_version(
    session: Session, *, actor: Principal, model_name: str, data: VersionCreate
) -> tuple[repository.NumberedModel, ModelVersion]:
    """A new candidate with the next version number of its model (returned with the
    model's id, name and new last version)."""
    # One UPDATE ... RETURNING reads the model, numbers the version and locks the row, so
    # concurrent creates on any number of processes get consecutive numbers (a request
    # refused below rolls the number back with everything else).
    model = repository.number_next_version(session, model_name)
    if model is None:
        raise ModelNotFound(f"no model named {model_name!r}")
    number = model.last_version
    metric_rows, evidence_rows = _evaluation_rows(data)
    now = utcnow()
    lineage = data.lineage.model_dump(mode="json", exclude_none=True)
    version = ModelVersion(
        model_id=model.id,
        version=number,
        stage=Stage.CANDIDATE,
        description=data.description,
        lineage=lineage,
        lineage_fingerprint=lineage_fingerprint(lineage),
        signature=data.signature.model_dump(mode="json") if data.signature else None,
        tags=dict(data.tags),
        artifact_expected_sha256=data.artifact.sha256 if data.artifact else None,
        artifact_media_type=data.artifact.media_type if data.artifact else None,
        created_by=actor.name,
        created_at=now,
        updated_at=now,
        stage_changed_at=now,
        rolled_back=False,
    )
    repository.add(session, version)
    session.flush()
    repository.add_search_terms(
        session, version, search.terms_of(tags=version.tags, lineage=version.lineage)
    )
    for row in metric_rows:
        row.model_id, row.version_id, row.stage = model.id, version.id, version.stage
    for ev in evidence_rows:
        ev.version_id = version.id
    repository.insert_evaluation_rows(session, metric_rows, evidence_rows)
    # The rows are written; the same objects (not in the session) fill the version's
    # loaded collections for its representation.
    set_committed_value(version, "metrics", metric_rows)
    set_committed_value(version, "evidence", evidence_rows)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.VERSION_CREATED,
        model=model.name,
        version=number,
        to_stage=Stage.CANDIDATE.value,
        details={
            "lineage": version.lineage,
            "metrics": len(metric_rows),
            "evidence": [
                {"dataset": e.dataset, "kind": e.kind, "digest": e.digest} for e in evidence_rows
            ],
            "expected_sha256": version.artifact_expected_sha256,
        },
    )
    return model, version


def get_version(
    session: Session, model_name: str, number: int
) -> tuple[RegisteredModel, ModelVersion]:
    found = repository.version_with_model(session, model_name, number)
    if found is None:
        # Only a miss pays for a second look, to say which of the two is missing.
        get_model(session, model_name)
        raise VersionNotFound(f"model {model_name!r} has no version {number}")
    return found


def lock_version(
    session: Session, model_name: str, number: int
) -> tuple[RegisteredModel, ModelVersion]:
    """Model row locked, then the version: the lock order every writer follows."""
    model = lock_model(session, model_name)
    version = repository.version(session, model.id, number, for_update=True)
    if version is None:
        raise VersionNotFound(f"model {model_name!r} has no version {number}")
    return model, version


def version_for_update(session: Session, model_id: int, number: int) -> ModelVersion | None:
    """The version's row, locked, with its metrics loaded (the model row locked first by
    the caller), or None."""
    return repository.version(session, model_id, number, for_update=True)


def list_versions(
    session: Session,
    *,
    model_name: str,
    stage: Stage | None,
    order_by: str,
    dataset: str | None,
    cursor: str | None,
    limit: int = DEFAULT_LIMIT,
    fingerprint: str | None = None,
    tags: list[str] | None = None,
    lineage: Mapping[str, str | None] | None = None,
) -> Page[VersionRead]:
    """Versions of a model, newest first by default, or ordered by a metric on a dataset;
    with ``fingerprint``, only the versions of that training specification."""
    model = get_model(session, model_name)
    terms = search.filters(tags, lineage or {})
    descending = order_by.startswith("-")
    key = order_by[1:] if descending else order_by
    stage_value = stage.value if stage else None
    if key == "version":
        rows = repository.page_versions(
            session,
            model_id=model.id,
            stage=stage_value,
            fingerprint=fingerprint,
            terms=terms,
            descending=descending,
            after_version=pagination.after(cursor, int),
            limit=limit + 1,
        )
        page, next_cursor = pagination.split_page(rows, limit, lambda v: [v.row.version])
        return _page_of_rows(model.name, page, next_cursor)
    if key.startswith("metric:") and len(key) > len("metric:"):
        metric = key[len("metric:") :]
        dataset = dataset or model.primary_dataset
        if dataset is None:
            # The model's state decides (it may name a primary dataset): 409 (decision 0025)
            raise StateMismatch(
                f"model {model.name!r} names no primary_dataset: ordering by a metric "
                "needs ?dataset=",
                errors=[{"loc": ["query", "dataset"], "msg": "required to order by a metric"}],
            )
        after_m = pagination.decode_cursor(cursor, arity=2, kinds=(float, int))
        metric_rows = repository.page_versions_by_metric(
            session,
            model_id=model.id,
            stage=stage_value,
            fingerprint=fingerprint,
            terms=terms,
            metric=metric,
            dataset=dataset,
            descending=descending,
            after=(float(after_m[0]), int(after_m[1])) if after_m else None,
            limit=limit + 1,
        )
        if (
            not metric_rows
            and cursor is None
            and not repository.metric_recorded(session, model_id=model.id, metric=metric)
        ):
            raise StateMismatch(
                f"no version of {model.name!r} has recorded metric {metric!r}",
                errors=[{"loc": ["query", "order_by"], "msg": f"unknown metric {metric!r}"}],
            )
        metric_page, next_cursor = pagination.split_page(
            metric_rows, limit, lambda vm: [vm[1], vm[0].row.version]
        )
        return _page_of_rows(model.name, [v for v, _ in metric_page], next_cursor)
    raise ValidationFailed(
        "order_by must be 'version', '-version', 'metric:NAME' or '-metric:NAME'",
        errors=[{"loc": ["query", "order_by"], "msg": f"unknown ordering {order_by!r}"}],
    )


def add_metrics(
    session: Session,
    *,
    actor: Principal,
    model_name: str,
    number: int,
    data: EvaluationIn,
) -> tuple[RegisteredModel, ModelVersion]:
    """Record more evaluation results. Metrics and evidence are immutable: re-sending an
    identical one is a no-op, a different value for the same key is a 409."""
    metric_rows, evidence_rows = _evaluation_rows(data)
    model, version = lock_version(session, model_name, number)
    existing = repository.existing_metrics(session, version.id)
    new_metrics: list[Metric] = []
    for row in metric_rows:
        old = existing.get((row.name, row.dataset, row.slice))
        if old is not None:
            if old.value != row.value or old.sample_count != row.sample_count:
                where = f"metric {row.name!r} on dataset {row.dataset!r}" + (
                    f" slice {row.slice!r}" if row.slice else ""
                )
                raise MetricConflict(
                    f"{where} is already recorded as {old.value}; metrics are immutable"
                )
            continue
        # The version is locked: its stage cannot change before this transaction ends.
        row.model_id, row.version_id, row.stage = model.id, version.id, version.stage
        new_metrics.append(row)
    old_evidence = {(e.dataset, e.kind): e for e in version.evidence}
    new_evidence: list[EvaluationEvidence] = []
    for ev in evidence_rows:
        prior = old_evidence.get((ev.dataset, ev.kind))
        if prior is not None:
            if prior.digest != ev.digest:
                raise MetricConflict(
                    f"{ev.kind} evidence on dataset {ev.dataset!r} is already recorded "
                    "with other values; evidence is immutable"
                )
            continue
        ev.version_id = version.id
        new_evidence.append(ev)
    if (new_metrics or new_evidence) and version.stage in BASELINE_STAGES:
        _require_policy_rights(
            actor, f"adding metrics or evidence to a version in {Stage(version.stage).value}"
        )
    if new_metrics or new_evidence:
        repository.add_all(session, [*new_metrics, *new_evidence])
        version.updated_at = utcnow()
        session.flush()
        audit.record(
            session,
            actor=actor,
            action=AuditAction.METRICS_ADDED,
            model=model.name,
            version=version.version,
            details={
                "metrics": [
                    {"name": r.name, "dataset": r.dataset, "slice": r.slice, "value": r.value}
                    for r in new_metrics
                ],
                "evidence": [
                    {"dataset": e.dataset, "kind": e.kind, "digest": e.digest} for e in new_evidence
                ],
            },
        )
    session.expire(version, ["metrics", "evidence"])
    fresh = repository.version(session, model.id, number)
    assert fresh is not None
    return model, fresh


def update_version(
    session: Session,
    *,
    actor: Principal,
    model_name: str,
    number: int,
    description: str | None = None,
    set_tags: dict[str, str] | None = None,
    delete_tags: Iterable[str] = (),
) -> tuple[RegisteredModel, ModelVersion]:
    """Edit a version's description and tags (its evidence, lineage and artifact stay)."""
    model, version = lock_version(session, model_name, number)
    tags = dict(version.tags)
    tags.update(set_tags or {})
    for key in delete_tags:
        tags.pop(key, None)
    changes: dict[str, Any] = {}
    if description is not None and description != version.description:
        changes["description"] = description
    if tags != version.tags:
        changes["tags"] = tags
    if changes:
        before = {field: getattr(version, field) for field in changes}
        for field, value in changes.items():
            setattr(version, field, value)
        version.updated_at = utcnow()
        if "tags" in changes:
            repository.replace_search_terms(
                session, version, search.terms_of(tags=tags, lineage={}), prefix="tag:"
            )
        audit.record(
            session,
            actor=actor,
            action=AuditAction.VERSION_UPDATED,
            model=model.name,
            version=number,
            details={"changes": changes, "before": before},
        )
    return model, version


def versions_in_stage(
    session: Session, *, model_name: str, stage: Stage, cursor: str | None, limit: int
) -> Page[VersionRead]:
    return list_versions(
        session,
        model_name=model_name,
        stage=stage,
        order_by="-version",
        dataset=None,
        cursor=cursor,
        limit=limit,
    )


def _evaluation_rows(data: EvaluationIn) -> tuple[list[Metric], list[EvaluationEvidence]]:
    """Rows for submitted metrics, metrics derived by the service, and evidence.

    Derived metrics are computed here, by one piece of code, so every version is scored
    the same way. A key given twice in one request is a 422."""
    now = utcnow()
    rows: list[Metric] = []
    seen: dict[tuple[str, str, str], str] = {}

    def add(row: Metric, where: list[str | int]) -> None:
        key = (row.name, row.dataset, row.slice)
        if key in seen:
            raise ValidationFailed(
                "the same metric appears twice in one request",
                errors=[
                    {
                        "loc": where,
                        "msg": f"metric {row.name!r} on dataset {row.dataset!r} "
                        f"is also given by {seen[key]}",
                    }
                ],
            )
        seen[key] = ".".join(str(p) for p in where)
        rows.append(row)

    for i, m in enumerate(data.metrics):
        add(
            Metric(name=m.name, dataset=m.dataset, slice=m.slice or "", value=m.value,
                   sample_count=m.sample_count, source="submitted", created_at=now),
            ["body", "metrics", i],
        )  # fmt: skip
    for i, cm in enumerate(data.confusion_matrices):
        try:
            derived = gates.from_confusion_matrix(
                cm.matrix, labels=cm.labels, positive_label=cm.positive_label
            )
        except ValueError as exc:
            raise ValidationFailed(
                f"confusion matrix {i}: {exc}",
                errors=[{"loc": ["body", "confusion_matrices", i], "msg": str(exc)}],
            ) from None
        total = sum(sum(r) for r in cm.matrix)
        for name, mv in derived.items():
            add(
                Metric(name=name, dataset=cm.dataset, slice=cm.slice or "", value=mv.value,
                       undefined_reason=mv.reason if mv.value is None else None,
                       sample_count=total, source="confusion_matrix", created_at=now),
                ["body", "confusion_matrices", i],
            )  # fmt: skip
    for i, rg in enumerate(data.regression):
        try:
            derived = gates.from_regression(rg.targets, rg.predictions)
        except ValueError as exc:
            raise ValidationFailed(
                f"regression {i}: {exc}",
                errors=[{"loc": ["body", "regression", i], "msg": str(exc)}],
            ) from None
        for name, mv in derived.items():
            add(
                Metric(name=name, dataset=rg.dataset, slice=rg.slice or "", value=mv.value,
                       undefined_reason=mv.reason if mv.value is None else None,
                       sample_count=len(rg.targets), source="regression", created_at=now),
                ["body", "regression", i],
            )  # fmt: skip
    evidence: list[EvaluationEvidence] = []
    seen_evidence: set[tuple[str, str]] = set()
    for i, ev in enumerate(data.evidence):
        if (ev.dataset, ev.kind) in seen_evidence:
            raise ValidationFailed(
                "the same evidence appears twice in one request",
                errors=[{"loc": ["body", "evidence", i], "msg": "duplicate dataset and kind"}],
            )
        seen_evidence.add((ev.dataset, ev.kind))
        payload = ev.model_dump(mode="json", exclude={"kind", "dataset"})
        size = ev.total if isinstance(ev, CountsEvidence) else len(ev.values)
        evidence.append(
            EvaluationEvidence(dataset=ev.dataset, kind=ev.kind, size=size, payload=payload,
                               digest=hashlib.sha256(canonical_json(payload).encode()).hexdigest(),
                               created_at=now)
        )  # fmt: skip
    return rows, evidence


def to_version_read(model_name: str, v: ModelVersion) -> VersionRead:
    return VersionRead.model_validate(_version_read_fields(model_name, v, v.metrics, v.evidence))


def _page_of_rows(
    model_name: str, page: list[repository.VersionRows], next_cursor: str | None
) -> Page[VersionRead]:
    """A list page built from plain rows, without ORM objects: the fields of
    ``to_version_read``, validated in one call instead of one model at a time."""
    return Page[VersionRead].model_validate(
        {
            "items": [_version_read_fields(model_name, r.row, r.metrics, r.evidence) for r in page],
            "next_cursor": next_cursor,
        }
    )


def _version_read_fields(
    model_name: str, v: Any, metrics: Iterable[Any], evidence: Iterable[Any]
) -> dict[str, Any]:
    """The fields of a VersionRead, from a version and its metrics and evidence: ORM
    objects (one version) or the plain rows of a list page, which share attribute names."""
    return {
        "model": model_name,
        "version": v.version,
        "stage": v.stage,
        "description": v.description,
        "lineage": v.lineage,
        "lineage_fingerprint": v.lineage_fingerprint,
        "signature": v.signature,
        "tags": v.tags,
        "metrics": [
            {
                "name": m.name,
                "value": m.value,
                "undefined_reason": m.undefined_reason,
                "dataset": m.dataset,
                "slice": m.slice or None,
                "sample_count": m.sample_count,
                "source": m.source,
            }
            for m in metrics
        ],
        "artifact": {
            "status": "corrupt" if v.artifact_corrupt_at is not None else v.artifact_status,
            "sha256": v.artifact_sha256,
            "size": v.artifact_size,
            "media_type": v.artifact_media_type,
            "uploaded_at": v.artifact_uploaded_at,
            "expected_sha256": v.artifact_expected_sha256,
        },
        "evidence": [
            {"dataset": e.dataset, "kind": e.kind, "size": e.size, "digest": e.digest}
            for e in evidence
        ],
        "rolled_back": v.rolled_back,
        "archived_reason": v.archived_reason,
        "created_by": v.created_by,
        "created_at": v.created_at,
        "updated_at": v.updated_at,
        "stage_changed_at": v.stage_changed_at,
    }
