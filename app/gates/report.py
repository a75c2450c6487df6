"""A gate report: every rule's result for one evaluation of one version.

Reports are stored with promotion requests and referenced from the audit log,
so :meth:`GateReport.digest` gives a hash that depends only on the content:
canonical JSON (sorted keys, no whitespace, UTF-8 kept as is) hashed with
sha256. Two evaluations that saw the same numbers have the same digest, however
their dictionaries happened to be ordered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from app.gates.result import RuleResult


@dataclass(frozen=True)
class GateReport:
    """The results of a policy's rules, in policy order."""

    results: tuple[RuleResult, ...]

    def __post_init__(self) -> None:
        results = tuple(self.results)
        for result in results:
            if not isinstance(result, RuleResult):
                raise TypeError(f"GateReport holds RuleResult objects, got {type(result).__name__}")
        object.__setattr__(self, "results", results)

    @classmethod
    def of(cls, results: Iterable[RuleResult]) -> GateReport:
        """Build a report from any iterable of results."""
        return cls(tuple(results))

    @property
    def passed(self) -> bool:
        """Whether every rule passed. A policy with no rules for a stage lets everything through."""
        return all(result.passed for result in self.results)

    @property
    def failed(self) -> tuple[RuleResult, ...]:
        """The results that did not pass, in policy order."""
        return tuple(result for result in self.results if not result.passed)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form of the report."""
        return {
            "passed": self.passed,
            "failed": [result.rule for result in self.failed],
            "results": [result.to_dict() for result in self.results],
        }

    def canonical_json(self) -> str:
        """The exact text :meth:`digest` hashes."""
        return json.dumps(
            self.to_dict(),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )

    def digest(self) -> str:
        """sha256 (hex) of :meth:`canonical_json`."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()
