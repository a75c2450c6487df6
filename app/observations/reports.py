"""Shadow and A/B reports over what serving saw: the store's side of
:mod:`app.gates.shadow` and :mod:`app.gates.ab` (which hold the statistics).

Pairing a shadow's predictions with the primary's: the store already keeps every
prediction under its request key and role (one row per key and role, until the
observation retention ends) for the labels that arrive later, so a report joins the
shadow rows of a version with the primary rows of the same keys, in SQL, aggregated per
primary version. Nothing more is stored at ingest, the pairing is exact whatever order
the two rows arrive in (or in which batch, or through which server process), and its
cost is bounded by the retention: pairs older than the retention are gone with their
predictions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.gates import ab, shadow
from app.gates.canary import Rates
from app.gates.shadow import ShadowPairs
from app.observations import repository
from app.observations.schemas import (
    ABMetric,
    ABReport,
    DistributionComparison,
    LatencyComparison,
    PairsRead,
    RateComparison,
    ShadowReport,
)
from app.observations.service import (
    arm_data_of,
    arm_summary,
    merged_arm,
    window_start,
)
from app.registry import service as registry
from app.registry.models import ModelVersion, Stage
from app.settings import Settings


def _pairs_of(rows: list[Any], primary: int | None = None) -> ShadowPairs:
    kept = [r for r in rows if primary is None or int(r[0]) == primary]
    return ShadowPairs(
        pairs=sum(int(r[1]) for r in kept),
        class_pairs=sum(int(r[2] or 0) for r in kept),
        agreeing=sum(int(r[3] or 0) for r in kept),
        value_pairs=sum(int(r[4] or 0) for r in kept),
        abs_diff_sum=sum(float(r[5] or 0.0) for r in kept),
        abs_diff_sq_sum=sum(float(r[6] or 0.0) for r in kept),
        primary_versions={int(r[0]): int(r[1]) for r in kept},
    )


def pairs(
    session: Session,
    model_id: int,
    shadow_version: int,
    *,
    since: datetime,
    until: datetime,
    primary: int | None = None,
) -> ShadowPairs:
    """The shadow version's predictions paired with the primary's over ``[since, until)``
    (times of the shadow's observations): those answered by ``primary``, or by any."""
    return _pairs_of(
        repository.paired_predictions(session, model_id, shadow_version, since=since, until=until),
        primary,
    )


def _range(
    settings: Settings, since: datetime | None, until: datetime | None
) -> tuple[datetime, datetime]:
    until = until or datetime.now(UTC) + timedelta(seconds=settings.observation_window_seconds)
    since = since or until - timedelta(hours=settings.observation_retention_hours)
    return since, until


def _first_window(since: datetime, until: datetime, width: int) -> datetime:
    """Where the windows read over ``[since, until)`` start: none when the range is empty
    (``since`` at or after ``until`` is an empty window, answered with no data)."""
    return window_start(since, width) if since < until else until


def _require_version(session: Session, model_name: str, number: int) -> None:
    registry.get_version(session, model_name, number)


def _production(session: Session, model_id: int) -> int | None:
    return session.scalars(
        select(ModelVersion.version).where(
            ModelVersion.model_id == model_id, ModelVersion.stage == Stage.PRODUCTION
        )
    ).first()


def shadow_report(
    session: Session,
    *,
    settings: Settings,
    model_name: str,
    version: int,
    primary: int | None,
    since: datetime | None,
    until: datetime | None,
) -> ShadowReport:
    model = registry.get_model(session, model_name)
    _require_version(session, model_name, version)
    since, until = _range(settings, since, until)
    rows = repository.paired_predictions(session, model.id, version, since=since, until=until)
    answered = {int(r[0]): int(r[1]) for r in rows}
    if primary is None:
        # The version that answered most of the paired requests; else production.
        primary = (
            max(answered.items(), key=lambda kv: (kv[1], -kv[0]))[0]
            if answered
            else _production(session, model.id)
        )
    else:
        _require_version(session, model_name, primary)
    found_for = _pairs_of(rows, primary)
    width = settings.observation_window_seconds
    shadow_rows = repository.windows(
        session, model.id, since=_first_window(since, until, width), until=until,
        versions=[version], role="shadow",
    )  # fmt: skip
    starts = {r.window_start for r in shadow_rows}
    primary_rows = (
        [
            r
            for r in repository.windows(
                session,
                model.id,
                since=_first_window(since, until, width),
                until=until,
                versions=[primary],
                role="primary",
            )
            if r.window_start in starts
        ]
        if primary is not None
        else []
    )
    shared = starts & {r.window_start for r in primary_rows}
    shadow_rows = [r for r in shadow_rows if r.window_start in shared]
    s_arm = merged_arm(shadow_rows, version, "shadow")
    p_arm = merged_arm(primary_rows, primary, "primary") if primary is not None else None
    s_data = arm_data_of(s_arm, version)
    p_data = arm_data_of(p_arm, primary) if p_arm is not None and primary is not None else None
    return ShadowReport(
        model=model.name,
        version=version,
        primary_version=primary,
        since=since,
        until=until,
        pairs=PairsRead(**shadow.pairs_summary(found_for)),
        shadow=arm_summary(version, "shadow", s_arm) if shadow_rows else None,
        primary=arm_summary(primary, "primary", p_arm)
        if p_arm is not None and primary is not None and primary_rows
        else None,
        windows=len(shared),
        error_rate=RateComparison(
            **shadow.two_proportion_test(
                p_data.errors if p_data and p_data.errors else Rates(0, 0),
                s_data.errors or Rates(0, 0),
            )
        ),
        latency=LatencyComparison(
            **shadow.latency_comparison(
                p_data.latency_sample if p_data else (), s_data.latency_sample
            )
        ),
        predictions=DistributionComparison(
            **shadow.distribution_comparison(
                p_data.predictions if p_data else {}, s_data.predictions
            )
        ),
    )


def ab_report(
    session: Session,
    *,
    settings: Settings,
    model_name: str,
    a: int,
    b: int,
    since: datetime | None,
    until: datetime | None,
    alpha: float,
    min_sample: int,
) -> ABReport:
    model = registry.get_model(session, model_name)
    _require_version(session, model_name, a)
    _require_version(session, model_name, b)
    since, until = _range(settings, since, until)
    width = settings.observation_window_seconds
    rows = repository.windows(
        session, model.id, since=_first_window(since, until, width), until=until,
        versions=[a, b], role="primary",
    )  # fmt: skip
    arm_a, arm_b = merged_arm(rows, a, "primary"), merged_arm(rows, b, "primary")
    results = ab.ab_report(
        arm_data_of(arm_a, a), arm_data_of(arm_b, b), alpha=alpha, min_sample=min_sample
    )
    return ABReport(
        model=model.name,
        a=a,
        b=b,
        since=since,
        until=until,
        alpha=alpha,
        min_sample=min_sample,
        arms=[arm_summary(a, "primary", arm_a), arm_summary(b, "primary", arm_b)],
        metrics=[ABMetric(**r.to_dict()) for r in results],
    )
