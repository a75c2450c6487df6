"""Profiles of columns: what a raw column holds, and the stored profile of a feature.

Pure functions (no DB, no HTTP). A stored feature profile is JSON:

- numeric: ``{"kind": "numeric", "edges": [...], "counts": [...], "count": n,
  "null_count": z, "mean": .., "std": .., "sample": [...] | null}``
- categorical: ``{"kind": "categorical", "frequencies": {category: count}, "count": n,
  "null_count": z}``
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.drift import stats

NUMERIC_TYPES = frozenset({"integer", "float", "number"})
CATEGORICAL_TYPES = frozenset({"categorical", "string", "boolean"})
Observed = str  # numeric | boolean | string | mixed | empty | categorical (profile form)


@dataclass(frozen=True)
class ColumnData:
    """One column of a window or reference, raw or already profiled."""

    name: str
    observed: Observed
    null_count: int
    count: float  # non-null values
    integral: bool = False
    numbers: list[float] | None = None  # raw numeric values
    labels: list[str] | None = None  # raw values as category labels
    profile: dict[str, Any] | None = None  # profile form

    @property
    def rows(self) -> float:
        return self.count + self.null_count

    @property
    def null_rate(self) -> float | None:
        return self.null_count / self.rows if self.rows > 0 else None

    def categories(self) -> dict[str, float] | None:
        """Category counts, when the column can be read as categorical."""
        if self.profile is not None:
            if self.profile.get("kind") == "categorical":
                return dict(self.profile["frequencies"])
            return None
        labels = self.labels
        if labels is None and self.numbers is not None and self.integral:
            labels = [label(x) for x in self.numbers]  # integer codes of a category
        if labels is None:
            return None
        return {k: float(v) for k, v in stats.category_counts(labels).items()}


def label(value: Any) -> str:
    """A raw value as a category label: booleans as true/false, integral numbers bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def observe(name: str, values: Sequence[Any]) -> ColumnData:
    present = [v for v in values if v is not None]
    nulls = len(values) - len(present)
    if not present:
        return ColumnData(name=name, observed="empty", null_count=nulls, count=0)
    if all(isinstance(v, bool) for v in present):
        return ColumnData(name, "boolean", nulls, len(present), labels=[label(v) for v in present])
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        numbers = [float(v) for v in present]
        integral = bool(np.all(np.mod(np.asarray(numbers), 1.0) == 0.0))
        return ColumnData(name, "numeric", nulls, len(present), integral=integral, numbers=numbers)
    if all(isinstance(v, str) for v in present):
        return ColumnData(name, "string", nulls, len(present), labels=list(present))
    return ColumnData(name, "mixed", nulls, len(present), labels=[label(v) for v in present])


def from_profile(name: str, profile: dict[str, Any]) -> ColumnData:
    """A client-sent profile (already validated) as column data."""
    kind = profile["kind"]
    if kind == "numeric":
        count = float(sum(profile["counts"]))
    else:
        count = float(sum(profile["frequencies"].values()))
    return ColumnData(
        name=name,
        observed=kind,
        null_count=int(profile.get("null_count", 0)),
        count=count,
        profile=profile,
    )


def compatible(declared: str, column: ColumnData) -> bool:
    """Whether the column's values fit a signature column type."""
    observed = column.observed
    if observed == "empty":
        return True
    if declared in NUMERIC_TYPES:
        if observed != "numeric":
            return False
        if declared == "integer" and column.profile is None:
            return column.integral
        return True
    if declared == "categorical":
        return observed in ("string", "boolean", "categorical") or (
            observed == "numeric" and column.profile is None and column.integral
        )
    if declared == "string":
        return observed in ("string", "categorical")
    if declared == "boolean":
        return observed == "boolean" or (
            observed == "categorical"
            and column.profile is not None
            and set(column.profile["frequencies"]) <= {"true", "false"}
        )
    return True  # datetime, bytes, tensor, object: not checked


def profile_kind(declared: str | None, column: ColumnData) -> str | None:
    """numeric or categorical for a column that can be profiled, else None."""
    if declared is not None:
        if declared in NUMERIC_TYPES:
            return "numeric"
        if declared in CATEGORICAL_TYPES:
            return "categorical"
        return None
    if column.observed == "numeric":
        return "numeric"
    if column.observed in ("string", "boolean", "categorical"):
        return "categorical"
    return None


def numeric_profile(
    numbers: Sequence[float], *, null_count: int, sample_size: int, bins: int = stats.DEFAULT_BINS
) -> dict[str, Any]:
    data = np.asarray(numbers, dtype=np.float64)
    edges = stats.quantile_edges(data, bins)
    return {
        "kind": "numeric",
        "edges": edges,
        "counts": [float(c) for c in stats.bin_counts(data, edges)],
        "count": float(data.size),
        "null_count": null_count,
        "mean": float(data.mean()),
        "std": float(data.std()),
        "sample": stats.subsample(data, sample_size) if sample_size > 0 else None,
    }


def categorical_profile(counts: dict[str, float], *, null_count: int) -> dict[str, Any]:
    return {
        "kind": "categorical",
        "frequencies": {k: float(v) for k, v in counts.items()},
        "count": float(sum(counts.values())),
        "null_count": null_count,
    }


def normalise_profile(profile: dict[str, Any]) -> dict[str, Any]:
    """A client-sent profile in the stored form."""
    if profile["kind"] == "numeric":
        counts = [float(c) for c in profile["counts"]]
        sample = profile.get("sample")
        return {
            "kind": "numeric",
            "edges": [float(e) for e in profile["edges"]],
            "counts": counts,
            "count": float(sum(counts)),
            "null_count": int(profile.get("null_count", 0)),
            "mean": float(np.mean(sample)) if sample else None,
            "std": float(np.std(sample)) if sample else None,
            "sample": [float(x) for x in sample] if sample else None,
        }
    frequencies = {str(k): float(v) for k, v in profile["frequencies"].items()}
    return {
        "kind": "categorical",
        "frequencies": frequencies,
        "count": float(sum(frequencies.values())),
        "null_count": int(profile.get("null_count", 0)),
    }
