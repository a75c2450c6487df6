"""The shape every rule kind shares: a pydantic configuration that evaluates itself.

A rule kind is one module under :mod:`app.gates.rules`: a :class:`RuleConfig`
subclass (its ``kind`` literal and its fields are the policy JSON of that kind)
whose :meth:`~RuleConfig.evaluate` reads :class:`~app.gates.facts.Facts` and calls
the kind's pure function. :mod:`app.gates.registry` lists the kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import Field

from app.gates.catalogue import Direction
from app.gates.facts import Facts, PolicyFacts
from app.gates.fields import RuleName
from app.gates.result import RuleResult
from app.schemas import Strict


@dataclass(frozen=True)
class PolicyProblem:
    """Why a rule cannot be saved in a policy: the offending field and a message."""

    field: str
    message: str


class RuleConfig(Strict):
    """One rule of a gate policy."""

    if TYPE_CHECKING:
        # Each kind declares ``kind: Literal["..."]``; declared here for type checkers only,
        # so that the JSON schema keeps ``name`` before ``kind`` as it always had.
        kind: str

    name: RuleName | None = Field(
        default=None, description="Name shown in reports; defaults to kind:metric."
    )

    def label(self) -> str | None:
        """What the default name adds after ``kind:`` (a metric, a test), if anything."""
        return None

    def default_name(self) -> str:
        suffix = self.label()
        return f"{self.kind}:{suffix}" if suffix else self.kind

    def evaluate(self, name: str, facts: Facts) -> RuleResult:
        """The rule's verdict on the candidate, reported under ``name``."""
        raise NotImplementedError

    def policy_problems(self, policy: PolicyFacts) -> list[PolicyProblem]:  # noqa: ARG002
        """Checks a schema cannot express, run when a policy is saved (none by default)."""
        return []


def unknown_direction(name: str, kind: str, metric: str) -> RuleResult:
    """Guessing a direction could turn the gate upside down, so the rule fails."""
    return RuleResult(
        name,
        kind,
        False,
        f"direction of metric {metric!r} is unknown: set metric_directions in the policy "
        "(higher or lower)",
        {"metric": metric},
    )


def direction_problems(
    policy: PolicyFacts, metric: str, override: Direction | None
) -> list[PolicyProblem]:
    """A metric without a known direction cannot be gated on (a guess could invert the gate)."""
    if policy.direction(metric, override) is not None:
        return []
    return [
        PolicyProblem(
            "metric",
            f"direction of metric {metric!r} is unknown: set the rule's direction or "
            "metric_directions (higher or lower)",
        )
    ]
