"""Promotion gates: rule kinds, each a configuration and a pure evaluation.

Nothing here touches the database or HTTP. The promotion service describes a
version (and production) through :class:`~app.gates.facts.Facts`, and
:func:`app.gates.registry.evaluate` runs each policy rule against them; the pure
function of each kind decides from plain values, so every verdict is reproducible
from the values in the report and testable against hand-computed and scipy results.

Modules: :mod:`~app.gates.registry` (the table of rule kinds),
:mod:`~app.gates.rules` (one module per kind), :mod:`~app.gates.facts` (what rules
may read), :mod:`~app.gates.catalogue` (which way is better for each metric),
:mod:`~app.gates.derive` (metrics computed by the service),
:mod:`~app.gates.result` (a rule's result).
"""

from app.gates.catalogue import (
    LOWER_IS_BETTER_SUFFIXES,
    METRIC_CATALOGUE,
    Direction,
    direction_of,
)
from app.gates.derive import MetricValue, from_confusion_matrix, from_regression
from app.gates.evidence import Correctness, Counts, Evidence, Losses
from app.gates.result import RuleResult
from app.gates.rules.artifact_intact import artifact_intact
from app.gates.rules.fairness import fairness
from app.gates.rules.lineage_complete import lineage_complete
from app.gates.rules.no_regression import no_regression
from app.gates.rules.schema_compatible import schema_compatible
from app.gates.rules.significance import SIGNIFICANCE_TESTS, SignificanceTest, significance
from app.gates.rules.threshold import threshold
from app.gates.signature import TYPE_WIDENINGS, Column, Signature

__all__ = [
    "LOWER_IS_BETTER_SUFFIXES",
    "METRIC_CATALOGUE",
    "SIGNIFICANCE_TESTS",
    "TYPE_WIDENINGS",
    "Column",
    "Correctness",
    "Counts",
    "Direction",
    "Evidence",
    "Losses",
    "MetricValue",
    "RuleResult",
    "Signature",
    "SignificanceTest",
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
