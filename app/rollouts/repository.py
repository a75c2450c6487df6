"""All SQL of rollouts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.registry.models import RegisteredModel
from app.rollouts.models import ACTIVE_STATES, Rollout, RolloutState


def get(session: Session, rollout_id: int, *, for_update: bool = False) -> Rollout | None:
    stmt = select(Rollout).where(Rollout.id == rollout_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return session.scalars(stmt).first()


def active(session: Session, model_id: int, *, for_update: bool = False) -> Rollout | None:
    stmt = _ACTIVE_LOCKED if for_update else _ACTIVE
    return session.scalars(stmt, {"model_id": model_id}).first()


# Built once: every promotion to production asks it.
_ACTIVE = select(Rollout).where(
    Rollout.model_id == bindparam("model_id"), Rollout.state.in_(ACTIVE_STATES)
)
_ACTIVE_LOCKED = _ACTIVE.with_for_update().execution_options(populate_existing=True)


def model_name_of(session: Session, model_id: int) -> str:
    return str(
        session.execute(
            select(RegisteredModel.name).where(RegisteredModel.id == model_id)
        ).scalar_one()
    )


def page(
    session: Session, *, model_id: int, state: str | None, after_id: int | None, limit: int
) -> Sequence[Rollout]:
    stmt = select(Rollout).where(Rollout.model_id == model_id)
    if state is not None:
        stmt = stmt.where(Rollout.state == state)
    if after_id is not None:
        stmt = stmt.where(Rollout.id < after_id)
    return session.scalars(stmt.order_by(Rollout.id.desc()).limit(limit)).all()


def due(session: Session, *, now: datetime) -> list[tuple[int, int]]:
    """``(id, look_count)`` of running rollouts whose next look is due at ``now``."""
    stmt = select(Rollout.id, Rollout.look_count).where(
        Rollout.state == RolloutState.RUNNING.value, Rollout.next_look_at <= now
    )
    return [(int(i), int(c)) for i, c in session.execute(stmt.order_by(Rollout.id)).all()]


def any_running(session: Session) -> bool:
    stmt = select(Rollout.id).where(Rollout.state == RolloutState.RUNNING.value).limit(1)
    return session.execute(stmt).first() is not None


def running(session: Session, *, model_name: str) -> list[tuple[int, int]]:
    """``(id, look_count)`` of the model's running rollouts, due or not."""
    stmt = (
        select(Rollout.id, Rollout.look_count)
        .join(RegisteredModel, RegisteredModel.id == Rollout.model_id)
        .where(Rollout.state == RolloutState.RUNNING.value, RegisteredModel.name == model_name)
    )
    return [(int(i), int(c)) for i, c in session.execute(stmt.order_by(Rollout.id)).all()]
