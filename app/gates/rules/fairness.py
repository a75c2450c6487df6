"""``fairness``: every slice (subgroup) does well enough, and none much worse than the others."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

from pydantic import Field, model_validator

from app.gates._numbers import as_count
from app.gates.catalogue import Direction
from app.gates.facts import Facts, PolicyFacts, VersionFacts
from app.gates.fields import Finite, Label, MetricName
from app.gates.result import RuleResult
from app.gates.rules._common import (
    _at_most,
    _data_number,
    _direction,
    _finite_or_none,
    _num,
    _policy_number,
)
from app.gates.rules.base import PolicyProblem, RuleConfig, direction_problems, unknown_direction


class FairnessRule(RuleConfig):
    kind: Literal["fairness"]
    metric: MetricName
    dataset: Label
    floor: Finite | None = None
    max_gap: Finite | None = Field(default=None, ge=0.0)
    max_slice_regression: Finite | None = Field(default=None, ge=0.0)
    min_slices: int = Field(default=2, ge=1)
    direction: Direction | None = None

    @model_validator(mode="after")
    def _needs_a_bound(self) -> FairnessRule:
        if self.floor is None and self.max_gap is None and self.max_slice_regression is None:
            raise ValueError("a fairness rule needs floor, max_gap or max_slice_regression")
        return self

    def label(self) -> str:
        return self.metric

    def policy_problems(self, policy: PolicyFacts) -> list[PolicyProblem]:
        return direction_problems(policy, self.metric, self.direction)

    def evaluate(self, name: str, facts: Facts) -> RuleResult:
        def slices(version: VersionFacts | None) -> dict[str, float | None]:
            return dict(version.slices(self.metric, self.dataset)) if version else {}

        direction = facts.direction(self.metric, self.direction)
        if direction is None:
            return unknown_direction(name, "fairness", self.metric)
        compare = facts.production is not None and self.max_slice_regression is not None
        result = fairness(
            rule=name,
            metric=self.metric,
            direction=direction,
            slices=slices(facts.candidate),
            floor=self.floor,
            max_gap=self.max_gap,
            production_slices=slices(facts.production) if compare else None,
            max_slice_regression=self.max_slice_regression if compare else None,
            min_slices=self.min_slices,
        )
        return replace(result, observed={**result.observed, "dataset": self.dataset})


def fairness(
    *,
    rule: str,
    metric: str,
    direction: Direction,
    slices: Mapping[str, float | None],
    floor: float | None,
    max_gap: float | None,
    production_slices: Mapping[str, float | None] | None = None,
    max_slice_regression: float | None = None,
    min_slices: int = 2,
) -> RuleResult:
    """Every slice (subgroup) must do well enough, and no slice much worse than the others.

    Checks, all of which must hold: at least ``min_slices`` slices; every slice
    defined; every slice meets ``floor`` (``>=``, or ``<=`` when lower is better);
    the best-worst gap is at most ``max_gap``; and, when ``production_slices``
    and ``max_slice_regression`` are both given, no slice is worse than
    production's same slice by more than ``max_slice_regression``. A slice that
    production measured but the candidate did not fails the rule (dropping a
    slice must not dodge the gate); a slice production did not measure has no
    baseline and is only listed in ``observed``. The reason names the worst
    offending slice of each failed check.
    """
    direction = _direction(direction)
    if floor is not None:
        floor = _policy_number("floor", floor)
    if max_gap is not None:
        max_gap = _policy_number("max_gap", max_gap)
        if max_gap < 0:
            raise ValueError(f"max_gap must not be negative, got {max_gap!r}")
    if max_slice_regression is not None:
        max_slice_regression = _policy_number("max_slice_regression", max_slice_regression)
    if floor is None and max_gap is None and max_slice_regression is None:
        raise ValueError("a fairness rule needs a floor, a max_gap or a max_slice_regression")
    slice_count = as_count(min_slices)
    if slice_count is None or slice_count < 1:
        raise ValueError(f"min_slices must be a positive integer, got {min_slices!r}")

    higher = direction is Direction.HIGHER
    values = {name: _data_number(value) for name, value in slices.items()}
    defined = {name: value for name, value in values.items() if value is not None}
    observed: dict[str, Any] = {
        "metric": metric,
        "direction": direction.value,
        "slices": dict(values),
        "floor": floor,
        "max_gap": max_gap,
    }
    problems: list[str] = []

    if len(values) < slice_count:
        problems.append(f"{len(values)} slice(s) evaluated; the rule needs at least {slice_count}")
    undefined = [name for name, value in values.items() if value is None]
    if undefined:
        observed["undefined_slices"] = undefined
        problems.append(
            f"{metric} missing or undefined for slice(s) " + ", ".join(map(repr, undefined))
        )

    def badness(item: tuple[str, float]) -> float:
        return -item[1] if higher else item[1]

    if floor is not None:
        below = sorted(
            ((name, v) for name, v in defined.items() if (v < floor if higher else v > floor)),
            key=badness,
            reverse=True,
        )
        observed["below_floor"] = [name for name, _ in below]
        if below:
            worst, value = below[0]
            side = "below" if higher else "above"
            problems.append(
                f"slice {worst!r} {metric} {_num(value)} is {side} the floor {_num(floor)}"
                + (f" ({len(below)} slices fail the floor)" if len(below) > 1 else "")
            )

    if len(defined) >= 2:
        ordered = sorted(defined.items(), key=badness)
        (best, best_value), (worst, worst_value) = ordered[0], ordered[-1]
        gap = abs(best_value - worst_value)
        observed.update({"best_slice": best, "worst_slice": worst, "gap": _finite_or_none(gap)})
        if max_gap is not None and not _at_most(gap, max_gap):
            problems.append(
                f"gap {_num(gap)} between slice {best!r} ({_num(best_value)}) and slice "
                f"{worst!r} ({_num(worst_value)}) exceeds {_num(max_gap)}"
            )
    elif len(defined) == 1:
        only = next(iter(defined))
        observed.update({"best_slice": only, "worst_slice": only, "gap": 0.0})

    observed["compared_with_production"] = (
        production_slices is not None and max_slice_regression is not None
    )
    if production_slices is not None and max_slice_regression is not None:
        observed["max_slice_regression"] = max_slice_regression
        baseline = {name: _data_number(value) for name, value in production_slices.items()}
        dropped = [name for name in baseline if name not in values]
        if dropped:
            observed["dropped_slices"] = dropped
            problems.append(
                "slice(s) evaluated for production but not for the candidate: "
                + ", ".join(map(repr, dropped))
            )
        observed["no_baseline"] = [name for name in defined if baseline.get(name) is None]
        regressions: list[tuple[str, float, float, float]] = []
        for name, value in defined.items():
            before = baseline.get(name)
            if before is None:
                continue
            loss = before - value if higher else value - before
            if not _at_most(loss, max_slice_regression):
                regressions.append((name, before, value, loss))
        regressions.sort(key=lambda item: item[3], reverse=True)
        observed["regressed_slices"] = [name for name, *_ in regressions]
        if regressions:
            name, before, value, loss = regressions[0]
            problems.append(
                f"slice {name!r} {metric} went from {_num(before)} (production) to "
                f"{_num(value)}, a regression of {_num(loss)} over the allowed "
                f"{_num(max_slice_regression)}"
                + (f" ({len(regressions)} slices regressed)" if len(regressions) > 1 else "")
            )

    observed["problems"] = problems
    if problems:
        return RuleResult(rule, "fairness", False, "; ".join(problems), observed, threshold=floor)
    summary = f"all {len(values)} slices pass on {metric}"
    if floor is not None:
        summary += f" (floor {_num(floor)}"
        summary += (
            f", gap {_num(observed['gap'])} <= {_num(max_gap)})" if max_gap is not None else ")"
        )
    elif max_gap is not None:
        summary += f" (gap {_num(observed['gap'])} <= {_num(max_gap)})"
    return RuleResult(rule, "fairness", True, summary, observed, threshold=floor)
