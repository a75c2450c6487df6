"""``lineage_complete``: the named lineage fields are present.

Present means recorded with a value: an absent key, ``None`` and a blank string are
missing; ``0``, ``False`` and an empty mapping or list are values (``"hyperparameters": {}``
says the model has none, which is lineage).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import Field

from app.gates.facts import Facts
from app.gates.result import RuleResult
from app.gates.rules.base import RuleConfig

DEFAULT_LINEAGE_FIELDS = (
    "code_commit",
    "data_version",
    "feature_pipeline_version",
    "environment",
    "hyperparameters",
    "seed",
)
LINEAGE_FIELD_NAMES = (
    "code_commit",
    "code_repository",
    "code_dirty",
    "data_version",
    "feature_pipeline_version",
    "environment",
    "hyperparameters",
    "seed",
    "training_run_id",
    "ci_run_id",
    "ci_run_url",
)


class LineageRule(RuleConfig):
    kind: Literal["lineage_complete"]
    fields: list[Literal[LINEAGE_FIELD_NAMES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(DEFAULT_LINEAGE_FIELDS), min_length=1
    )

    def evaluate(self, name: str, facts: Facts) -> RuleResult:
        return lineage_complete(rule=name, lineage=facts.candidate.lineage, required=self.fields)


_MISSING = object()


def _lookup(lineage: Mapping[str, Any], name: str) -> Any:
    if name in lineage:
        return lineage[name]
    node: Any = lineage
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _is_missing(value: Any) -> bool:
    if value is None or value is _MISSING:
        return True
    return isinstance(value, str) and not value.strip()


def lineage_complete(
    *, rule: str, lineage: Mapping[str, Any], required: Sequence[str]
) -> RuleResult:
    """The named lineage fields must be present.

    Missing means absent, ``None`` or a blank string; ``0``, ``False`` and empty
    containers are values. A dotted name (``data.train_uri``) reaches into nested
    mappings when no key has that exact name.
    """
    if isinstance(required, str):
        raise ValueError("required must be a list of field names, not a string")
    wanted = list(dict.fromkeys(required))
    missing = [name for name in wanted if _is_missing(_lookup(lineage, name))]
    observed = {"required": wanted, "missing": missing}
    if missing:
        return RuleResult(
            rule,
            "lineage_complete",
            False,
            "lineage is missing " + ", ".join(map(repr, missing)),
            observed,
        )
    reason = (
        f"all {len(wanted)} required lineage field(s) present"
        if wanted
        else "no lineage fields are required"
    )
    return RuleResult(rule, "lineage_complete", True, reason, observed)
