"""``threshold``: a metric must reach a fixed limit on a named dataset."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.gates.catalogue import Direction
from app.gates.facts import Facts, PolicyFacts
from app.gates.fields import Finite, Label, MetricName
from app.gates.result import RuleResult
from app.gates.rules._common import (
    _better_word,
    _data_number,
    _direction,
    _num_pair,
    _policy_number,
    _unusable,
)
from app.gates.rules.base import PolicyProblem, RuleConfig, direction_problems, unknown_direction


class ThresholdRule(RuleConfig):
    kind: Literal["threshold"]
    metric: MetricName
    dataset: Label
    value: Finite = Field(description="metric >= value (or <= when lower is better).")
    direction: Direction | None = Field(default=None, description="Overrides the catalogue.")

    def label(self) -> str:
        return self.metric

    def policy_problems(self, policy: PolicyFacts) -> list[PolicyProblem]:
        return direction_problems(policy, self.metric, self.direction)

    def evaluate(self, name: str, facts: Facts) -> RuleResult:
        direction = facts.direction(self.metric, self.direction)
        if direction is None:
            return unknown_direction(name, "threshold", self.metric)
        m = facts.candidate.metric(self.metric, self.dataset)
        return threshold(
            rule=name,
            metric=self.metric,
            dataset=self.dataset,
            value=m.value if m else None,
            undefined_reason=m.undefined_reason if m else None,
            limit=self.value,
            direction=direction,
        )


def threshold(
    *,
    rule: str,
    metric: str,
    dataset: str,
    value: float | None,
    undefined_reason: str | None,
    limit: float,
    direction: Direction,
) -> RuleResult:
    """A metric must reach a fixed limit: ``value >= limit`` (or ``<=`` when lower is better).

    ``value=None`` means the metric is missing, or undefined when
    ``undefined_reason`` says why; either fails, quoting the reason.
    """
    direction = _direction(direction)
    limit = _policy_number("limit", limit)
    number = _data_number(value)
    observed: dict[str, Any] = {
        "metric": metric,
        "dataset": dataset,
        "direction": direction.value,
        "value": number,
    }

    def result(passed: bool, reason: str) -> RuleResult:
        return RuleResult(rule, "threshold", passed, reason, observed, threshold=limit)

    if value is None and undefined_reason:
        observed["undefined_reason"] = undefined_reason
        return result(False, f"{undefined_reason} (dataset {dataset!r})")
    if number is None:
        return result(False, _unusable(metric, dataset, value))
    if direction is Direction.HIGHER:
        passed = number >= limit
        op = ">=" if passed else "<"
    else:
        passed = number <= limit
        op = "<=" if passed else ">"
    shown, shown_limit = _num_pair(number, limit)
    return result(
        passed,
        f"{metric} {shown} {op} {shown_limit} on dataset {dataset!r} ({_better_word(direction)})",
    )
