"""``no_regression``: the candidate must beat production by ``delta`` on the same dataset.

A rule without a metric or dataset compares the model's primary metric and dataset;
the report names the metric and dataset compared and where they came from.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from pydantic import Field

from app.gates.catalogue import Direction
from app.gates.facts import Facts, PolicyFacts
from app.gates.fields import Finite, Label, MetricName
from app.gates.result import RuleResult
from app.gates.rules._common import (
    _at_least,
    _at_most,
    _better_word,
    _data_number,
    _direction,
    _finite_or_none,
    _num,
    _num_pair,
    _policy_number,
    _unusable,
)
from app.gates.rules.base import PolicyProblem, RuleConfig, direction_problems, unknown_direction


class NoRegressionRule(RuleConfig):
    kind: Literal["no_regression"]
    metric: MetricName | None = Field(
        default=None, description="Defaults to the model's primary metric."
    )
    dataset: Label | None = Field(
        default=None, description="Defaults to the model's primary dataset."
    )
    delta: Finite = Field(
        default=0.0, description="Required improvement; negative tolerates a loss."
    )
    direction: Direction | None = None
    when_no_production: Literal["pass", "fail"] = "pass"

    def label(self) -> str | None:
        return self.metric

    def policy_problems(self, policy: PolicyFacts) -> list[PolicyProblem]:
        metric = self.metric or policy.primary_metric
        if metric is None:
            return [PolicyProblem("metric", "no metric given and the model has no primary_metric")]
        problems = []
        if (self.dataset or policy.primary_dataset) is None:
            problems.append(
                PolicyProblem("dataset", "no dataset given and the model has no primary_dataset")
            )
        return problems + direction_problems(policy, metric, self.direction)

    def evaluate(self, name: str, facts: Facts) -> RuleResult:
        metric = self.metric or facts.primary_metric
        dataset = self.dataset or facts.primary_dataset
        if metric is None or dataset is None:
            return RuleResult(
                name,
                "no_regression",
                False,
                "the model has no primary_metric/primary_dataset to compare: set them "
                "(PATCH /models/{model}) or give the rule a metric and dataset",
                {},
            )
        direction = facts.direction(metric, self.direction)
        if direction is None:
            return unknown_direction(name, "no_regression", metric)
        cand = facts.candidate.metric(metric, dataset)
        prod = facts.production.metric(metric, dataset) if facts.production else None
        result = no_regression(
            rule=name,
            metric=metric,
            dataset=dataset,
            candidate=cand.value if cand else None,
            production=prod.value if prod else None,
            delta=self.delta,
            direction=direction,
            has_production=facts.production is not None,
            when_no_production=self.when_no_production,
        )
        # Name where the compared metric and dataset came from: the model's primary ones
        # change only with the rights to change the policy, but a reader should see which.
        result = replace(
            result,
            observed={
                **result.observed,
                "metric_from": "rule" if self.metric else "model.primary_metric",
                "dataset_from": "rule" if self.dataset else "model.primary_dataset",
            },
        )
        undefined = {
            who: m.undefined_reason
            for who, m in (("candidate", cand), ("production", prod))
            if m is not None and m.value is None and m.undefined_reason
        }
        if undefined and not result.passed:
            # The rule saw no value; an undefined metric says why, which "missing" does not.
            reason = "; ".join(f"{who} {why}" for who, why in undefined.items())
            return replace(
                result,
                reason=f"{reason} (dataset {dataset!r})",
                observed={**result.observed, "undefined_reason": undefined},
            )
        return result


def no_regression(
    *,
    rule: str,
    metric: str,
    dataset: str,
    candidate: float | None,
    production: float | None,
    delta: float,
    direction: Direction,
    has_production: bool,
    when_no_production: Literal["pass", "fail"],
) -> RuleResult:
    """The candidate must beat production by ``delta`` on the same dataset.

    Higher is better: ``candidate >= production + delta``; lower is better:
    ``candidate <= production - delta``. A negative ``delta`` tolerates a loss
    of up to ``-delta``. Without a production model the policy's
    ``when_no_production`` decides; a production model without the metric on
    this dataset fails, because the comparison the policy asks for is impossible.
    """
    direction = _direction(direction)
    delta = _policy_number("delta", delta)
    if when_no_production not in ("pass", "fail"):
        raise ValueError(f"when_no_production must be 'pass' or 'fail', got {when_no_production!r}")
    if not has_production and production is not None:
        raise ValueError("a production value was given but has_production is False")
    cand = _data_number(candidate)
    prod = _data_number(production)
    observed: dict[str, Any] = {
        "metric": metric,
        "dataset": dataset,
        "direction": direction.value,
        "candidate": cand,
        "production": prod,
        "has_production": has_production,
    }

    def result(passed: bool, reason: str, bound: float | None = None) -> RuleResult:
        return RuleResult(
            rule, "no_regression", passed, reason, observed, threshold=bound, delta=delta
        )

    if not has_production:
        observed["when_no_production"] = when_no_production
        verdict = "passes" if when_no_production == "pass" else "fails"
        return result(
            when_no_production == "pass",
            f"no production model to compare {metric} with; the policy {verdict} "
            "when there is none",
        )
    problems = []
    if cand is None:
        problems.append(_unusable(metric, dataset, candidate, "candidate"))
    if prod is None:
        problems.append(_unusable(metric, dataset, production, "production"))
    if cand is None or prod is None:
        return result(False, "; ".join(problems))

    if direction is Direction.HIGHER:
        bound = prod + delta
        passed = _at_least(cand, bound)
        improvement = cand - prod
        op = ">=" if passed else "<"
    else:
        bound = prod - delta
        passed = _at_most(cand, bound)
        improvement = prod - cand
        op = "<=" if passed else ">"
    observed["improvement"] = _finite_or_none(improvement)
    shown, shown_bound = _num_pair(cand, bound)
    return result(
        passed,
        f"candidate {metric} {shown} {op} {shown_bound} required (production {_num(prod)}, "
        f"delta {_num(delta)}, {_better_word(direction)}) on dataset {dataset!r}",
        _finite_or_none(bound),
    )
