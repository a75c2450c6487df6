"""Fold observations from serving into per-window aggregates; join labels; read arms.

Observations are data, not changes: they are not audited (the audit log records who
moved what, not every request served) and a batch is all-or-nothing: every row is
checked before anything is written, and a bad row refuses the batch with its index.
Retries are safe through the route's ``Idempotency-Key``.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.errors import StateMismatch, VersionNotFound
from app.gates.canary import ArmData, Rates
from app.observations import repository
from app.observations.models import ObservationWindow
from app.observations.schemas import (
    ArmSummary,
    IngestResult,
    LabelBatch,
    LabelResult,
    ObservationBatch,
    ObservationIn,
    ObservationSummary,
)
from app.registry import service as registry
from app.registry.models import RegisteredModel
from app.rollouts import wakeup as rollouts_wakeup
from app.serving import service as serving
from app.settings import Settings

SCORE_BINS = 10
MAX_LISTED_ERRORS = 20


def window_start(at: datetime, seconds: int) -> datetime:
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


def _prediction_bucket(obs: ObservationIn) -> str | None:
    p = obs.prediction
    if p is None or p.value is not None:
        return None
    if p.class_ is not None:
        return p.class_
    assert p.score is not None
    # Ten equal bins of [0, 1]; a score of exactly 1 falls in the last.
    return f"score:{min(int(p.score * SCORE_BINS), SCORE_BINS - 1) / SCORE_BINS:.1f}"


def _refuse(detail: str, problems: list[dict[str, Any]]) -> StateMismatch:
    """A batch refused for the registry's state or clock (versions, the serving plan, the
    retention, the keys observed): a 409, not a 422 (decision 0025)."""
    shown = problems[:MAX_LISTED_ERRORS]
    more = len(problems) - len(shown)
    suffix = f" (and {more} more)" if more else ""
    return StateMismatch(detail + suffix, errors=shown)


def _has_version(session: Session, model_name: str, number: int) -> bool:
    try:
        registry.get_version(session, model_name, number)
    except VersionNotFound:
        return False
    return True


def _check_batch(
    session: Session,
    model: RegisteredModel,
    batch: ObservationBatch,
    settings: Settings,
    now: datetime,
) -> serving.Reportable:
    """Refuse the batch whole if any observation is not valid; else what serving may
    report on (read once for the batch)."""
    model_name = model.name
    problems: list[dict[str, Any]] = []
    known: dict[int, bool] = {}
    latest = now + timedelta(seconds=settings.observation_max_clock_skew_seconds)
    oldest = now - timedelta(hours=settings.observation_retention_hours)
    reportable = serving.reportable_versions(
        session,
        model_id=model.id,
        now=now,
        grace=timedelta(seconds=settings.rollout_observation_grace_seconds),
        oldest=oldest,
    )
    for i, obs in enumerate(batch.observations):
        if obs.version not in known:
            known[obs.version] = _has_version(session, model_name, obs.version)
        if not known[obs.version]:
            problems.append(
                {
                    "loc": ["body", "observations", i, "version"],
                    "msg": f"model {model_name!r} has no version {obs.version}",
                }
            )
        elif not reportable.covers(obs.version, obs.time):
            problems.append(
                {
                    "loc": ["body", "observations", i, "version"],
                    "msg": f"version {obs.version} of model {model_name!r} is not in the "
                    "serving plan (not production, an alias target or a rollout's version)",
                }
            )
        if obs.time > latest:
            problems.append(
                {
                    "loc": ["body", "observations", i, "time"],
                    "msg": f"{obs.time.isoformat()} is more than "
                    f"{settings.observation_max_clock_skew_seconds} s in the future "
                    "(check the serving clock)",
                }
            )
        elif obs.time < oldest:
            problems.append(
                {
                    "loc": ["body", "observations", i, "time"],
                    "msg": f"{obs.time.isoformat()} is older than the retention of "
                    f"{settings.observation_retention_hours} h",
                }
            )
    if problems:
        first = problems[0]["loc"][2]
        raise _refuse(
            f"the batch was refused whole: observation {first} is not valid: {problems[0]['msg']}",
            problems,
        )
    return reportable


def _fold(
    row: ObservationWindow, items: Sequence[ObservationIn], cap: int, rng: random.Random
) -> None:
    row.requests += len(items)
    row.errors += sum(1 for o in items if o.error)
    sample = list(row.latency_sample)
    seen = row.latency_count
    for o in items:
        if o.latency_ms is None:
            continue
        seen += 1
        row.latency_sum_ms += o.latency_ms
        # Reservoir sampling (Algorithm R): every latency of the window is kept with
        # the same probability cap / seen.
        if len(sample) < cap:
            sample.append(o.latency_ms)
        else:
            j = rng.randrange(seen)
            if j < cap:
                sample[j] = o.latency_ms
    row.latency_count = seen
    row.latency_sample = sample
    histogram = dict(row.predictions)
    for o in items:
        bucket = _prediction_bucket(o)
        if bucket is not None:
            histogram[bucket] = int(histogram.get(bucket, 0)) + 1
        elif o.prediction is not None and o.prediction.value is not None:
            row.value_count += 1
            row.value_sum += o.prediction.value
            row.value_sq_sum += o.prediction.value**2
    row.predictions = histogram


def ingest(
    session: Session,
    *,
    settings: Settings,
    model_name: str,
    batch: ObservationBatch,
    now: datetime | None = None,
) -> IngestResult:
    """Check the whole batch, then fold it into its windows and keep its predictions."""
    now = now or datetime.now(UTC)
    model = registry.get_model(session, model_name)
    reportable = _check_batch(session, model, batch, settings, now)
    width = settings.observation_window_seconds
    groups: dict[repository.WindowKey, list[ObservationIn]] = defaultdict(list)
    for obs in batch.observations:
        groups[(obs.version, obs.role, window_start(obs.time, width))].append(obs)
    rows = repository.lock_windows(session, model.id, list(groups))
    created = any(row.requests == 0 for row in rows.values())
    rng = random.Random()
    for key, items in groups.items():
        _fold(rows[key], items, settings.observation_latency_sample, rng)
    repository.add_predictions(
        session,
        [
            {
                "model_id": model.id,
                "request_key": o.request_key,
                "role": o.role,
                "version": o.version,
                "window_start": window_start(o.time, width),
                "prediction_kind": o.prediction.kind,
                "prediction_class": o.prediction.class_,
                "prediction_value": (
                    o.prediction.score if o.prediction.score is not None else o.prediction.value
                ),
                "observed_at": o.time,
                "labelled_at": None,
            }
            for o in batch.observations
            if o.prediction is not None
        ],
    )
    if created:
        # A new window starts about once per window width per arm: prune then, not on
        # every batch.
        repository.prune(
            session, model.id, now - timedelta(hours=settings.observation_retention_hours)
        )
    session.flush()
    if reportable.rollout_active:
        rollouts_wakeup.wake_after_commit(session, model.name)
    return IngestResult(accepted=len(batch.observations), windows=len(groups))


def _as_positive(label: str) -> bool | None:
    lowered = label.strip().lower()
    if lowered in {"1", "true", "yes", "positive"}:
        return True
    if lowered in {"0", "false", "no", "negative"}:
        return False
    return None


def add_labels(
    session: Session, *, settings: Settings, model_name: str, batch: LabelBatch
) -> LabelResult:
    """Join ground truth to the predictions kept under the same request keys.

    A class label scores class predictions (equal or not) and score predictions (the
    score's side of 0.5 against a label of 1/0, true/false); a value label scores value
    predictions by absolute error. Keys never observed refuse the batch (with their
    indexes); keys already labelled are counted and ignored.
    """
    model = registry.get_model(session, model_name)
    keys = [label.request_key for label in batch.labels]
    kept = repository.predictions_for_keys(session, model.id, sorted(set(keys)))
    by_key: dict[str, list[Any]] = defaultdict(list)
    for prediction in kept:
        by_key[prediction.request_key].append(prediction)
    problems: list[dict[str, Any]] = []
    for i, label in enumerate(batch.labels):
        if label.request_key not in by_key:
            problems.append(
                {
                    "loc": ["body", "labels", i, "request_key"],
                    "msg": f"no prediction was observed under key {label.request_key!r} "
                    f"(or it is older than {settings.observation_retention_hours} h)",
                }
            )
            continue
        for prediction in by_key[label.request_key]:
            if (label.value is None) != (prediction.prediction_kind != "value"):
                kind = "value" if label.value is not None else "class"
                problems.append(
                    {
                        "loc": ["body", "labels", i],
                        "msg": f"a {kind} label cannot score a {prediction.prediction_kind} "
                        f"prediction (key {label.request_key!r})",
                    }
                )
                break
            if prediction.prediction_kind == "score" and _as_positive(label.class_ or "") is None:
                problems.append(
                    {
                        "loc": ["body", "labels", i, "class"],
                        "msg": "a score prediction needs a label of 1/0 or true/false",
                    }
                )
                break
    if problems:
        raise _refuse(
            f"the batch was refused whole: label {problems[0]['loc'][2]} is not valid: "
            f"{problems[0]['msg']}",
            problems,
        )
    now = datetime.now(UTC)
    scored: dict[repository.WindowKey, list[tuple[bool | None, float | None]]] = defaultdict(list)
    labelled = already = 0
    seen: set[str] = set()
    for label in batch.labels:
        if label.request_key in seen:
            already += 1
            continue
        seen.add(label.request_key)
        fresh = [p for p in by_key[label.request_key] if p.labelled_at is None]
        if not fresh:
            already += 1
            continue
        labelled += 1
        for prediction in fresh:
            prediction.labelled_at = now
            key = (prediction.version, prediction.role, prediction.window_start)
            if prediction.prediction_kind == "value":
                assert label.value is not None
                assert prediction.prediction_value is not None
                scored[key].append((None, abs(label.value - prediction.prediction_value)))
            elif prediction.prediction_kind == "score":
                assert prediction.prediction_value is not None
                truth = _as_positive(label.class_ or "")
                scored[key].append(((prediction.prediction_value >= 0.5) == truth, None))
            else:
                scored[key].append((prediction.prediction_class == label.class_, None))
    if scored:
        rows = repository.lock_windows(session, model.id, list(scored))
        for key, outcomes in scored.items():
            row = rows[key]
            row.labelled += len(outcomes)
            row.correct += sum(1 for ok, _ in outcomes if ok)
            row.abs_error_sum += sum(err for _, err in outcomes if err is not None)
            row.value_labelled += sum(1 for _, err in outcomes if err is not None)
    session.flush()
    return LabelResult(labelled=labelled, already_labelled=already)


# Reading -----------------------------------------------------------------------------


@dataclass
class _Arm:
    requests: int = 0
    errors: int = 0
    latency_count: int = 0
    latency_sum: float = 0.0
    labelled: int = 0
    correct: int = 0
    abs_error_sum: float = 0.0
    value_labelled: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def __post_init__(self) -> None:
        self.samples: list[tuple[int, list[float]]] = []
        self.predictions: dict[str, int] = defaultdict(int)


def _merge(rows: Iterable[ObservationWindow]) -> dict[tuple[int, str], _Arm]:
    arms: dict[tuple[int, str], _Arm] = defaultdict(_Arm)
    for row in rows:
        arm = arms[(row.version, row.role)]
        arm.requests += row.requests
        arm.errors += row.errors
        arm.latency_count += row.latency_count
        arm.latency_sum += row.latency_sum_ms
        arm.labelled += row.labelled
        arm.correct += row.correct
        arm.abs_error_sum += row.abs_error_sum
        arm.value_labelled += row.value_labelled
        arm.samples.append((row.latency_count, list(row.latency_sample)))
        for bucket, count in row.predictions.items():
            arm.predictions[bucket] += int(count)
        arm.first = row.window_start if arm.first is None else min(arm.first, row.window_start)
        arm.last = row.window_start if arm.last is None else max(arm.last, row.window_start)
    return arms


def _combined_sample(
    samples: Sequence[tuple[int, list[float]]], cap: int, seed: int
) -> list[float]:
    """One uniform sample of at most ``cap`` latencies from per-window samples.

    Each window's sample stands for ``count`` latencies; windows contribute in
    proportion to their counts, so a busy window is not under-represented.
    """
    total = sum(count for count, _ in samples)
    kept = sum(len(sample) for _, sample in samples)
    if kept <= cap:
        return [x for _, sample in samples for x in sample]
    rng = np.random.default_rng(seed)
    out: list[float] = []
    for count, sample in samples:
        if not sample:
            continue
        share = min(len(sample), round(cap * count / total))
        out.extend(rng.choice(np.asarray(sample), size=share, replace=False).tolist())
    return out


def arm_data(
    session: Session,
    *,
    model_id: int,
    version: int,
    role: str,
    since: datetime,
    until: datetime,
    sample_cap: int = 5000,
) -> ArmData:
    """One arm's cumulative data over ``[since, until)``, as the canary analysis takes it."""
    rows = repository.windows(
        session, model_id, since=since, until=until, versions=[version], role=role
    )
    return arm_data_of(merged_arm(rows, version, role), version, sample_cap)


def summary(
    session: Session,
    *,
    settings: Settings,
    model_name: str,
    since: datetime | None,
    until: datetime | None,
    version: int | None,
    role: str | None,
) -> ObservationSummary:
    model = registry.get_model(session, model_name)
    until = until or datetime.now(UTC) + timedelta(seconds=settings.observation_window_seconds)
    since = since or until - timedelta(hours=1)
    # since at or after until: an empty range, answered with no arms.
    rows = repository.windows(
        session,
        model.id,
        since=window_start(since, settings.observation_window_seconds) if since < until else until,
        until=until,
        versions=[version] if version is not None else None,
        role=role,
    )
    out = [
        arm_summary(number, arm_role, arm)
        for (number, arm_role), arm in sorted(_merge(rows).items())
    ]
    return ObservationSummary(
        model=model_name,
        since=since,
        until=until,
        window_seconds=settings.observation_window_seconds,
        arms=out,
    )


def arm_summary(number: int, role: str, arm: _Arm) -> ArmSummary:
    """What one merged arm shows: rates, latency quantiles of the kept sample, labels."""
    sample = np.asarray(_combined_sample(arm.samples, 5000, seed=number))
    class_labelled = arm.labelled - arm.value_labelled
    return ArmSummary(
        version=number,
        role=role,
        requests=arm.requests,
        errors=arm.errors,
        error_rate=arm.errors / arm.requests if arm.requests else None,
        latency_ms_mean=arm.latency_sum / arm.latency_count if arm.latency_count else None,
        latency_ms_p50=float(np.quantile(sample, 0.5)) if sample.size else None,
        latency_ms_p99=float(np.quantile(sample, 0.99)) if sample.size else None,
        latency_sample_size=int(sample.size),
        labelled=arm.labelled,
        accuracy=arm.correct / class_labelled if class_labelled else None,
        mean_absolute_error=(
            arm.abs_error_sum / arm.value_labelled if arm.value_labelled else None
        ),
        predictions=dict(arm.predictions),
        first_window=arm.first,
        last_window=arm.last,
    )


def merged_arm(rows: Iterable[ObservationWindow], version: int, role: str) -> _Arm:
    return _merge(rows).get((version, role), _Arm())


def arm_data_of(arm: _Arm, version: int, sample_cap: int = 5000) -> ArmData:
    """An arm's data as the analyses take it (what :func:`arm_data` returns for a stored one)."""
    return ArmData(
        errors=Rates(arm.errors, arm.requests),
        correct=Rates(arm.correct, arm.labelled - arm.value_labelled)
        if arm.labelled - arm.value_labelled
        else None,
        latency_sample=tuple(_combined_sample(arm.samples, sample_cap, seed=version)),
        predictions=dict(arm.predictions),
    )
