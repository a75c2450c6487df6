"""What the pages show, computed from API payloads: pure functions, no database, no HTTP.

A reviewer compares a candidate with production; these functions line the two up
(metrics per dataset and slice with deltas judged by the metric's direction, lineage
and signature differences) and put gate results in a form one table row can hold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from app.gates.catalogue import Direction, direction_of
from app.promotion.schemas import RuleReport
from app.registry.schemas import MetricRead
from app.rollouts.schemas import RolloutRead

Verdict = Literal["better", "worse", "same", "new", "gone", "unknown"]


@dataclass(frozen=True, slots=True)
class MetricRow:
    dataset: str
    slice: str | None
    name: str
    candidate: float | None
    production: float | None
    delta: float | None
    direction: Direction | None
    verdict: Verdict
    sample_count: int | None


@dataclass(frozen=True, slots=True)
class MetricGroup:
    """The metrics of one dataset and slice (slice None: the whole dataset)."""

    dataset: str
    slice: str | None
    rows: list[MetricRow]

    @property
    def label(self) -> str:
        return self.dataset if self.slice is None else f"{self.dataset} · {self.slice}"


def _key(m: MetricRead) -> tuple[str, str, str]:
    return (m.dataset, m.slice or "", m.name)


def _verdict(delta: float, direction: Direction | None, scale: float) -> Verdict:
    if math.isclose(delta, 0.0, abs_tol=1e-12 + 1e-9 * scale):
        return "same"
    if direction is None:
        return "unknown"
    improved = delta > 0 if direction is Direction.HIGHER else delta < 0
    return "better" if improved else "worse"


def compare_metrics(
    candidate: Iterable[MetricRead],
    production: Iterable[MetricRead] | None,
    directions: Mapping[str, Direction] | None = None,
) -> list[MetricGroup]:
    """Candidate beside production for every dataset and slice either side has, whole
    datasets before their slices, each metric once."""
    cand = {_key(m): m for m in candidate}
    prod = {_key(m): m for m in production or ()}
    groups: dict[tuple[str, str], list[MetricRow]] = {}
    for key in sorted(set(cand) | set(prod)):
        c, p = cand.get(key), prod.get(key)
        cv = c.value if c is not None else None
        pv = p.value if p is not None else None
        direction = direction_of(key[2], directions)
        verdict: Verdict
        delta: float | None = None
        if cv is not None and pv is not None:
            delta = cv - pv
            verdict = _verdict(delta, direction, max(abs(cv), abs(pv)))
        elif cv is not None:
            verdict = "new"
        elif pv is not None:
            verdict = "gone"
        else:
            verdict = "unknown"
        shown = c or p
        assert shown is not None
        groups.setdefault(key[:2], []).append(
            MetricRow(
                dataset=key[0],
                slice=key[1] or None,
                name=key[2],
                candidate=cv,
                production=pv,
                delta=delta,
                direction=direction,
                verdict=verdict,
                sample_count=shown.sample_count,
            )
        )
    return [MetricGroup(dataset=d, slice=s or None, rows=rows) for (d, s), rows in groups.items()]


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: a field (or hyperparameter, or column) before and after."""

    name: str
    before: str | None
    after: str | None

    @property
    def kind(self) -> Literal["added", "removed", "changed"]:
        if self.before is None:
            return "added"
        if self.after is None:
            return "removed"
        return "changed"


def _show(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(", ", ": "))


LINEAGE_ORDER = (
    "data_version",
    "code_commit",
    "code_repository",
    "code_dirty",
    "feature_pipeline_version",
    "environment",
    "seed",
    "training_run_id",
    "ci_run_id",
    "ci_run_url",
)


def lineage_changes(candidate: Mapping[str, Any], production: Mapping[str, Any]) -> list[Change]:
    """Lineage fields that differ, then each hyperparameter (and extra) that differs."""
    changes: list[Change] = []
    names = [n for n in LINEAGE_ORDER if n in candidate or n in production]
    names += sorted(
        n
        for n in set(candidate) | set(production)
        if n not in LINEAGE_ORDER and n not in ("hyperparameters", "extra")
    )
    for name in names:
        before, after = _show(production.get(name)), _show(candidate.get(name))
        if before != after:
            changes.append(Change(name, before, after))
    for group in ("hyperparameters", "extra"):
        old = production.get(group) or {}
        new = candidate.get(group) or {}
        for key in sorted(set(old) | set(new)):
            before, after = _show(old.get(key)), _show(new.get(key))
            if before != after:
                changes.append(Change(f"{group}.{key}", before, after))
    return changes


@dataclass(frozen=True, slots=True)
class ColumnChange:
    side: Literal["input", "output"]
    name: str
    kind: Literal["removed", "added", "retyped", "nullability", "categories"]
    before: str | None
    after: str | None
    breaking: bool


def _columns(signature: Mapping[str, Any] | None, side: str) -> dict[str, dict[str, Any]]:
    if not signature:
        return {}
    return {c["name"]: c for c in signature.get(side) or [] if isinstance(c, dict)}


def signature_changes(
    candidate: Mapping[str, Any] | None, production: Mapping[str, Any] | None
) -> list[ColumnChange]:
    """Columns removed, added or retyped against production; ``breaking`` marks what a
    caller of production would feel (a removed or retyped input, a newly required one)."""
    changes: list[ColumnChange] = []
    for side, label in (("inputs", "input"), ("outputs", "output")):
        old, new = _columns(production, side), _columns(candidate, side)
        is_input = label == "input"
        for name in sorted(set(old) | set(new)):
            o, n = old.get(name), new.get(name)
            if n is None and o is not None:
                changes.append(
                    ColumnChange(label, name, "removed", o.get("type"), None, breaking=True)  # type: ignore[arg-type]
                )
            elif o is None and n is not None:
                required = bool(n.get("required", True)) and not n.get("nullable", False)
                changes.append(
                    ColumnChange(
                        label,  # type: ignore[arg-type]
                        name,
                        "added",
                        None,
                        n.get("type"),
                        breaking=is_input and required,
                    )
                )
            elif o is not None and n is not None:
                if o.get("type") != n.get("type"):
                    changes.append(
                        ColumnChange(
                            label,  # type: ignore[arg-type]
                            name,
                            "retyped",
                            o.get("type"),
                            n.get("type"),
                            breaking=True,
                        )
                    )
                if bool(o.get("nullable")) != bool(n.get("nullable")):
                    changes.append(
                        ColumnChange(
                            label,  # type: ignore[arg-type]
                            name,
                            "nullability",
                            "nullable" if o.get("nullable") else "not null",
                            "nullable" if n.get("nullable") else "not null",
                            breaking=is_input and bool(o.get("nullable")),
                        )
                    )
                if (o.get("categories") or None) != (n.get("categories") or None):
                    removed = sorted(
                        set(o.get("categories") or []) - set(n.get("categories") or [])
                    )
                    added = sorted(set(n.get("categories") or []) - set(o.get("categories") or []))
                    changes.append(
                        ColumnChange(
                            label,  # type: ignore[arg-type]
                            name,
                            "categories",
                            ", ".join(removed) or None,
                            ", ".join(added) or None,
                            breaking=is_input and bool(removed),
                        )
                    )
    return changes


@dataclass(frozen=True, slots=True)
class RuleRow:
    """A gate rule as one table row: result, observed, threshold, p-value, why."""

    name: str
    kind: str
    passed: bool
    observed: list[tuple[str, str]]
    threshold: str | None
    p_value: str | None
    reason: str
    detail: list[tuple[str, str]] = field(default_factory=list)


# Observed values that are the rule's headline, in the order a reviewer reads them.
_HEADLINE = ("candidate", "value", "observed", "production", "difference", "delta", "gap", "min")


def fmt_number(value: float | int | None, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 10 ** -(digits - 1) or abs(value) >= 1e7):
        return f"{value:.{max(digits - 2, 1)}e}"
    text = f"{value:,.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def fmt_signed(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "—"
    text = fmt_number(abs(value), digits)
    if math.isclose(value, 0.0, abs_tol=1e-12):
        return "±0"
    return ("+" if value > 0 else "\u2212") + text


def fmt_p(value: float | None) -> str | None:
    if value is None:
        return None
    if value < 1e-4:
        return "< 0.0001"
    return f"{value:.4f}"


def _fmt_any(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "yes" if value is True else "no" if value is False else "—"
    if isinstance(value, int | float):
        return fmt_number(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence) and len(value) <= 6:
        return ", ".join(_fmt_any(v) for v in value)
    if isinstance(value, Mapping) and len(value) <= 6:
        return ", ".join(f"{k} {_fmt_any(v)}" for k, v in value.items())
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "…"


# Observed keys that repeat the rule's configuration (already in its name and reason).
_ECHO = frozenset({"metric", "dataset", "direction", "test", "kind", "has_production"})


def rule_rows(rules: Sequence[RuleReport]) -> list[RuleRow]:
    """Failed rules first (a reviewer reads those first), each keeping the policy's order.
    The observed cell shows up to three short headline values; the rest (configuration
    echoes, digests, long lists) folds under "more"."""
    rows: list[RuleRow] = []
    for r in rules:
        observed = {k: _fmt_any(v) for k, v in r.observed.items()}
        short = [
            k
            for k in observed
            if k not in _ECHO and 0 < len(observed[k]) <= 48 and observed[k] != "—"
        ]
        head = [k for k in _HEADLINE if k in short]
        shown = (head + [k for k in short if k not in head])[:3]
        rows.append(
            RuleRow(
                name=r.rule,
                kind=r.kind.replace("_", " "),
                passed=r.passed,
                observed=[(k.replace("_", " "), observed[k]) for k in shown],
                threshold=fmt_number(r.threshold) if r.threshold is not None else None,
                p_value=fmt_p(r.p_value),
                reason=r.reason,
                detail=[
                    (k.replace("_", " "), observed[k])
                    for k in observed
                    if k not in shown and observed[k] not in ("", "—")
                ],
            )
        )
    return sorted(rows, key=lambda row: row.passed)


# Rollouts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepRow:
    number: int  # 1-based
    weight: float
    hold: str
    state: Literal["done", "current", "next"]
    started_at: datetime | None
    approved_by: str | None


@dataclass(frozen=True, slots=True)
class RolloutView:
    """What a rollout's summary line says: where it is and what serves."""

    step_label: str
    weights: list[tuple[int, float]]
    shadow: float
    steps: list[StepRow]


def hold_text(hold: Mapping[str, Any]) -> str:
    parts = []
    if hold.get("duration_seconds") is not None:
        parts.append(f"{fmt_number(float(hold['duration_seconds']))} s")
    if hold.get("min_observations") is not None:
        parts.append(f"{fmt_number(int(hold['min_observations']))} observations")
    if hold.get("approval"):
        parts.append("approval")
    return " + ".join(parts) or "none"


def rollout_view(r: RolloutRead) -> RolloutView:
    active = r.state in ("running", "paused")
    steps = []
    for i, step in enumerate(r.steps):
        if r.state == "completed" or i < r.step:
            state: Literal["done", "current", "next"] = "done"
        elif i == r.step and active:
            state = "current"
        else:
            state = "next"
        steps.append(
            StepRow(
                number=i + 1, weight=step.weight, hold=hold_text(step.hold), state=state,
                started_at=step.started_at,
                approved_by=step.approved_by,
            )
        )  # fmt: skip
    label = f"step {r.step + 1} of {len(r.steps)}"
    if r.strategy == "blue_green":
        label += " (switched)" if r.switched else " (warming up as a shadow)"
    weights = sorted(((int(v), w) for v, w in r.weights.items()), key=lambda x: -x[1])
    return RolloutView(step_label=label, weights=weights, shadow=r.shadow_share, steps=steps)


@dataclass(frozen=True, slots=True)
class MetricLook:
    metric: str
    kind: str
    verdict: str
    p_value: str
    effect: str
    tolerance: str
    samples: str
    canary: str
    incumbent: str
    reason: str


@dataclass(frozen=True, slots=True)
class LookRow:
    number: int
    at: datetime
    step: int  # 1-based
    score: str
    status: str
    action: str
    reason: str
    metrics: list[MetricLook]


def _short(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return fmt_number(value)
    return str(value)


def look_rows(r: RolloutRead) -> list[LookRow]:
    """The looks, newest first, each metric's verdict with its numbers."""
    rows = []
    for look in reversed(r.looks):
        metrics = []
        for m in look.results:
            samples = m.get("samples") or [None, None]
            metrics.append(
                MetricLook(
                    metric=str(m.get("metric")), kind=str(m.get("kind")),
                    verdict=str(m.get("verdict")),
                    p_value=_short(m.get("p_value")), effect=_short(m.get("effect")),
                    tolerance=_short(m.get("tolerance")),
                    samples=f"{_short(samples[0])} / {_short(samples[1])}",
                    canary=_short(m.get("canary")), incumbent=_short(m.get("incumbent")),
                    reason=str(m.get("reason") or ""),
                )
            )  # fmt: skip
        rows.append(
            LookRow(
                number=look.number, at=look.at, step=look.step + 1,
                score=_short(look.score), status=look.status, action=look.action,
                reason=look.reason, metrics=metrics,
            )
        )  # fmt: skip
    return rows
