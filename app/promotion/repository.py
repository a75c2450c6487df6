"""All SQL of the promotion feature."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, insert, inspect, or_, select, update
from sqlalchemy.orm import Session, undefer
from sqlalchemy.orm.attributes import set_committed_value

from app.db.dialect import insert_with_own_params, is_postgres, own_params
from app.promotion.models import (
    GatePolicy,
    ProductionPeriod,
    PromotionApproval,
    PromotionRequest,
    PromotionStatus,
)
from app.registry.models import EvaluationEvidence, Metric, ModelVersion, RegisteredModel, Stage

# The statements of a promotion's path are built once: building one (coercing each
# operand, then the cache key) cost about as much CPU as executing it.


class PolicyRevision(NamedTuple):
    """A stored revision of a model's gate policy, as read for the one in force."""

    revision: int
    digest: str
    document: dict[str, Any]
    created_by: str
    created_at: datetime


def latest_policy(session: Session, model_id: int) -> PolicyRevision | None:
    """The model's newest policy revision (the one in force): a plain row, not a mapped
    object (nothing changes it)."""
    # session.execute, not the connection's: pending changes are flushed first.
    row = session.execute(_LATEST_POLICY, {"model_id": model_id}).first()
    return None if row is None else PolicyRevision(*row)


_POLICIES = GatePolicy.__table__
_LATEST_POLICY = (
    select(
        _POLICIES.c.revision,
        _POLICIES.c.digest,
        _POLICIES.c.document,
        _POLICIES.c.created_by,
        _POLICIES.c.created_at,
    )
    .where(_POLICIES.c.model_id == bindparam("model_id"))
    .order_by(_POLICIES.c.revision.desc())
    .limit(1)
)


def add(session: Session, obj: object) -> None:
    session.add(obj)


def production_version(
    session: Session, model_id: int, *, for_update: bool = False
) -> ModelVersion | None:
    """The production version's row alone: gates that compare load its metrics with
    :func:`metrics_of` (and its evidence with :func:`evidence_payload`) when they need them."""
    stmt = _PRODUCTION_LOCKED if for_update else _PRODUCTION
    return session.scalars(stmt, {"model_id": model_id}).first()


_PRODUCTION = select(ModelVersion).where(
    ModelVersion.model_id == bindparam("model_id"), ModelVersion.stage == Stage.PRODUCTION
)
_PRODUCTION_LOCKED = _PRODUCTION.with_for_update().execution_options(populate_existing=True)


def version(
    session: Session, model_id: int, number: int, *, for_update: bool = False
) -> ModelVersion | None:
    """One version's row, without its metrics and evidence (which
    ``app.registry.repository.version`` loads for the version's representation)."""
    stmt = _VERSION_LOCKED if for_update else _VERSION
    return session.scalars(stmt, {"model_id": model_id, "number": number}).first()


_VERSION = select(ModelVersion).where(
    ModelVersion.model_id == bindparam("model_id"), ModelVersion.version == bindparam("number")
)
_VERSION_LOCKED = _VERSION.with_for_update().execution_options(populate_existing=True)


def version_and_production(
    session: Session, model_id: int, number: int
) -> tuple[ModelVersion | None, ModelVersion | None]:
    """Version ``number`` and the production version, both locked (``FOR UPDATE``), read
    in one statement; the same row twice when ``number`` is in production."""
    version: ModelVersion | None = None
    production: ModelVersion | None = None
    for row in session.scalars(_VERSION_AND_PRODUCTION, {"model_id": model_id, "number": number}):
        if row.version == number:
            version = row
        if row.stage is Stage.PRODUCTION:
            production = row
    return version, production


_VERSION_AND_PRODUCTION = (
    select(ModelVersion)
    .where(
        ModelVersion.model_id == bindparam("model_id"),
        or_(ModelVersion.version == bindparam("number"), ModelVersion.stage == Stage.PRODUCTION),
    )
    .with_for_update()
    .execution_options(populate_existing=True)
)


class MetricValue(NamedTuple):
    """What a gate reads of one metric row."""

    name: str
    dataset: str
    slice: str
    value: float | None
    undefined_reason: str | None


def metrics_of(session: Session, version_ids: Sequence[int]) -> dict[int, list[MetricValue]]:
    """The metrics of some versions in one statement, each version's in id order (the
    order of ``ModelVersion.metrics``): plain rows, not mapped objects (the gates only
    read them)."""
    found: dict[int, list[MetricValue]] = {vid: [] for vid in version_ids}
    if not version_ids:
        return found
    # session.execute, not the connection's: metrics added in this transaction are flushed.
    for vid, *values in session.execute(_METRICS_OF, {"ids": list(version_ids)}):
        found[vid].append(MetricValue(*values))
    return found


_METRICS = Metric.__table__
_METRICS_OF = (
    select(
        _METRICS.c.version_id,
        _METRICS.c.name,
        _METRICS.c.dataset,
        _METRICS.c.slice,
        _METRICS.c.value,
        _METRICS.c.undefined_reason,
    )
    .where(_METRICS.c.version_id.in_(bindparam("ids", expanding=True)))
    .order_by(_METRICS.c.id)
)


def previous_stable(session: Session, model_id: int, current: int) -> ModelVersion | None:
    """The version of the latest production period, other than ``current``'s, that is
    archived and was not rolled back."""
    stmt = (
        select(ModelVersion)
        .join(
            ProductionPeriod,
            (ProductionPeriod.model_id == ModelVersion.model_id)
            & (ProductionPeriod.version == ModelVersion.version),
        )
        .where(
            ProductionPeriod.model_id == model_id,
            ProductionPeriod.version != current,
            ModelVersion.rolled_back.is_(False),
            ModelVersion.stage == Stage.ARCHIVED,
        )
        .order_by(ProductionPeriod.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def evidence_payload(
    session: Session, version_id: int, dataset: str, kind: str
) -> dict[str, Any] | None:
    stmt = (
        select(EvaluationEvidence)
        .where(
            EvaluationEvidence.version_id == version_id,
            EvaluationEvidence.dataset == dataset,
            EvaluationEvidence.kind == kind,
        )
        .options(undefer(EvaluationEvidence.payload))
    )
    row = session.scalars(stmt).first()
    return row.payload if row is not None else None


def request(
    session: Session, request_id: int, *, for_update: bool = False
) -> PromotionRequest | None:
    stmt = select(PromotionRequest).where(PromotionRequest.id == request_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return session.scalars(stmt).first()


def pending_for_version(session: Session, version_id: int) -> Sequence[PromotionRequest]:
    return session.scalars(_PENDING_FOR_VERSION, {"version_id": version_id}).all()


# Refreshed: a request read before the lock may have changed since (re-evaluated).
_PENDING_FOR_VERSION = (
    select(PromotionRequest)
    .where(
        PromotionRequest.version_id == bindparam("version_id"),
        PromotionRequest.status == PromotionStatus.PENDING_APPROVAL,
    )
    .with_for_update()
    .execution_options(populate_existing=True)
)


def approvals(session: Session, request_ids: Sequence[int]) -> dict[int, list[PromotionApproval]]:
    if not request_ids:
        return {}
    stmt = (
        select(PromotionApproval)
        .where(PromotionApproval.request_id.in_(request_ids))
        .order_by(PromotionApproval.id)
    )
    found: dict[int, list[PromotionApproval]] = {rid: [] for rid in request_ids}
    for approval in session.scalars(stmt):
        found[approval.request_id].append(approval)
    return found


def page_requests(
    session: Session,
    *,
    status: str | None,
    model_id: int | None,
    model_scope_id: int | None,
    after_id: int | None,
    limit: int,
) -> Sequence[tuple[PromotionRequest, str]]:
    stmt = select(PromotionRequest, RegisteredModel.name).join(
        RegisteredModel, RegisteredModel.id == PromotionRequest.model_id
    )
    if status is not None:
        stmt = stmt.where(PromotionRequest.status == status)
    if model_id is not None:
        stmt = stmt.where(PromotionRequest.model_id == model_id)
    if model_scope_id is not None:
        stmt = stmt.where(PromotionRequest.model_id == model_scope_id)
    if after_id is not None:
        stmt = stmt.where(PromotionRequest.id > after_id)
    rows = session.execute(stmt.order_by(PromotionRequest.id).limit(limit)).all()
    return [(row[0], row[1]) for row in rows]


def model_name_of(session: Session, model_id: int) -> str:
    return str(
        session.execute(
            select(RegisteredModel.name).where(RegisteredModel.id == model_id)
        ).scalar_one()
    )


def hand_over_period(
    session: Session,
    *,
    model_id: int,
    at: datetime,
    via: str,
    version: int,
    actor: str,
    reason: str | None,
    promotion_id: int | None,
    replaced_version: int | None,
) -> None:
    """End the model's open production period (the newest one without an end; none before
    its first production version) and open ``version``'s, both at ``at``: one statement on
    PostgreSQL (the ``UPDATE`` as a CTE of the ``INSERT``), two on SQLite. Period rows
    loaded in the session are not refreshed: the callers hold none."""
    close = {"c_mid": model_id, "c_at": at, "c_by": via}
    row = {"model_id": model_id, "version": version, "started_at": at, "ended_at": None,
           "via": via, "actor": actor, "reason": reason, "promotion_id": promotion_id,
           "replaced_version": replaced_version, "ended_by": None}  # fmt: skip
    connection = session.connection()
    if is_postgres(session):
        connection.execute(_HAND_OVER_PG, {**close, **own_params("p_", row)})
    else:
        connection.execute(_CLOSE_OPEN_PERIOD, close)
        connection.execute(_OPEN_PERIOD, row)


_PERIODS = ProductionPeriod.__table__
_CLOSE_OPEN_PERIOD = (
    update(_PERIODS)  # type: ignore[arg-type]
    .where(
        _PERIODS.c.id
        == select(_PERIODS.c.id)
        .where(_PERIODS.c.model_id == bindparam("c_mid"), _PERIODS.c.ended_at.is_(None))
        .order_by(_PERIODS.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    .values(ended_at=bindparam("c_at"), ended_by=bindparam("c_by"))
)
_OPEN_PERIOD = insert(_PERIODS)  # type: ignore[arg-type]
_HAND_OVER_PG = insert_with_own_params(_PERIODS, "p_").add_cte(  # type: ignore[arg-type]
    _CLOSE_OPEN_PERIOD.cte("closed")
)


def periods(
    session: Session, model_id: int, *, before_id: int | None, limit: int
) -> Sequence[ProductionPeriod]:
    stmt = select(ProductionPeriod).where(ProductionPeriod.model_id == model_id)
    if before_id is not None:
        stmt = stmt.where(ProductionPeriod.id < before_id)
    return session.scalars(stmt.order_by(ProductionPeriod.id.desc()).limit(limit)).all()


def count_policies(session: Session, model_id: int) -> int:
    stmt = select(func.count()).select_from(GatePolicy).where(GatePolicy.model_id == model_id)
    return int(session.execute(stmt).scalar_one())


def set_stage(
    session: Session, version: ModelVersion, stage: Stage, *, at: datetime,
    archived_reason: str | None,
) -> None:  # fmt: skip
    """Write a version's stage change: its ``stage``, ``stage_changed_at`` and
    ``updated_at`` (``at``), its ``archived_reason``, its ``rolled_back`` flag as the caller
    set it on the object, and the copy of the stage its metrics keep for the ``(model, name,
    dataset, stage, value)`` index. One statement on PostgreSQL (the metrics' ``UPDATE``
    as a CTE), two on SQLite; written now, in the caller's order (the replaced production
    version leaves before the new one arrives).

    Core rather than the ORM's flush, which cost more than the statement; the object (and
    its metrics, when loaded) then hold what the rows hold, with nothing left to flush."""
    row = {"vid": version.id, "new_stage": stage, "at": at,
           "why": archived_reason, "flagged": version.rolled_back}  # fmt: skip
    connection = session.connection()
    if is_postgres(session):
        connection.execute(_SET_STAGE_PG, row)
    else:
        connection.execute(_SET_METRICS_STAGE, row)
        connection.execute(_SET_VERSION_STAGE, row)
    written = {"stage": stage, "stage_changed_at": at, "updated_at": at,
               "archived_reason": row["why"], "rolled_back": row["flagged"]}  # fmt: skip
    for name, value in written.items():
        set_committed_value(version, name, value)
    for metric in inspect(version).dict.get("metrics") or ():
        set_committed_value(metric, "stage", stage)


_VERSIONS = ModelVersion.__table__
_SET_METRICS_STAGE = (
    update(_METRICS)  # type: ignore[arg-type]
    .where(_METRICS.c.version_id == bindparam("vid"))
    .values(stage=bindparam("new_stage", type_=_METRICS.c.stage.type))
)
_SET_VERSION_STAGE = (
    update(_VERSIONS)  # type: ignore[arg-type]
    .where(_VERSIONS.c.id == bindparam("vid"))
    .values(
        stage=bindparam("new_stage", type_=_VERSIONS.c.stage.type),
        stage_changed_at=bindparam("at", type_=_VERSIONS.c.stage_changed_at.type),
        updated_at=bindparam("at", type_=_VERSIONS.c.updated_at.type),
        archived_reason=bindparam("why", type_=_VERSIONS.c.archived_reason.type),
        rolled_back=bindparam("flagged", type_=_VERSIONS.c.rolled_back.type),
    )
)
_SET_STAGE_PG = _SET_VERSION_STAGE.add_cte(_SET_METRICS_STAGE.cte("metrics_stage"))


def insert_request(session: Session, request: PromotionRequest) -> None:
    """Write a new request (built, not added to the session) as it is, now, and give it
    its id: one ``INSERT ... RETURNING`` without the ORM's flush. The object stays
    outside the session: a request is not changed again in the transaction that makes it
    (its outcome is known before it is written)."""
    values = {c.name: getattr(request, c.key) for c in _REQUESTS.c if c.name != "id"}
    request.id = session.connection().execute(_INSERT_REQUEST, values).scalar_one()


_REQUESTS = PromotionRequest.__table__
_INSERT_REQUEST = insert(_REQUESTS).returning(_REQUESTS.c.id)  # type: ignore[arg-type]


def period_at(session: Session, model_id: int, at: datetime) -> ProductionPeriod | None:
    """The production period that covered ``at`` (started at or before it, not ended by
    then); the newest such when two share the instant of a hand-over."""
    stmt = (
        select(ProductionPeriod)
        .where(
            ProductionPeriod.model_id == model_id,
            ProductionPeriod.started_at <= at,
            or_(ProductionPeriod.ended_at.is_(None), ProductionPeriod.ended_at > at),
        )
        .order_by(ProductionPeriod.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def versions_created_by(session: Session, model_id: int, at: datetime) -> list[int]:
    """Numbers of the model's versions that existed at ``at``."""
    stmt = (
        select(ModelVersion.version)
        .where(ModelVersion.model_id == model_id, ModelVersion.created_at <= at)
        .order_by(ModelVersion.version)
    )
    return [int(n) for n in session.scalars(stmt)]
