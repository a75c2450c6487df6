"""SQL for the MLflow side of versions."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.mlflow.models import MlflowVersion
from app.registry.models import ModelVersion


def get(session: Session, version_id: int, *, for_update: bool = False) -> MlflowVersion | None:
    query = select(MlflowVersion).where(MlflowVersion.version_id == version_id)
    if for_update:
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


def by_number(session: Session, model_id: int, numbers: Sequence[int]) -> dict[int, MlflowVersion]:
    """The MLflow rows of a model's versions, by version number."""
    if not numbers:
        return {}
    rows = session.execute(
        select(ModelVersion.version, MlflowVersion)
        .join(MlflowVersion, MlflowVersion.version_id == ModelVersion.id)
        .where(ModelVersion.model_id == model_id, ModelVersion.version.in_(list(numbers)))
    ).all()
    return {number: row for number, row in rows}


def by_origin(session: Session, origin: str) -> tuple[MlflowVersion, int] | None:
    """An imported version's MLflow row and its Modelgate version number."""
    found = session.execute(
        select(MlflowVersion, ModelVersion.version)
        .join(ModelVersion, MlflowVersion.version_id == ModelVersion.id)
        .where(MlflowVersion.origin == origin)
    ).first()
    return (found[0], found[1]) if found else None


def add(session: Session, row: MlflowVersion) -> None:
    session.add(row)
