"""The data-contract checks, as pure functions over profiled columns (no DB, no HTTP).

A dataset (a raw sample or per-column profiles, read with :mod:`app.drift.profiles`) is
checked against a version's input signature and its reference profile:

- ``required``: every required signature column is in the dataset;
- ``type``: each column's values fit its declared type (:func:`app.drift.profiles.compatible`);
- ``nulls``: a non-nullable column has no null, a nullable one a null rate at most
  ``max_null_rate``;
- ``categories``: a column with a categorical domain holds no value outside it;
- ``rows``: the row count lies within ``[min_row_ratio, max_row_ratio]`` times the
  reference profile's (skipped, and said so, when the version has no reference profile
  or the reference does not state its row count).

Every check lists what it observed; the report passes when no check failed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.drift.profiles import ColumnData, compatible


@dataclass(frozen=True)
class Bounds:
    max_null_rate: float
    min_row_ratio: float
    max_row_ratio: float


@dataclass
class Check:
    check: str
    column: str | None
    passed: bool | None
    """``None``: not checked (the reason says why)."""
    reason: str
    observed: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "column": self.column,
            "passed": self.passed,
            "reason": self.reason,
            "observed": self.observed,
        }


def _rows(columns: Mapping[str, ColumnData]) -> float:
    return max((c.rows for c in columns.values()), default=0.0)


def check(
    *,
    signature_inputs: Sequence[Mapping[str, Any]],
    columns: Mapping[str, ColumnData],
    reference_rows: float | None,
    bounds: Bounds,
) -> list[Check]:
    """Every check of the contract, in signature order, then the row count."""
    out: list[Check] = []
    for spec in signature_inputs:
        name = str(spec["name"])
        declared = str(spec["type"])
        column = columns.get(name)
        if column is None:
            required = bool(spec.get("required", True))
            out.append(
                Check(
                    "required",
                    name,
                    False if required else None,
                    f"required column {name!r} is missing"
                    if required
                    else f"optional column {name!r} is absent",
                )
            )
            continue
        fits = compatible(declared, column)
        out.append(
            Check(
                "type",
                name,
                fits,
                f"column {name!r} holds {column.observed} values"
                + ("" if fits else f", not {declared}"),
                {"declared": declared, "observed": column.observed},
            )
        )
        nullable = bool(spec.get("nullable", False))
        rate = column.null_rate or 0.0
        bound = bounds.max_null_rate if nullable else 0.0
        ok = rate <= bound
        out.append(
            Check(
                "nulls",
                name,
                ok,
                f"column {name!r} has {column.null_count} null(s) (rate {rate:.4g}); "
                + (f"at most {bound:.4g} allowed" if nullable else "the column is not nullable"),
                {"null_count": column.null_count, "null_rate": rate, "max_null_rate": bound},
            )
        )
        domain = spec.get("categories")
        if domain is not None:
            counts = column.categories()
            if counts is None:
                out.append(
                    Check(
                        "categories",
                        name,
                        False,
                        f"column {name!r} cannot be read as categories",
                        {"domain": list(domain)},
                    )
                )
                continue
            allowed = set(domain)
            unseen = {k: v for k, v in sorted(counts.items()) if k not in allowed and v > 0}
            out.append(
                Check(
                    "categories",
                    name,
                    not unseen,
                    f"column {name!r} has {int(sum(unseen.values()))} value(s) outside its "
                    f"domain: {sorted(unseen)}"
                    if unseen
                    else f"every value of column {name!r} is in its domain",
                    {"domain": list(domain), "outside": unseen},
                )
            )
    rows = _rows(columns)
    if reference_rows is None or reference_rows <= 0:
        out.append(
            Check(
                "rows",
                None,
                None,
                "no reference profile with a row count: the row count was not checked",
                {"rows": rows},
            )
        )
    else:
        low, high = bounds.min_row_ratio * reference_rows, bounds.max_row_ratio * reference_rows
        ok = low <= rows <= high
        out.append(
            Check(
                "rows",
                None,
                ok,
                f"{rows:.0f} row(s); the reference has {reference_rows:.0f}, so "
                f"{low:.0f} to {high:.0f} are accepted",
                {"rows": rows, "reference_rows": reference_rows, "accepted": [low, high]},
            )
        )
    return out
