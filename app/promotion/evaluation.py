"""Running a stage's gates for one version: describe the version and production to the
rules (:class:`~app.gates.facts.Facts`), run each rule through :mod:`app.gates.registry`,
and assemble a report that can be stored, digested and shown."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from app.audit.hashing import canonical_json
from app.datachecks import service as datachecks
from app.db.base import utcnow
from app.gates import registry as gate_registry
from app.gates.catalogue import Direction
from app.gates.facts import ArtifactFacts, DataCheckFact, MetricFact, ReproductionFact
from app.gates.result import RuleResult
from app.gates.shadow import ShadowPairs
from app.gates.signature import Column, Signature
from app.observations import reports as observation_reports
from app.promotion import repository
from app.promotion.policy import PolicyInForce, metric_direction
from app.promotion.repository import MetricValue
from app.promotion.schemas import GateReportRead, RuleReport, StagePolicy
from app.registry.models import Metric, ModelVersion, RegisteredModel, Stage
from app.reproductions import service as reproductions
from app.storage.base import ArtifactStore
from app.storage.integrity import ArtifactCheck, verify_artifact


@dataclass(frozen=True)
class Evaluation:
    report: GateReportRead
    document: dict[str, Any]
    """``report.model_dump(mode="json")``, as stored with a promotion request."""

    @property
    def passed(self) -> bool:
        return self.report.passed


def stage_policy(policy: PolicyInForce, target: Stage) -> StagePolicy:
    return policy.document.production if target is Stage.PRODUCTION else policy.document.staging


def production_version(session: Session, model_id: int) -> ModelVersion | None:
    """The model's production version (its row alone), what a gate compares with."""
    return repository.production_version(session, model_id)


def evaluate(
    session: Session,
    *,
    store: ArtifactStore,
    model: RegisteredModel,
    version: ModelVersion,
    target: Stage,
    policy: PolicyInForce,
    production: ModelVersion | None,
    preconditions: Sequence[RuleResult] = (),
    stage: StagePolicy | None = None,
) -> Evaluation:
    """Every rule of the target stage's policy, against production where a rule compares,
    after the ``preconditions`` the caller checked itself (a dry run's freeze check)."""
    ctx = _Context(session, store, model, version, production, policy)
    stage = stage if stage is not None else stage_policy(policy, target)
    results = [*preconditions, *(gate_registry.evaluate(rule, ctx) for rule in stage.rules)]
    rows = [RuleReport(**r.to_dict()) for r in results]
    body: dict[str, Any] = {
        "model": model.name,
        "version": version.version,
        "target": target,
        "passed": all(r.passed for r in results),
        "policy_revision": policy.revision,
        "evaluated_against": production.version if production else None,
        "evaluated_at": utcnow(),
        "rules": rows,
        "failed": [r.rule for r in results if not r.passed],
        "approvals_required": stage.approvals_required,
        "digest": "",
    }
    draft = GateReportRead(**body)
    payload = draft.model_dump(mode="json", exclude={"digest"})
    digest = hashlib.sha256(canonical_json(payload).encode()).hexdigest()
    # digest is the report's last field: this is the full report's JSON dump.
    return Evaluation(
        report=draft.model_copy(update={"digest": digest}), document={**payload, "digest": digest}
    )


class _Context:
    """The :class:`~app.gates.facts.Facts` of one evaluation, read from the database and the
    artifact store as rules ask for them."""

    def __init__(
        self,
        session: Session,
        store: ArtifactStore,
        model: RegisteredModel,
        version: ModelVersion,
        production: ModelVersion | None,
        policy: PolicyInForce,
    ) -> None:
        self.session = session
        self.store = store
        self.model = model
        self.version = version
        self.policy = policy
        self._metrics: dict[int, list[MetricValue]] | None = None
        self.candidate: _Version = _Version(self, version)
        self.production: _Version | None = _Version(self, production) if production else None

    @property
    def primary_metric(self) -> str | None:
        return self.model.primary_metric

    @property
    def primary_dataset(self) -> str | None:
        return self.model.primary_dataset

    def direction(self, metric: str, override: Direction | None) -> Direction | None:
        # Policies are validated on write, but a no-regression rule without a metric (the
        # default policy's) compares the model's primary metric, which may change later.
        return metric_direction(metric, override, self.policy.document)

    def verify_artifact(self, *, deep: bool) -> ArtifactCheck:
        v = self.version
        # The artifact_intact rule asks only after checking that an artifact was uploaded.
        assert v.artifact_key is not None
        assert v.artifact_sha256 is not None
        return verify_artifact(
            self.store,
            key=v.artifact_key,
            sha256=v.artifact_sha256,
            size=v.artifact_size or 0,
            etag=v.artifact_etag,
            rehash=deep,
        )

    def shadow_pairs(self, hours: int) -> ShadowPairs | None:
        """The candidate's shadow predictions paired with production's answers to the
        same requests (any primary's when there is no production) over the last hours."""
        until = utcnow()
        found = observation_reports.pairs(
            self.session,
            self.model.id,
            self.version.version,
            since=until - timedelta(hours=hours),
            until=until,
            primary=self.production.version if self.production is not None else None,
        )
        return found if found.pairs else None

    def metrics(self, version: ModelVersion) -> Sequence[Metric | MetricValue]:
        """The version's metrics: those loaded with the version, else read (for the
        candidate and production at once) the first time a rule needs them."""
        loaded: list[Metric] | None = inspect(version).dict.get("metrics")
        if loaded is not None:
            return loaded
        if self._metrics is None:
            ids = [v.row.id for v in (self.candidate, self.production) if v is not None]
            self._metrics = repository.metrics_of(self.session, ids)
        return self._metrics.get(version.id, [])


class _Version:
    """One version's :class:`~app.gates.facts.VersionFacts`."""

    def __init__(self, ctx: _Context, row: ModelVersion) -> None:
        self._ctx = ctx
        self.row = row

    @property
    def version(self) -> int:
        return self.row.version

    @property
    def lineage(self) -> dict[str, Any]:
        return self.row.lineage

    @property
    def signature(self) -> Signature | None:
        return _signature(self.row.signature)

    @property
    def artifact(self) -> ArtifactFacts:
        v = self.row
        return ArtifactFacts(
            uploaded=v.artifact_key is not None,
            sha256=v.artifact_sha256,
            expected_sha256=v.artifact_expected_sha256,
        )

    def metric(self, name: str, dataset: str, slice_: str = "") -> MetricFact | None:
        for m in self._ctx.metrics(self.row):
            if m.name == name and m.dataset == dataset and m.slice == slice_:
                return MetricFact(m.value, m.undefined_reason)
        return None

    def slices(self, name: str, dataset: str) -> dict[str, float | None]:
        return {
            m.slice: m.value
            for m in self._ctx.metrics(self.row)
            if m.name == name and m.dataset == dataset and m.slice
        }

    def evidence(self, dataset: str, kind: str) -> dict[str, Any] | None:
        return repository.evidence_payload(self._ctx.session, self.row.id, dataset, kind)

    def reproductions(self) -> list[ReproductionFact]:
        return reproductions.facts_of(self._ctx.session, self.row.id)

    def data_check(self, dataset: str) -> DataCheckFact | None:
        return datachecks.latest_fact(self._ctx.session, self.row.id, dataset)


def _signature(document: dict[str, Any] | None) -> Signature | None:
    if document is None:
        return None

    def columns(items: list[dict[str, Any]]) -> tuple[Column, ...]:
        return tuple(
            Column(
                name=c["name"],
                type=c["type"],
                nullable=c.get("nullable", False),
                required=c.get("required", True),
                categories=tuple(c["categories"]) if c.get("categories") is not None else None,
            )
            for c in items
        )

    return Signature(
        inputs=columns(document.get("inputs", [])), outputs=columns(document.get("outputs", []))
    )
