"""``data_contract``: the latest data check of a named dataset passed.

A data check (``POST /models/{model}/versions/{version}/data-checks``) tests a dataset
against the version's signature and reference profile (required columns, types, null
rates, categorical domains, row count) and is stored; this rule reads the latest one of
its dataset. No statistics: the verdict is the stored report's.
"""

from __future__ import annotations

from typing import Literal

from app.gates.facts import Facts
from app.gates.fields import Label
from app.gates.result import RuleResult
from app.gates.rules.base import RuleConfig


class DataContractRule(RuleConfig):
    kind: Literal["data_contract"]
    dataset: Label

    def label(self) -> str:
        return self.dataset

    def evaluate(self, name: str, facts: Facts) -> RuleResult:
        found = facts.candidate.data_check(self.dataset)
        if found is None:
            return RuleResult(
                name,
                "data_contract",
                False,
                f"no data check of dataset {self.dataset!r} was submitted for this version",
                {"dataset": self.dataset, "data_check": None},
            )
        observed = {
            "dataset": self.dataset,
            "data_check": found.id,
            "purpose": found.purpose,
            "rows": found.rows,
            "failed": list(found.failed),
        }
        if found.passed:
            reason = f"data check {found.id} of {self.dataset!r} passed every contract check"
        else:
            reason = f"data check {found.id} of {self.dataset!r} failed: " + ", ".join(found.failed)
        return RuleResult(name, "data_contract", found.passed, reason, observed)
