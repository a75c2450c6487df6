"""Reference profiles from client data, and a production window compared with one.

Pure functions over plain data (dicts as stored, :class:`ColumnData`); the service adds
the database around them, and the statistical tests call them directly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.drift import stats
from app.drift.profiles import (
    CATEGORICAL_TYPES,
    NUMERIC_TYPES,
    ColumnData,
    categorical_profile,
    compatible,
    from_profile,
    normalise_profile,
    numeric_profile,
    observe,
    profile_kind,
)

PREDICTION = "__prediction__"
MAX_LISTED_CATEGORIES = 20


class ProfileError(ValueError):
    """The data cannot be profiled or compared as sent; ``loc`` points at the culprit."""

    def __init__(self, message: str, loc: Sequence[str | int]) -> None:
        super().__init__(message)
        self.loc = list(loc)


@dataclass(frozen=True)
class Thresholds:
    tau: float = 0.2
    max_null_rate: float = 0.05
    alpha: float = 0.01


def _input_types(signature: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    if not signature:
        return {}
    return {str(c["name"]): dict(c) for c in signature.get("inputs") or []}


def _prediction_type(signature: Mapping[str, Any] | None) -> str | None:
    outputs = (signature or {}).get("outputs") or []
    return str(outputs[0]["type"]) if len(outputs) == 1 else None


# Reference profiles --------------------------------------------------------------------------


def _profile_raw(
    column: ColumnData, declared: str | None, sample_size: int, loc: list[str | int]
) -> dict[str, Any] | str:
    """The stored profile of a raw column, or the reason it is not profiled."""
    if declared is not None and not compatible(declared, column):
        raise ProfileError(
            f"column {column.name!r} is declared {declared} but holds {column.observed} values",
            loc,
        )
    if column.count == 0:
        return "no non-null values"
    kind = profile_kind(declared, column)
    if kind is None:
        return f"{declared or column.observed} columns are not profiled"
    if kind == "numeric":
        assert column.numbers is not None
        return numeric_profile(
            column.numbers, null_count=column.null_count, sample_size=sample_size
        )
    counts = column.categories()
    if counts is None:
        raise ProfileError(f"column {column.name!r} holds non-integral numbers", loc)
    return categorical_profile(counts, null_count=column.null_count)


def build_reference(
    *,
    features: Mapping[str, Mapping[str, Any]] | None,
    prediction: Mapping[str, Any] | None,
    sample: Mapping[str, Sequence[Any]] | None,
    predictions: Sequence[Any] | None,
    signature: Mapping[str, Any] | None,
    sample_size: int,
    dataset: str | None = None,
) -> dict[str, Any]:
    """The stored reference profile, from client profiles or from a raw sample."""
    declared = _input_types(signature)
    out: dict[str, Any] = {"dataset": dataset, "features": {}, "prediction": None, "skipped": {}}
    if features is not None:
        out["source"] = "profile"
        out["rows"] = None
        for name, given in features.items():
            spec = declared.get(name)
            needed = None
            if spec is not None and str(spec["type"]) in NUMERIC_TYPES:
                needed = "numeric"
            elif spec is not None and str(spec["type"]) in CATEGORICAL_TYPES:
                needed = "categorical"
            if needed is not None and needed != given["kind"]:
                raise ProfileError(
                    f"feature {name!r} is declared {spec['type'] if spec else '?'} "
                    f"but its profile is {given['kind']}",
                    ["body", "features", name, "kind"],
                )
            out["features"][name] = normalise_profile(dict(given))
        if prediction is not None:
            out["prediction"] = normalise_profile(dict(prediction))
        return out
    assert sample is not None
    out["source"] = "sample"
    out["rows"] = max((len(v) for v in sample.values()), default=0)
    for name, values in sample.items():
        spec = declared.get(name)
        result = _profile_raw(
            observe(name, values),
            str(spec["type"]) if spec else None,
            sample_size,
            ["body", "sample", name],
        )
        if isinstance(result, str):
            out["skipped"][name] = result
        else:
            out["features"][name] = result
    if predictions is not None:
        result = _profile_raw(
            observe(PREDICTION, predictions),
            _prediction_type(signature),
            sample_size,
            ["body", "predictions"],
        )
        if isinstance(result, str):
            out["skipped"][PREDICTION] = result
        else:
            out["prediction"] = result
    if not out["features"] and out["prediction"] is None:
        raise ProfileError("no column of the sample could be profiled", ["body", "sample"])
    return out


# Windows ------------------------------------------------------------------------------------


def window_columns(
    *,
    features: Mapping[str, Mapping[str, Any]] | None,
    prediction: Mapping[str, Any] | None,
    sample: Mapping[str, Sequence[Any]] | None,
    predictions: Sequence[Any] | None,
) -> tuple[dict[str, ColumnData], ColumnData | None, int | None]:
    """The window's columns, its prediction column, and its row count."""
    if features is not None:
        columns = {name: from_profile(name, dict(p)) for name, p in features.items()}
        pred = from_profile(PREDICTION, dict(prediction)) if prediction is not None else None
        every = [*columns.values(), *([pred] if pred else [])]
        rows = max((round(c.rows) for c in every), default=0)
        return columns, pred, rows
    assert sample is not None
    columns = {name: observe(name, values) for name, values in sample.items()}
    pred = observe(PREDICTION, predictions) if predictions is not None else None
    rows = max((len(v) for v in sample.values()), default=0)
    return columns, pred, rows


def contract_violations(
    signature: Mapping[str, Any] | None, columns: Mapping[str, ColumnData]
) -> list[dict[str, Any]]:
    """Where data breaks the version's signature: nulls in a column declared not nullable,
    and values outside a declared categorical domain; one entry per column and kind, with
    its count. A reference profile with any of these would hide exactly the alerts
    (nulls, unseen categories) it is meant to raise later."""
    found: list[dict[str, Any]] = []
    for name, spec in _input_types(signature).items():
        column = columns.get(name)
        if column is None:
            continue
        if spec.get("nullable") is False and column.null_count > 0:
            found.append(
                {
                    "column": name,
                    "kind": "nulls_in_non_nullable",
                    "count": column.null_count,
                    "detail": f"{column.null_count} null(s) in a column declared not nullable",
                }
            )
        domain = spec.get("categories")
        seen = column.categories() if domain else None
        if domain and seen:
            allowed = {str(c) for c in domain}
            outside = {c: n for c, n in seen.items() if n > 0 and c not in allowed}
            if outside:
                count = round(sum(outside.values()))
                found.append(
                    {
                        "column": name,
                        "kind": "outside_domain",
                        "count": count,
                        "categories": sorted(outside)[:MAX_LISTED_CATEGORIES],
                        "detail": f"{count} value(s) outside the declared categories "
                        f"({', '.join(sorted(outside)[:5])})",
                    }
                )
    return found


# Comparing -----------------------------------------------------------------------------------


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    return float(value) if math.isfinite(value) else None


def _test(result: stats.StatResult | None, alpha: float) -> dict[str, Any] | None:
    if result is None or not math.isfinite(result.statistic) or not math.isfinite(result.p_value):
        return None
    return {
        "statistic": result.statistic,
        "p_value": result.p_value,
        "dof": result.dof,
        "significant": result.p_value < alpha,
    }


def compare_feature(
    name: str,
    reference: Mapping[str, Any],
    column: ColumnData | None,
    thresholds: Thresholds,
    *,
    loc: Sequence[str | int] = (),
) -> dict[str, Any]:
    """The drift numbers of one feature (a FeatureDriftRead as a dict)."""
    kind = str(reference["kind"])
    out: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "rows": 0.0,
        "reference_rows": float(reference["count"]),
        "null_rate": column.null_rate if column is not None else None,
        "psi": None,
        "psi_critical": None,
        "false_alarm_probability": None,
        "score": None,
        "drifted": False,
        "ks": None,
        "chi_square": None,
        "js_distance": None,
        "skipped": None,
        "notes": [],
    }
    if column is None:
        out["skipped"] = "not in the window"
        return out
    if column.count <= 0:
        out["skipped"] = "no non-null values in the window"
        return out
    if kind == "numeric":
        edges = [float(e) for e in reference["edges"]]
        ref_counts = [float(c) for c in reference["counts"]]
        window_sample: Sequence[float] | None
        if column.profile is not None:
            if column.profile["kind"] != "numeric":
                out["skipped"] = "type mismatch: numeric in the reference, categorical here"
                return out
            given = [float(e) for e in column.profile["edges"]]
            if len(given) != len(edges) or not np.allclose(given, edges, rtol=1e-9, atol=0.0):
                raise ProfileError(
                    f"feature {name!r}: bin the window on the reference profile's edges "
                    "(GET the reference profile to read them)",
                    [*loc, "edges"],
                )
            win_counts = [float(c) for c in column.profile["counts"]]
            window_sample = column.profile.get("sample")
        elif column.observed == "numeric" and column.numbers is not None:
            win_counts = [float(c) for c in stats.bin_counts(column.numbers, edges)]
            window_sample = column.numbers
        else:
            out["skipped"] = f"type mismatch: numeric in the reference, {column.observed} here"
            return out
        ref_sample = reference.get("sample")
        result = stats.numeric_stats(
            reference_counts=ref_counts,
            window_counts=win_counts,
            tau=thresholds.tau,
            alpha=thresholds.alpha,
            reference_sample=ref_sample,
            window_sample=window_sample,
        )
        if not ref_sample:
            out["notes"].append("KS skipped: the reference profile keeps no sample")
        elif not window_sample:
            out["notes"].append("KS skipped: the window profile has no sample")
        out.update(edges=edges, reference_counts=ref_counts, window_counts=win_counts)
    else:
        categories = column.categories()
        if categories is None or (column.observed == "numeric" and not column.integral):
            out["skipped"] = f"type mismatch: categorical in the reference, {column.observed} here"
            return out
        cells, ref_counts, win_counts, _unseen = stats.align_categories(
            reference["frequencies"], categories
        )
        result = stats.categorical_stats(
            reference_counts=ref_counts,
            window_counts=win_counts,
            tau=thresholds.tau,
            alpha=thresholds.alpha,
        )
        if len(cells) < 2:
            out["notes"].append("chi-square skipped: a single category")
        out.update(cells=cells, reference_counts=ref_counts, window_counts=win_counts)
    out.update(
        rows=result.n,
        psi=_finite(result.psi),
        psi_critical=_finite(result.psi_critical),
        false_alarm_probability=result.false_alarm_probability,
        score=_finite(result.score),
        drifted=bool(result.score > thresholds.tau),
        ks=_test(result.ks, thresholds.alpha),
        chi_square=_test(result.chi_square, thresholds.alpha),
        js_distance=_finite(result.js_distance),
    )
    return out


def schema_drift(
    *,
    signature: Mapping[str, Any] | None,
    reference: Mapping[str, Any],
    columns: Mapping[str, ColumnData],
    thresholds: Thresholds,
) -> dict[str, Any]:
    """Missing and new columns, type mismatches, null rates, unseen categories."""
    ref_features: Mapping[str, Any] = reference.get("features") or {}
    expected = _input_types(signature)
    against = "signature"
    if not expected:
        against = "reference_profile"
        expected = {
            name: {"name": name, "type": None, "nullable": True, "required": True}
            for name in [*ref_features, *(reference.get("skipped") or {})]
            if name != PREDICTION
        }
    issues: list[dict[str, Any]] = []
    for name, spec in expected.items():
        if name not in columns:
            required = bool(spec.get("required", True))
            issues.append(
                {
                    "kind": "missing_column",
                    "column": name,
                    "required": required,
                    "detail": f"{'required' if required else 'optional'} column missing",
                }
            )
    for name in columns:
        if name not in expected:
            issues.append({"kind": "new_column", "column": name, "detail": f"not in the {against}"})
    for name, column in columns.items():
        found = expected.get(name)
        if found is None:
            continue
        spec = found
        declared = spec.get("type")
        ref = ref_features.get(name)
        if declared is not None:
            if not compatible(str(declared), column):
                issues.append(
                    {
                        "kind": "type_mismatch",
                        "column": name,
                        "expected": str(declared),
                        "observed": column.observed,
                        "detail": f"declared {declared}, the window holds {column.observed}",
                    }
                )
        elif ref is not None and column.observed != "empty":
            expected_kind = "numeric" if ref["kind"] == "numeric" else "categorical"
            ok = (
                column.observed == "numeric"
                if expected_kind == "numeric"
                else column.observed in ("string", "boolean", "categorical")
                or (column.observed == "numeric" and column.integral)
            )
            if not ok:
                issues.append(
                    {
                        "kind": "type_mismatch",
                        "column": name,
                        "expected": expected_kind,
                        "observed": column.observed,
                        "detail": f"{expected_kind} in the reference, {column.observed} here",
                    }
                )
        rate = column.null_rate
        if rate is not None and rate > thresholds.max_null_rate:
            issues.append(
                {
                    "kind": "null_rate",
                    "column": name,
                    "rate": rate,
                    "bound": thresholds.max_null_rate,
                    "detail": f"{rate:.2%} nulls, more than {thresholds.max_null_rate:.2%}",
                }
            )
        if spec.get("nullable") is False and column.null_count > 0:
            issues.append(
                {
                    "kind": "unexpected_nulls",
                    "column": name,
                    "rate": rate,
                    "detail": f"{column.null_count} null(s) in a column declared not nullable",
                }
            )
        allowed: set[str] | None = None
        if spec.get("categories"):
            allowed = {str(c) for c in spec["categories"]}
        elif ref is not None and ref["kind"] == "categorical" and declared not in NUMERIC_TYPES:
            allowed = set(ref["frequencies"])
        seen = column.categories() if allowed is not None else None
        if allowed is not None and seen:
            unseen = [c for c, n in seen.items() if n > 0 and c not in allowed]
            if unseen:
                share = sum(seen[c] for c in unseen) / max(sum(seen.values()), 1.0)
                issues.append(
                    {
                        "kind": "unseen_categories",
                        "column": name,
                        "categories": sorted(unseen)[:MAX_LISTED_CATEGORIES],
                        "rate": share,
                        "detail": f"{len(unseen)} categor{'y' if len(unseen) == 1 else 'ies'} "
                        f"never seen before, {share:.2%} of the values",
                    }
                )
    return {"ok": not issues, "checked_against": against, "issues": issues}


def compare(
    *,
    reference: Mapping[str, Any],
    columns: Mapping[str, ColumnData],
    prediction: ColumnData | None,
    signature: Mapping[str, Any] | None,
    thresholds: Thresholds,
    form: str = "sample",
) -> dict[str, Any]:
    """A drift report body: per-feature drift, prediction drift, schema drift, Delta."""
    loc_base = ["body", "features"] if form == "profile" else ["body", "sample"]
    features = [
        compare_feature(name, ref, columns.get(name), thresholds, loc=[*loc_base, name])
        for name, ref in (reference.get("features") or {}).items()
    ]
    pred: dict[str, Any] | None = None
    if reference.get("prediction") is not None:
        pred = compare_feature(
            PREDICTION,
            reference["prediction"],
            prediction,
            thresholds,
            loc=["body", "prediction" if form == "profile" else "predictions"],
        )
    scored = [(f["score"], f["name"]) for f in [*features, *([pred] if pred else [])]]
    scored = [(s, n) for s, n in scored if s is not None]
    delta = stats.overall_score([s for s, _ in scored])
    top = max(scored)[1] if scored else None
    schema = schema_drift(
        signature=signature, reference=reference, columns=columns, thresholds=thresholds
    )
    kinds = [
        kind
        for kind, found in (
            ("distribution", delta > thresholds.tau),
            ("schema", bool(breaking_issues(schema["issues"]))),
        )
        if found
    ]
    return {
        "score": delta,
        "tau": thresholds.tau,
        "drifted": bool(kinds),
        "kinds": kinds,
        "top_feature": top,
        "settings": {
            "tau": thresholds.tau,
            "max_null_rate": thresholds.max_null_rate,
            "alpha": thresholds.alpha,
        },
        "features": features,
        "prediction": pred,
        "schema_drift": schema,
    }


BREAKING_KINDS = frozenset(
    {"missing_column", "type_mismatch", "unseen_categories", "unexpected_nulls", "null_rate"}
)
"""Schema issues that mean the window no longer fits what the model was trained on. A
new column, or a missing column the signature marks optional, is reported but harmless."""


def breaking_issues(issues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issues that make a window drifted (kind ``schema``) whatever its scores."""
    return [
        issue
        for issue in issues
        if issue["kind"] in BREAKING_KINDS
        and not (issue["kind"] == "missing_column" and issue.get("required") is False)
    ]
