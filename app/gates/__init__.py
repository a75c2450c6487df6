"""Promotion gates: pure functions from plain values to explainable verdicts.

Nothing here touches the database, HTTP or pydantic. The promotion service
gathers a version's metrics, evidence, lineage and signature (and production's),
calls one rule function per policy rule, and stores the resulting
:class:`GateReport`. Keeping the logic pure makes every verdict reproducible
from the values in the report and testable against hand-computed and scipy
results.

Modules: :mod:`~app.gates.catalogue` (which way is better for each metric),
:mod:`~app.gates.derive` (metrics computed by the service),
:mod:`~app.gates.rules` (the rules), :mod:`~app.gates.report` (the report).
"""

from app.gates.catalogue import (
    LOWER_IS_BETTER_SUFFIXES,
    METRIC_CATALOGUE,
    Direction,
    direction_of,
)
from app.gates.derive import MetricValue, from_confusion_matrix, from_regression
from app.gates.evidence import Correctness, Counts, Evidence, Losses
from app.gates.report import GateReport
from app.gates.result import RULE_KINDS, RuleResult
from app.gates.rules import (
    SIGNIFICANCE_TESTS,
    SignificanceTest,
    approvals,
    artifact_intact,
    fairness,
    lineage_complete,
    no_regression,
    schema_compatible,
    significance,
    threshold,
)
from app.gates.signature import TYPE_WIDENINGS, Column, Signature

__all__ = [
    "LOWER_IS_BETTER_SUFFIXES",
    "METRIC_CATALOGUE",
    "RULE_KINDS",
    "SIGNIFICANCE_TESTS",
    "TYPE_WIDENINGS",
    "Column",
    "Correctness",
    "Counts",
    "Direction",
    "Evidence",
    "GateReport",
    "Losses",
    "MetricValue",
    "RuleResult",
    "Signature",
    "SignificanceTest",
    "approvals",
    "artifact_intact",
    "direction_of",
    "fairness",
    "from_confusion_matrix",
    "from_regression",
    "lineage_complete",
    "no_regression",
    "schema_compatible",
    "significance",
    "threshold",
]
