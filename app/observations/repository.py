"""SQL of observations: window rows locked in key order, predictions by request key."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, case, delete, func, or_, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from app.db.dialect import insert_ignore
from app.observations.models import ObservationWindow, ObservedPrediction

WindowKey = tuple[int, str, datetime]  # (version, role, window_start)


def lock_windows(
    session: Session, model_id: int, keys: Sequence[WindowKey]
) -> dict[WindowKey, ObservationWindow]:
    """The window rows of ``keys``, created when missing, locked in key order.

    Two batches that touch the same windows lock them in the same order, so they queue
    instead of deadlocking; a concurrent creation of the same row loses quietly to the
    unique key (insert-ignore) and then locks the winner's row.
    """
    ordered = sorted(set(keys))
    for version, role, start in ordered:
        insert_ignore(
            session,
            ObservationWindow.__table__,  # type: ignore[arg-type]
            {
                "model_id": model_id,
                "version": version,
                "role": role,
                "window_start": start,
                "requests": 0,
                "errors": 0,
                "latency_count": 0,
                "latency_sum_ms": 0.0,
                "latency_sample": [],
                "predictions": {},
                "value_count": 0,
                "value_sum": 0.0,
                "value_sq_sum": 0.0,
                "labelled": 0,
                "correct": 0,
                "value_labelled": 0,
                "abs_error_sum": 0.0,
                "updated_at": start,
            },
        )
    rows = session.scalars(
        select(ObservationWindow)
        .where(
            ObservationWindow.model_id == model_id,
            tuple_(
                ObservationWindow.version, ObservationWindow.role, ObservationWindow.window_start
            ).in_(ordered),
        )
        .order_by(ObservationWindow.version, ObservationWindow.role, ObservationWindow.window_start)
        .with_for_update()
    ).all()
    return {(r.version, r.role, r.window_start): r for r in rows}


def windows(
    session: Session,
    model_id: int,
    *,
    since: datetime,
    until: datetime,
    versions: Sequence[int] | None = None,
    role: str | None = None,
) -> Sequence[ObservationWindow]:
    query = select(ObservationWindow).where(
        ObservationWindow.model_id == model_id,
        ObservationWindow.window_start >= since,
        ObservationWindow.window_start < until,
    )
    if versions is not None:
        query = query.where(ObservationWindow.version.in_(versions))
    if role is not None:
        query = query.where(ObservationWindow.role == role)
    return session.scalars(
        query.order_by(
            ObservationWindow.version, ObservationWindow.role, ObservationWindow.window_start
        )
    ).all()


def add_predictions(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Keep predictions for their labels; a key seen before in the same role keeps its
    first prediction (a retried batch changes nothing)."""
    table: Table = ObservedPrediction.__table__  # type: ignore[assignment]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    # Chunks keep each statement under PostgreSQL's 65,535 bound parameters.
    for start in range(0, len(rows), 1000):
        chunk = list(rows[start : start + 1000])
        session.execute(dialect.insert(table).values(chunk).on_conflict_do_nothing())


def predictions_for_keys(
    session: Session, model_id: int, keys: Sequence[str]
) -> Sequence[ObservedPrediction]:
    return session.scalars(
        select(ObservedPrediction)
        .where(ObservedPrediction.model_id == model_id, ObservedPrediction.request_key.in_(keys))
        .order_by(ObservedPrediction.id)
        .with_for_update()
    ).all()


def prune(session: Session, model_id: int, before: datetime) -> None:
    session.execute(
        delete(ObservationWindow).where(
            ObservationWindow.model_id == model_id, ObservationWindow.window_start < before
        )
    )
    session.execute(
        delete(ObservedPrediction).where(
            ObservedPrediction.model_id == model_id, ObservedPrediction.observed_at < before
        )
    )


def paired_predictions(
    session: Session, model_id: int, shadow_version: int, *, since: datetime, until: datetime
) -> list[Any]:
    """Aggregates of the shadow version's predictions joined by request key with the
    primary's, per primary version: pairs, class pairs, agreeing pairs, value pairs, and
    the sum and sum of squares of the absolute differences of values (or scores).

    The join reads the kept predictions (bounded by the observation retention) through
    the unique (model, request key, role) index."""
    primary = aliased(ObservedPrediction)
    shadow = aliased(ObservedPrediction)
    both_class = and_(primary.prediction_kind == "class", shadow.prediction_kind == "class")
    both_score = and_(primary.prediction_kind == "score", shadow.prediction_kind == "score")
    both_value = and_(primary.prediction_kind == "value", shadow.prediction_kind == "value")
    agree = or_(
        and_(both_class, primary.prediction_class == shadow.prediction_class),
        and_(both_score, (primary.prediction_value >= 0.5) == (shadow.prediction_value >= 0.5)),
    )
    numeric = or_(both_score, both_value)
    diff = func.abs(shadow.prediction_value - primary.prediction_value)
    return list(
        session.execute(
            select(
                primary.version,
                func.count(),
                func.sum(case((or_(both_class, both_score), 1), else_=0)),
                func.sum(case((agree, 1), else_=0)),
                func.sum(case((numeric, 1), else_=0)),
                func.sum(case((numeric, diff), else_=0.0)),
                func.sum(case((numeric, diff * diff), else_=0.0)),
            )
            .select_from(shadow)
            .join(
                primary,
                and_(
                    primary.model_id == shadow.model_id,
                    primary.request_key == shadow.request_key,
                    primary.role == "primary",
                ),
            )
            .where(
                shadow.model_id == model_id,
                shadow.role == "shadow",
                shadow.version == shadow_version,
                shadow.observed_at >= since,
                shadow.observed_at < until,
            )
            .group_by(primary.version)
            .order_by(primary.version)
        ).all()
    )
