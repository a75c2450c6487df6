"""``reproducible``: a re-run of the version's training specification gave the same model.

A reproduction (``POST /models/{model}/versions/{version}/reproductions``) states the
artifact digest and metrics a re-run produced. The rule passes when one reproduction's
artifact sha256 is identical to the version's, or, for rules that name metrics, each named
metric of one reproduction lies within the stated absolute tolerance of the version's
recorded value (``|reproduced - recorded| <= tolerance``, with the 1e-9 relative slack
every computed bound gets). No statistics: a comparison of stated numbers. The report
lists, per reproduction, what was compared and the differences it computed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from app.gates.facts import Facts, ReproductionFact
from app.gates.fields import Finite, Label, MetricName
from app.gates.result import RuleResult
from app.gates.rules._common import _at_most, _data_number, _num, _policy_number
from app.gates.rules.base import RuleConfig
from app.schemas import Strict


class MetricTolerance(Strict):
    """A metric a reproduction must match, and by how much it may differ."""

    name: MetricName
    dataset: Label
    slice: Label | None = Field(default=None, description="A slice; default: the whole dataset.")
    tolerance: Finite = Field(ge=0.0, description="Largest absolute difference accepted.")


class ReproducibleRule(RuleConfig):
    kind: Literal["reproducible"]
    metrics: list[MetricTolerance] = Field(
        default_factory=list,
        max_length=100,
        description="Metrics that pass the rule when all lie within tolerance; without "
        "them only an identical artifact digest does.",
    )

    def evaluate(self, name: str, facts: Facts) -> RuleResult:
        candidate = facts.candidate
        recorded: dict[tuple[str, str, str], float | None] = {}
        for wanted in self.metrics:
            found = candidate.metric(wanted.name, wanted.dataset, wanted.slice or "")
            recorded[(wanted.name, wanted.dataset, wanted.slice or "")] = (
                found.value if found else None
            )
        return reproducible(
            rule=name,
            recorded_sha256=candidate.artifact.sha256,
            recorded_metrics=recorded,
            tolerances=[
                Tolerance(m.name, m.dataset, m.slice or "", m.tolerance) for m in self.metrics
            ],
            reproductions=candidate.reproductions(),
        )


@dataclass(frozen=True)
class Tolerance:
    name: str
    dataset: str
    slice: str
    tolerance: float


def _metric_label(t: Tolerance) -> str:
    where = f"{t.dataset!r}" + (f" slice {t.slice!r}" if t.slice else "")
    return f"{t.name} on {where}"


def _compare(
    reproduction: ReproductionFact,
    recorded_sha256: str | None,
    recorded_metrics: Mapping[tuple[str, str, str], float | None],
    tolerances: Sequence[Tolerance],
) -> tuple[bool, dict[str, Any], list[str]]:
    """Whether this reproduction matches, what was compared, and why not."""
    recorded = (recorded_sha256 or "").lower() or None
    reproduced = (reproduction.artifact_sha256 or "").lower() or None
    identical = recorded is not None and reproduced == recorded
    compared: dict[str, Any] = {
        "id": reproduction.id,
        "artifact": {"recorded": recorded, "reproduced": reproduced, "identical": identical},
        "metrics": [],
    }
    problems: list[str] = []
    if not identical:
        if recorded is None:
            problems.append("the version has no recorded artifact digest")
        elif reproduced is None:
            problems.append("the reproduction states no artifact digest")
        else:
            problems.append(f"artifact sha256 differs ({reproduced[:12]}... vs {recorded[:12]}...)")
    all_within = bool(tolerances)
    for t in tolerances:
        key = (t.name, t.dataset, t.slice)
        before = _data_number(recorded_metrics.get(key))
        after = _data_number(reproduction.metrics.get(key))
        row: dict[str, Any] = {
            "name": t.name,
            "dataset": t.dataset,
            "slice": t.slice or None,
            "recorded": before,
            "reproduced": after,
            "tolerance": t.tolerance,
            "difference": None,
            "within": False,
        }
        if before is None or after is None:
            who = "the version" if before is None else "the reproduction"
            problems.append(f"{_metric_label(t)} missing from {who}")
        else:
            difference = abs(after - before)
            row["difference"] = difference
            row["within"] = _at_most(difference, t.tolerance)
            if not row["within"]:
                problems.append(
                    f"{_metric_label(t)} differs by {_num(difference)} > {_num(t.tolerance)} "
                    f"({_num(after)} reproduced, {_num(before)} recorded)"
                )
        all_within = all_within and bool(row["within"])
        compared["metrics"].append(row)
    compared["metrics_within"] = all_within
    return identical or all_within, compared, problems


def reproducible(
    *,
    rule: str,
    recorded_sha256: str | None,
    recorded_metrics: Mapping[tuple[str, str, str], float | None],
    tolerances: Sequence[Tolerance],
    reproductions: Sequence[ReproductionFact],
) -> RuleResult:
    """Passes when one reproduction has the recorded artifact digest, or (with
    ``tolerances``) every named metric within its tolerance of the recorded value.

    Reproductions are tried in the order given (newest first); the first that matches
    decides. A bad tolerance raises ``ValueError``; missing values fail the comparison.
    """
    for t in tolerances:
        if _policy_number("tolerance", t.tolerance) < 0:
            raise ValueError(f"tolerance must not be negative, got {t.tolerance!r}")
    observed: dict[str, Any] = {
        "recorded_sha256": recorded_sha256,
        "reproductions": len(reproductions),
        "compared": [],
        "matched": None,
    }
    if not reproductions:
        return RuleResult(
            rule, "reproducible", False, "no reproduction of this version was submitted", observed
        )
    failures: list[str] = []
    for reproduction in reproductions:
        matched, compared, problems = _compare(
            reproduction, recorded_sha256, recorded_metrics, tolerances
        )
        observed["compared"].append(compared)
        if matched:
            observed["matched"] = reproduction.id
            how = (
                "artifact sha256 identical"
                if compared["artifact"]["identical"]
                else f"all {len(tolerances)} named metric(s) within tolerance"
            )
            return RuleResult(
                rule, "reproducible", True, f"reproduction {reproduction.id}: {how}", observed
            )
        failures.append(f"reproduction {reproduction.id}: " + "; ".join(problems))
    return RuleResult(
        rule,
        "reproducible",
        False,
        f"none of {len(reproductions)} reproduction(s) matched: " + " | ".join(failures),
        observed,
    )
