"""The rule kinds a gate policy may use, in one table.

Adding a kind: a new module under :mod:`app.gates.rules` with its
:class:`~app.gates.rules.base.RuleConfig` subclass, and its line in :data:`RULES`.
The policy schema (:data:`Rule`), the evaluation dispatch and the policy checks all
follow from this table.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Union, get_args

from pydantic import Field

from app.gates.facts import Facts, PolicyFacts
from app.gates.result import RuleResult
from app.gates.rules.artifact_intact import ArtifactRule
from app.gates.rules.base import PolicyProblem, RuleConfig
from app.gates.rules.data_contract import DataContractRule
from app.gates.rules.fairness import FairnessRule
from app.gates.rules.lineage_complete import LineageRule
from app.gates.rules.no_regression import NoRegressionRule
from app.gates.rules.reproducible import ReproducibleRule
from app.gates.rules.schema_compatible import SchemaRule
from app.gates.rules.shadow_agreement import ShadowAgreementRule
from app.gates.rules.significance import SignificanceRule
from app.gates.rules.threshold import ThresholdRule

RULES: tuple[type[RuleConfig], ...] = (
    ThresholdRule,
    NoRegressionRule,
    SignificanceRule,
    FairnessRule,
    LineageRule,
    SchemaRule,
    ArtifactRule,
    ReproducibleRule,
    DataContractRule,
    ShadowAgreementRule,
)
"""Every rule kind, in the order the policy schema lists them."""


def kind_of(config: type[RuleConfig]) -> str:
    """The ``kind`` literal a configuration class declares."""
    (kind,) = get_args(config.model_fields["kind"].annotation)
    return str(kind)


BY_KIND: Mapping[str, type[RuleConfig]] = MappingProxyType({kind_of(c): c for c in RULES})
"""Each rule kind's configuration class, by its ``kind``."""

assert len(BY_KIND) == len(RULES), "two rule kinds share a name"

if TYPE_CHECKING:
    Rule = RuleConfig
else:
    Rule = Annotated[Union[RULES], Field(discriminator="kind")]  # noqa: UP007
"""One rule of a policy: the configurations of :data:`RULES`, told apart by ``kind``."""


def name_of(rule: RuleConfig) -> str:
    """The name a rule is reported under: its own, or ``kind:metric`` (or ``kind:test``)."""
    return rule.name or rule.default_name()


def evaluate(rule: RuleConfig, facts: Facts) -> RuleResult:
    """The rule's verdict on the candidate described by ``facts``."""
    return BY_KIND[rule.kind].evaluate(rule, name_of(rule), facts)


def policy_problems(rule: RuleConfig, policy: PolicyFacts) -> list[PolicyProblem]:
    """What keeps the rule from being saved in a policy for this model (empty when fine)."""
    return BY_KIND[rule.kind].policy_problems(rule, policy)


__all__ = ["BY_KIND", "RULES", "PolicyProblem", "Rule", "RuleConfig", "evaluate", "kind_of"]
