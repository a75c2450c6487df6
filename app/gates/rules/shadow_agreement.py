"""``shadow_agreement``: a version that scored production's requests in shadow agreed
with production's answers (classification) or stayed close to them (regression).

The pairs are the candidate's shadow predictions and the primary's predictions of the
same request keys, posted by serving (``POST /models/{model}/observations``) and paired
by the observation store over the last ``window_hours`` (at most the observation
retention). The decision uses confidence bounds (:func:`app.gates.shadow.shadow_agreement`).
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from app.gates.facts import Facts
from app.gates.fields import Finite
from app.gates.result import RuleResult
from app.gates.rules.base import RuleConfig
from app.gates.shadow import shadow_agreement


class ShadowAgreementRule(RuleConfig):
    kind: Literal["shadow_agreement"]
    min_agreement: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="The lower confidence bound of the share of paired requests on which "
        "the candidate's class equals production's must reach this.",
    )
    max_mae: Finite | None = Field(
        default=None,
        ge=0.0,
        description="The upper confidence bound of the mean absolute difference of paired "
        "values (or scores) must be at most this.",
    )
    min_pairs: int = Field(
        default=500, ge=1, le=100_000_000, description="Fewest paired requests judged."
    )
    alpha: float = Field(
        default=0.05,
        gt=0.0,
        lt=0.5,
        description="Level of the confidence bounds (split between the two when both set).",
    )
    window_hours: int = Field(
        default=24, ge=1, le=24 * 366, description="How far back pairs are read."
    )

    @model_validator(mode="after")
    def _something_to_check(self) -> Self:
        if self.min_agreement is None and self.max_mae is None:
            raise ValueError("a shadow_agreement rule needs min_agreement, max_mae or both")
        return self

    def evaluate(self, name: str, facts: Facts) -> RuleResult:
        return shadow_agreement(
            rule=name,
            pairs=facts.shadow_pairs(self.window_hours),
            min_agreement=self.min_agreement,
            min_pairs=self.min_pairs,
            max_mae=self.max_mae,
            alpha=self.alpha,
            shadow_version=facts.candidate.version,
        )
