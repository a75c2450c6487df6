"""An in-memory :class:`app.gates.facts.Facts` for testing rule configurations without a
database: versions are dictionaries of metrics, slices, evidence, lineage and signature."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.gates.catalogue import Direction, direction_of
from app.gates.facts import ArtifactFacts, DataCheckFact, MetricFact, ReproductionFact
from app.gates.shadow import ShadowPairs
from app.gates.signature import Signature


@dataclass
class Version:
    version: int = 1
    metrics: dict[tuple[str, str, str], MetricFact] = field(default_factory=dict)
    evidence_by_kind: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    lineage: Mapping[str, Any] = field(default_factory=dict)
    signature: Signature | None = None
    reruns: list[ReproductionFact] = field(default_factory=list)
    data_checks: dict[str, DataCheckFact] = field(default_factory=dict)
    artifact: ArtifactFacts = field(
        default_factory=lambda: ArtifactFacts(uploaded=False, sha256=None, expected_sha256=None)
    )

    def with_metric(
        self, name: str, value: float | None, dataset: str = "holdout", slice_: str = ""
    ) -> Version:
        self.metrics[(name, dataset, slice_)] = MetricFact(value)
        return self

    def metric(self, name: str, dataset: str, slice_: str = "") -> MetricFact | None:
        return self.metrics.get((name, dataset, slice_))

    def slices(self, name: str, dataset: str) -> dict[str, float | None]:
        return {
            s: m.value for (n, d, s), m in self.metrics.items() if (n, d) == (name, dataset) and s
        }

    def evidence(self, dataset: str, kind: str) -> dict[str, Any] | None:
        return self.evidence_by_kind.get((dataset, kind))

    def reproductions(self) -> list[ReproductionFact]:
        return self.reruns

    def data_check(self, dataset: str) -> DataCheckFact | None:
        return self.data_checks.get(dataset)


@dataclass(frozen=True)
class Check:
    present: bool
    intact: bool
    sha256_observed: str | None
    detail: str | None
    method: str = "sha256 re-computed"


@dataclass
class Facts:
    candidate: Version
    production: Version | None = None
    primary_metric: str | None = None
    primary_dataset: str | None = None
    metric_directions: dict[str, Direction] = field(default_factory=dict)
    stored: Check = Check(present=True, intact=True, sha256_observed=None, detail="size matches")
    verified: list[bool] = field(default_factory=list)
    shadow: ShadowPairs | None = None
    shadow_hours: list[int] = field(default_factory=list)

    def direction(self, metric: str, override: Direction | None) -> Direction | None:
        return override or direction_of(metric, self.metric_directions)

    def verify_artifact(self, *, deep: bool) -> Check:
        self.verified.append(deep)
        return self.stored

    def shadow_pairs(self, hours: int) -> ShadowPairs | None:
        self.shadow_hours.append(hours)
        return self.shadow
