"""Drift use cases: reference profiles, drift reports and the retrain trigger, settings.

Runs in the request's unit of work (flush, never commit). Writes lock the model row
first, like every other write to a model, so a drift report and a promotion of the same
model never interleave: the report is checked against the version that was in
production when it was recorded.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy.orm import Session

from app import pagination
from app.audit import service as audit
from app.audit.actions import AuditAction
from app.audit.hashing import canonical_json
from app.auth.roles import Principal
from app.db.base import utcnow
from app.drift import compare, repository
from app.drift.models import DriftReport, DriftSettings, ReferenceProfile
from app.drift.schemas import (
    DriftReportCreate,
    DriftReportRead,
    DriftSettingsRead,
    DriftSettingsUpdate,
    ProfileData,
    ReferenceProfileCreate,
    ReferenceProfileRead,
)
from app.errors import (
    DriftReportNotFound,
    NoDriftReference,
    ReferenceProfileExists,
    ReferenceProfileNotFound,
    ValidationFailed,
)
from app.registry import service as registry
from app.registry.models import Stage
from app.registry.schemas import Page
from app.settings import Settings

DEFAULTS = compare.Thresholds()


def _invalid(exc: compare.ProfileError) -> ValidationFailed:
    return ValidationFailed(str(exc), errors=[{"loc": exc.loc, "msg": str(exc), "type": "drift"}])


def _check_rows(data: ProfileData, settings: Settings) -> None:
    if data.sample is None:
        return
    rows = max((len(v) for v in data.sample.values()), default=0)
    if rows > settings.drift_max_rows:
        raise ValidationFailed(
            f"the sample has {rows} rows, more than the limit of {settings.drift_max_rows}; "
            "send a subsample or a profile",
            errors=[{"loc": ["body", "sample"], "msg": "too many rows", "type": "too_long"}],
        )


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json") if value is not None else None


def _dump_features(data: ProfileData) -> dict[str, Any] | None:
    if data.features is None:
        return None
    return {name: p.model_dump(mode="json") for name, p in data.features.items()}


# Reference profiles ------------------------------------------------------------------------


def _profile_read(
    model_name: str, row: ReferenceProfile, *, include_sample: bool
) -> ReferenceProfileRead:
    profile = row.profile

    def feature(p: dict[str, Any]) -> dict[str, Any]:
        out = dict(p)
        if p["kind"] == "numeric":
            out["sample_size"] = len(p.get("sample") or [])
            if not include_sample:
                out["sample"] = None
        return out

    prediction = profile.get("prediction")
    return ReferenceProfileRead.model_validate(
        {
            "model": model_name,
            "version": row.version,
            "source": row.source,
            "dataset": row.dataset,
            "rows": row.rows,
            "features": {n: feature(p) for n, p in profile["features"].items()},
            "prediction": feature(prediction) if prediction else None,
            "skipped": profile.get("skipped") or {},
            "digest": row.digest,
            "created_by": row.created_by,
            "created_at": row.created_at,
        }
    )


def create_reference_profile(
    session: Session,
    *,
    actor: Principal,
    settings: Settings,
    model_name: str,
    number: int,
    data: ReferenceProfileCreate,
) -> tuple[ReferenceProfileRead, bool]:
    """Store the version's reference profile; returns it and whether it is new.

    A profile describes the data the version was trained on, which does not change: it
    cannot be replaced. Sending the same one again answers the stored one (a retried CI
    step); a different one is a conflict."""
    model, version = registry.lock_version(session, model_name, number)
    _check_rows(data, settings)
    _check_contract(data, version.signature)
    try:
        profile = compare.build_reference(
            features=_dump_features(data),
            prediction=_dump(data.prediction),
            sample=data.sample,
            predictions=data.predictions,
            signature=version.signature,
            sample_size=settings.drift_reference_sample_size,
            dataset=data.dataset,
        )
    except compare.ProfileError as exc:
        raise _invalid(exc) from None
    digest = hashlib.sha256(canonical_json(profile).encode()).hexdigest()
    existing = repository.profile_for_version(session, version.id, with_profile=True)
    if existing is not None:
        if existing.digest != digest:
            raise ReferenceProfileExists(
                f"version {number} of {model_name!r} already has a different reference "
                "profile; profiles are immutable (register a new version for new data)",
                digest=existing.digest,
            )
        return _profile_read(model.name, existing, include_sample=False), False
    row = ReferenceProfile(
        model_id=model.id,
        version_id=version.id,
        version=number,
        source=profile["source"],
        dataset=data.dataset,
        rows=profile.get("rows"),
        profile=profile,
        digest=digest,
        created_by=actor.name,
        created_at=utcnow(),
    )
    repository.add(session, row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.REFERENCE_PROFILE_CREATED,
        model=model.name,
        version=number,
        details={
            "digest": digest,
            "source": profile["source"],
            "dataset": data.dataset,
            "rows": profile.get("rows"),
            "features": sorted(profile["features"]),
            "prediction": profile.get("prediction") is not None,
            "skipped": profile["skipped"],
        },
    )
    return _profile_read(model.name, row, include_sample=False), True


def _check_contract(data: ReferenceProfileCreate, signature: dict[str, Any] | None) -> None:
    """Refuse reference data that breaks the signature (422 naming each column and count)."""
    columns, _, _ = compare.window_columns(
        features=_dump_features(data),
        prediction=_dump(data.prediction),
        sample=data.sample,
        predictions=data.predictions,
    )
    violations = compare.contract_violations(signature, columns)
    if not violations:
        return
    where = "features" if data.features is not None else "sample"
    raise ValidationFailed(
        "the reference data breaks the version's signature: "
        + "; ".join(f"{v['column']}: {v['detail']}" for v in violations),
        errors=[
            {
                "loc": ["body", where, v["column"]],
                "msg": v["detail"],
                "type": v["kind"],
                "count": v["count"],
                **({"categories": v["categories"]} if "categories" in v else {}),
            }
            for v in violations
        ],
    )


def get_reference_profile(
    session: Session, *, model_name: str, number: int, include_sample: bool
) -> ReferenceProfileRead:
    model, version = registry.get_version(session, model_name, number)
    row = repository.profile_for_version(session, version.id, with_profile=True)
    if row is None:
        raise ReferenceProfileNotFound(
            f"version {number} of {model_name!r} has no reference profile"
        )
    return _profile_read(model.name, row, include_sample=include_sample)


# Settings --------------------------------------------------------------------------------------


def _settings_read(model_name: str, row: DriftSettings | None) -> DriftSettingsRead:
    if row is None:
        return DriftSettingsRead(
            model=model_name,
            tau=DEFAULTS.tau,
            max_null_rate=DEFAULTS.max_null_rate,
            alpha=DEFAULTS.alpha,
            is_default=True,
        )
    return DriftSettingsRead(
        model=model_name,
        tau=row.tau,
        max_null_rate=row.max_null_rate,
        alpha=row.alpha,
        is_default=False,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def get_settings(session: Session, *, model_name: str) -> DriftSettingsRead:
    model = registry.get_model(session, model_name)
    return _settings_read(model.name, repository.settings_for(session, model.id))


def put_settings(
    session: Session, *, actor: Principal, model_name: str, data: DriftSettingsUpdate
) -> DriftSettingsRead:
    model = registry.lock_model(session, model_name)
    row = repository.settings_for(session, model.id)
    before = _settings_read(model.name, row)
    now = utcnow()
    if row is None:
        row = DriftSettings(model_id=model.id, updated_by=actor.name, updated_at=now)
        repository.add(session, row)
    row.tau, row.max_null_rate, row.alpha = data.tau, data.max_null_rate, data.alpha
    row.updated_by, row.updated_at = actor.name, now
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.DRIFT_SETTINGS_UPDATED,
        model=model.name,
        details={
            "settings": data.model_dump(mode="json"),
            "before": before.model_dump(mode="json", include={"tau", "max_null_rate", "alpha"}),
        },
    )
    return _settings_read(model.name, row)


def _thresholds(session: Session, model_id: int) -> compare.Thresholds:
    row = repository.settings_for(session, model_id)
    if row is None:
        return DEFAULTS
    return compare.Thresholds(tau=row.tau, max_null_rate=row.max_null_rate, alpha=row.alpha)


# Drift reports ------------------------------------------------------------------------------------


def _report_read(model_name: str, row: DriftReport) -> DriftReportRead:
    body = row.report
    return DriftReportRead.model_validate(
        {
            **body,
            "id": row.id,
            "model": model_name,
            "version": row.version,
            "window_start": row.window_start,
            "window_end": row.window_end,
            "rows": row.rows,
            "created_by": row.created_by,
            "created_at": row.created_at,
        }
    )


def create_drift_report(
    session: Session,
    *,
    actor: Principal,
    settings: Settings,
    model_name: str,
    data: DriftReportCreate,
) -> DriftReportRead:
    """Check a production window against the production version's reference profile.

    Every report is audited (``drift.reported``). A report is drifted when Delta exceeds
    tau (kind ``distribution``) or the window breaks the schema (kind ``schema``: a
    missing required column, a retyped column, unseen categories, nulls where none may
    be); ``drift.detected`` then names the kinds and the breaking issues, and reaches
    webhook subscribers through the outbox. ``retrain.requested`` follows distribution
    drift only: a broken feed is fixed upstream, not by retraining."""
    model = registry.lock_model(session, model_name)
    production = registry.versions_in_stage(
        session, model_name=model.name, stage=Stage.PRODUCTION, cursor=None, limit=1
    ).items
    if not production:
        raise NoDriftReference(f"model {model.name!r} has no production version to check")
    serving = production[0]
    reference = repository.profile_for(session, model.id, serving.version, with_profile=True)
    if reference is None:
        raise NoDriftReference(
            f"production version {serving.version} of {model.name!r} has no reference "
            f"profile: POST one to /models/{model.name}/versions/{serving.version}"
            "/reference-profile",
            version=serving.version,
        )
    _check_rows(data, settings)
    thresholds = _thresholds(session, model.id)
    columns, prediction, rows = compare.window_columns(
        features=_dump_features(data),
        prediction=_dump(data.prediction),
        sample=data.sample,
        predictions=data.predictions,
    )
    try:
        body = compare.compare(
            reference=reference.profile,
            columns=columns,
            prediction=prediction,
            signature=serving.signature,
            thresholds=thresholds,
            form="profile" if data.features is not None else "sample",
        )
    except compare.ProfileError as exc:
        raise _invalid(exc) from None
    now = utcnow()
    row = DriftReport(
        model_id=model.id,
        version=serving.version,
        reference_profile_id=reference.id,
        window_start=data.window_start,
        window_end=data.window_end,
        rows=rows,
        score=body["score"],
        tau=thresholds.tau,
        drifted=body["drifted"],
        top_feature=body["top_feature"],
        report=body,
        created_by=actor.name,
        created_at=now,
    )
    repository.add(session, row)
    session.flush()
    drifted_features = [
        f["name"]
        for f in [*body["features"], *([body["prediction"]] if body["prediction"] else [])]
        if f["drifted"]
    ]
    summary = {
        "report_id": row.id,
        "score": body["score"],
        "tau": thresholds.tau,
        "drifted": body["drifted"],
        "top_feature": body["top_feature"],
        "drifted_features": drifted_features,
        "schema_issues": len(body["schema_drift"]["issues"]),
        "kinds": body["kinds"],
        "window_start": data.window_start.isoformat() if data.window_start else None,
        "window_end": data.window_end.isoformat() if data.window_end else None,
        "rows": rows,
    }
    audit.record(
        session,
        actor=actor,
        action=AuditAction.DRIFT_REPORTED,
        model=model.name,
        version=serving.version,
        details=summary,
    )
    breaking = compare.breaking_issues(body["schema_drift"]["issues"])
    if body["drifted"]:
        reasons = []
        if "distribution" in body["kinds"]:
            reasons.append(
                f"drift score {body['score']:.4f} > tau {thresholds.tau} "
                f"(top feature: {body['top_feature']})"
            )
        if "schema" in body["kinds"]:
            reasons.append(
                "schema broken: "
                + "; ".join(f"{i['column']}: {i['kind']} ({i['detail']})" for i in breaking[:5])
            )
        audit.record(
            session,
            actor=actor,
            action=AuditAction.DRIFT_DETECTED,
            model=model.name,
            version=serving.version,
            reason="; ".join(reasons),
            details={
                **summary,
                "kind": body["kinds"][0] if len(body["kinds"]) == 1 else "distribution+schema",
                "schema_breaking": breaking,
            },
        )
    if "distribution" in body["kinds"]:
        reason = (
            f"drift score {body['score']:.4f} > tau {thresholds.tau} "
            f"(top feature: {body['top_feature']})"
        )
        audit.record(
            session,
            actor=actor,
            action=AuditAction.RETRAIN_REQUESTED,
            model=model.name,
            version=serving.version,
            reason=reason,
            details={
                "report_id": row.id,
                "production_version": serving.version,
                "reference_dataset": reference.dataset,
                "lineage": serving.lineage,
                "drifted_features": drifted_features,
                "score": body["score"],
                "tau": thresholds.tau,
            },
        )
    return _report_read(model.name, row)


def get_drift_report(session: Session, *, model_name: str, report_id: int) -> DriftReportRead:
    model = registry.get_model(session, model_name)
    row = repository.report(session, model.id, report_id)
    if row is None:
        raise DriftReportNotFound(f"model {model_name!r} has no drift report {report_id}")
    return _report_read(model.name, row)


def list_drift_reports(
    session: Session, *, model_name: str, drifted: bool | None, cursor: str | None, limit: int
) -> Page[DriftReportRead]:
    """Drift history, newest first."""
    model = registry.get_model(session, model_name)
    rows = repository.page_reports(
        session,
        model_id=model.id,
        before_id=pagination.after(cursor, int),
        drifted=drifted,
        limit=limit + 1,
    )
    page, next_cursor = pagination.split_page(rows, limit, lambda r: [r.id])
    return Page[DriftReportRead](
        items=[_report_read(model.name, r) for r in page], next_cursor=next_cursor
    )
