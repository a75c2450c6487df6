"""What a rule may read, as the rules see it: plain values behind small protocols.

The promotion service implements :class:`Facts` over the database and the artifact
store; tests implement it with dictionaries. A rule reads only through these
methods, so everything a gate depends on is listed here, and nothing in
:mod:`app.gates` touches the database, the store or HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from app.gates.catalogue import Direction
from app.gates.shadow import ShadowPairs
from app.gates.signature import Signature


@dataclass(frozen=True)
class MetricFact:
    """One recorded metric value; ``None`` with a reason when the metric is undefined."""

    value: float | None
    undefined_reason: str | None = None


@dataclass(frozen=True)
class ArtifactFacts:
    """What the registry recorded about a version's artifact."""

    uploaded: bool
    sha256: str | None
    """The digest computed at upload (``None`` before an upload)."""
    expected_sha256: str | None
    """The digest the submitter declared when creating the version, if any."""


@dataclass(frozen=True)
class ReproductionFact:
    """A re-run of the version's training specification, submitted as evidence."""

    id: int
    artifact_sha256: str | None
    metrics: Mapping[tuple[str, str, str], float]
    """Values by (name, dataset, slice); slice ``""`` is the whole dataset."""


@dataclass(frozen=True)
class DataCheckFact:
    """The latest data-contract check of a dataset against the version."""

    id: int
    purpose: str
    passed: bool
    rows: float
    failed: Sequence[str]
    """The failed checks, as ``check:column``."""


class StoredCheck(Protocol):
    """The store's answer to "is this object still what was uploaded?"."""

    @property
    def present(self) -> bool: ...
    @property
    def intact(self) -> bool: ...
    @property
    def sha256_observed(self) -> str | None:
        """A digest computed or read from the store, never the recorded one echoed."""
        ...

    @property
    def method(self) -> str:
        """How content was judged (re-hashed, the store's checksum, the size alone)."""
        ...

    @property
    def detail(self) -> str | None: ...


class VersionFacts(Protocol):
    """One model version: the candidate, or production when a rule compares."""

    @property
    def version(self) -> int: ...
    @property
    def lineage(self) -> Mapping[str, Any]: ...
    @property
    def signature(self) -> Signature | None: ...
    @property
    def artifact(self) -> ArtifactFacts: ...

    def metric(self, name: str, dataset: str, slice_: str = "") -> MetricFact | None:
        """The metric on this dataset (and slice; ``""`` is the whole dataset), if recorded."""
        ...

    def slices(self, name: str, dataset: str) -> Mapping[str, float | None]:
        """Every slice's value of the metric on the dataset (the whole dataset excluded)."""
        ...

    def evidence(self, dataset: str, kind: str) -> Mapping[str, Any] | None:
        """The stored evaluation evidence of this kind on the dataset, as submitted."""
        ...

    def reproductions(self) -> Sequence[ReproductionFact]:
        """Re-runs submitted for this version, newest first (at most the 20 latest)."""
        ...

    def data_check(self, dataset: str) -> DataCheckFact | None:
        """The latest data-contract check of the dataset against this version, if any."""
        ...


class PolicyFacts(Protocol):
    """What a rule configuration is checked against when a policy is saved."""

    @property
    def primary_metric(self) -> str | None: ...
    @property
    def primary_dataset(self) -> str | None: ...

    def direction(self, metric: str, override: Direction | None) -> Direction | None:
        """The rule's override, else the policy's metric_directions, else the catalogue."""
        ...


class Facts(PolicyFacts, Protocol):
    """Everything one evaluation of one version may read."""

    @property
    def candidate(self) -> VersionFacts: ...
    @property
    def production(self) -> VersionFacts | None: ...

    def verify_artifact(self, *, deep: bool) -> StoredCheck:
        """Check the candidate's stored artifact against its recorded digest and size."""
        ...

    def shadow_pairs(self, hours: int) -> ShadowPairs | None:
        """The candidate's shadow predictions paired by request key with the primary's,
        over the last ``hours`` (``None``: nothing paired)."""
        ...
