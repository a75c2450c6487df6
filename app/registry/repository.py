"""All SQL of the registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from app.registry.models import Metric, ModelVersion, RegisteredModel, Stage


def model_by_name(session: Session, name: str) -> RegisteredModel | None:
    return session.scalars(select(RegisteredModel).where(RegisteredModel.name == name)).first()


def lock_model(session: Session, name: str) -> RegisteredModel | None:
    """Lock the model row until the transaction ends: every write to a model takes it first."""
    stmt = (
        select(RegisteredModel)
        .where(RegisteredModel.name == name)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.scalars(stmt).first()


def next_version_number(session: Session, model_id: int) -> int:
    stmt = (
        update(RegisteredModel)
        .where(RegisteredModel.id == model_id)
        .values(last_version=RegisteredModel.last_version + 1)
        .returning(RegisteredModel.last_version)
    )
    return int(session.execute(stmt).scalar_one())


def add(session: Session, obj: Any) -> None:
    session.add(obj)


def add_all(session: Session, objs: Sequence[Any]) -> None:
    session.add_all(objs)


def page_models(
    session: Session,
    *,
    after_name: str | None,
    limit: int,
    owner: str | None,
    name_prefix: str | None,
    only_name: str | None,
) -> Sequence[RegisteredModel]:
    stmt = select(RegisteredModel)
    if after_name is not None:
        stmt = stmt.where(RegisteredModel.name > after_name)
    if owner is not None:
        stmt = stmt.where(RegisteredModel.owner == owner)
    if name_prefix:
        escaped = name_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(RegisteredModel.name.like(escaped + "%", escape="\\"))
    if only_name is not None:
        stmt = stmt.where(RegisteredModel.name == only_name)
    return session.scalars(stmt.order_by(RegisteredModel.name).limit(limit)).all()


def production_versions(session: Session, model_ids: Sequence[int]) -> dict[int, int]:
    if not model_ids:
        return {}
    stmt = select(ModelVersion.model_id, ModelVersion.version).where(
        ModelVersion.model_id.in_(model_ids), ModelVersion.stage == Stage.PRODUCTION.value
    )
    return {mid: ver for mid, ver in session.execute(stmt)}


def version(
    session: Session, model_id: int, number: int, *, for_update: bool = False
) -> ModelVersion | None:
    stmt = (
        select(ModelVersion)
        .where(ModelVersion.model_id == model_id, ModelVersion.version == number)
        .options(selectinload(ModelVersion.metrics), selectinload(ModelVersion.evidence))
    )
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return session.scalars(stmt).first()


def page_versions(
    session: Session,
    *,
    model_id: int,
    stage: str | None,
    descending: bool,
    after_version: int | None,
    limit: int,
) -> Sequence[ModelVersion]:
    stmt = (
        select(ModelVersion)
        .where(ModelVersion.model_id == model_id)
        .options(selectinload(ModelVersion.metrics), selectinload(ModelVersion.evidence))
    )
    if stage is not None:
        stmt = stmt.where(ModelVersion.stage == stage)
    if after_version is not None:
        stmt = stmt.where(
            ModelVersion.version < after_version
            if descending
            else ModelVersion.version > after_version
        )
    order = ModelVersion.version.desc() if descending else ModelVersion.version.asc()
    return session.scalars(stmt.order_by(order).limit(limit)).all()


def page_versions_by_metric(
    session: Session,
    *,
    model_id: int,
    stage: str | None,
    metric: str,
    dataset: str,
    descending: bool,
    after: tuple[float, int] | None,
    limit: int,
) -> Sequence[tuple[ModelVersion, float]]:
    """Versions ordered by one metric's value (versions without a defined value are left out)."""
    stmt = (
        select(ModelVersion, Metric.value)
        .join(Metric, Metric.version_id == ModelVersion.id)
        .where(
            Metric.model_id == model_id,
            Metric.name == metric,
            Metric.dataset == dataset,
            Metric.slice == "",
            Metric.value.is_not(None),
        )
        .options(selectinload(ModelVersion.metrics), selectinload(ModelVersion.evidence))
    )
    if stage is not None:
        stmt = stmt.where(ModelVersion.stage == stage)
    if after is not None:
        value, number = after
        # The same keyset as "(value, version) after the cursor", written so that the
        # bound on value alone is a range condition of the metrics index: with the plain
        # OR, PostgreSQL walks the index from the top and filters, which takes seconds
        # half-way down a million versions (EXPLAIN in docs/performance.md).
        if descending:
            stmt = stmt.where(
                Metric.value <= value,
                (Metric.value < value) | (ModelVersion.version < number),
            )
        else:
            stmt = stmt.where(
                Metric.value >= value,
                (Metric.value > value) | (ModelVersion.version > number),
            )
    if descending:
        stmt = stmt.order_by(Metric.value.desc(), ModelVersion.version.desc())
    else:
        stmt = stmt.order_by(Metric.value.asc(), ModelVersion.version.asc())
    rows = session.execute(stmt.limit(limit)).all()
    return [(row[0], float(row[1] or 0.0)) for row in rows]


def existing_metrics(session: Session, version_id: int) -> dict[tuple[str, str, str], Metric]:
    rows = session.scalars(select(Metric).where(Metric.version_id == version_id))
    return {(m.name, m.dataset, m.slice): m for m in rows}


def count_versions(session: Session, model_id: int) -> int:
    stmt = select(func.count()).select_from(ModelVersion).where(ModelVersion.model_id == model_id)
    return int(session.execute(stmt).scalar_one())
