"""``schema_compatible``: the candidate accepts what production accepts and keeps its outputs."""

from __future__ import annotations

from typing import Literal

from app.gates.facts import Facts
from app.gates.result import RuleResult
from app.gates.rules.base import RuleConfig
from app.gates.signature import Column, Signature, normalise_type, type_accepts


class SchemaRule(RuleConfig):
    kind: Literal["schema_compatible"]

    def evaluate(self, name: str, facts: Facts) -> RuleResult:
        return schema_compatible(
            rule=name,
            candidate=facts.candidate.signature,
            production=facts.production.signature if facts.production else None,
        )


def _input_problems(candidate: Signature, production: Signature) -> list[str]:
    problems: list[str] = []
    new_inputs = {column.name: column for column in candidate.inputs}
    old_names = {column.name for column in production.inputs}
    for old in production.inputs:
        new = new_inputs.get(old.name)
        if new is None:
            if old.required:
                problems.append(f"input column {old.name!r} was removed")
            continue
        problems.extend(_column_problems(new, old))
    for new in candidate.inputs:
        if new.name not in old_names and new.required:
            problems.append(
                f"new input column {new.name!r} is required; production callers do not send it"
            )
    return problems


def _column_problems(new: Column, old: Column) -> list[str]:
    problems: list[str] = []
    name = old.name
    if not type_accepts(new.type, old.type):
        problems.append(
            f"input column {name!r} changed type from {normalise_type(old.type)!r} to "
            f"{normalise_type(new.type)!r}"
        )
    if new.required and not old.required:
        problems.append(f"input column {name!r} is now required (it was optional)")
    if old.nullable and not new.nullable:
        problems.append(f"input column {name!r} no longer accepts null")
    if new.categories is not None:
        if old.categories is None:
            problems.append(
                f"input column {name!r} is now restricted to categories {list(new.categories)} "
                "(production accepts any value)"
            )
        else:
            removed = [value for value in old.categories if value not in set(new.categories)]
            if removed:
                problems.append(f"input column {name!r} no longer accepts categories {removed}")
    return problems


def _output_problems(candidate: Signature, production: Signature) -> list[str]:
    problems: list[str] = []
    new_outputs = {column.name: column for column in candidate.outputs}
    for old in production.outputs:
        new = new_outputs.get(old.name)
        if new is None:
            problems.append(f"output column {old.name!r} was removed")
            continue
        if normalise_type(new.type) != normalise_type(old.type):
            problems.append(
                f"output column {old.name!r} changed type from {normalise_type(old.type)!r} "
                f"to {normalise_type(new.type)!r}"
            )
        if new.nullable and not old.nullable:
            problems.append(f"output column {old.name!r} may now be null")
    return problems


def schema_compatible(
    *, rule: str, candidate: Signature | None, production: Signature | None
) -> RuleResult:
    """The candidate must accept every input production accepts and keep production's outputs.

    Inputs: no required production column removed; types equal or widened (see
    :data:`app.gates.signature.TYPE_WIDENINGS`); no column made required or
    non-nullable; no category removed (or a closed set imposed on an open
    column); no new required column. Outputs: none removed, none retyped, none
    made nullable. Without a production signature there is nothing to break.
    """
    if production is None:
        return RuleResult(
            rule,
            "schema_compatible",
            True,
            "no production signature to compare with",
            {"problems": []},
        )
    if candidate is None:
        problem = "the candidate has no signature but production has one"
        return RuleResult(rule, "schema_compatible", False, problem, {"problems": [problem]})
    problems = _input_problems(candidate, production) + _output_problems(candidate, production)
    if problems:
        return RuleResult(
            rule, "schema_compatible", False, "; ".join(problems), {"problems": problems}
        )
    return RuleResult(
        rule,
        "schema_compatible",
        True,
        "the candidate accepts every input production accepts and keeps its outputs",
        {"problems": []},
    )
