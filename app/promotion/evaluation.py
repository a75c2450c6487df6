"""Running a stage's gates for one version: gather the evidence, call the pure rules in
:mod:`app.gates`, and assemble a report that can be stored, digested and shown."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app import gates
from app.audit.hashing import canonical_json
from app.db.base import utcnow
from app.gates.catalogue import Direction
from app.gates.evidence import Correctness, Counts, Evidence, Losses
from app.gates.result import RuleResult
from app.promotion import repository
from app.promotion.policy import PolicyInForce, metric_direction
from app.promotion.schemas import (
    ArtifactRule,
    FairnessRule,
    GateReportRead,
    LineageRule,
    NoRegressionRule,
    RuleReport,
    SchemaRule,
    SignificanceRule,
    StagePolicy,
    ThresholdRule,
)
from app.registry.models import Metric, ModelVersion, RegisteredModel, Stage
from app.storage.base import ArtifactStore
from app.storage.integrity import verify_artifact

_EVIDENCE_KIND = {
    "mcnemar": "correctness",
    "two_proportion": "counts",
    "paired_t": "losses",
    "wilcoxon": "losses",
    "bootstrap": "losses",
}


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
    results = [*preconditions, *(ctx.run(rule, index) for index, rule in enumerate(stage.rules))]
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
        self.production = production
        self.policy = policy
        self._metrics_loaded = False

    def run(self, rule: Any, index: int) -> RuleResult:
        name = rule.name or self._default_name(rule, index)
        if isinstance(rule, ThresholdRule):
            return self._threshold(rule, name)
        if isinstance(rule, NoRegressionRule):
            return self._no_regression(rule, name)
        if isinstance(rule, SignificanceRule):
            return self._significance(rule, name)
        if isinstance(rule, FairnessRule):
            return self._fairness(rule, name)
        if isinstance(rule, LineageRule):
            return gates.lineage_complete(
                rule=name, lineage=self.version.lineage, required=list(rule.fields)
            )
        if isinstance(rule, SchemaRule):
            return gates.schema_compatible(
                rule=name,
                candidate=_signature(self.version.signature),
                production=_signature(self.production.signature) if self.production else None,
            )
        if isinstance(rule, ArtifactRule):
            return self._artifact(rule, name)
        raise AssertionError(f"unhandled rule {rule!r}")  # pragma: no cover

    @staticmethod
    def _default_name(rule: Any, index: int) -> str:
        metric = getattr(rule, "metric", None)
        test = getattr(rule, "test", None)
        suffix = metric or test
        return f"{rule.kind}:{suffix}" if suffix else str(rule.kind)

    def _direction(self, metric: str, override: Direction | None) -> Direction | None:
        # Policies are validated on write, but a no-regression rule without a metric (the
        # default policy's) compares the model's primary metric, which may change later.
        return metric_direction(metric, override, self.policy.document)

    @staticmethod
    def _unknown_direction(name: str, kind: str, metric: str) -> RuleResult:
        """Guessing a direction could turn the gate upside down, so the rule fails."""
        return RuleResult(
            name,
            kind,
            False,
            f"direction of metric {metric!r} is unknown: set metric_directions in the policy "
            "(higher or lower)",
            {"metric": metric},
        )

    def _metrics(self, version: ModelVersion) -> list[Metric]:
        """The version's metrics, read (for the candidate and production at once) the
        first time a rule needs them, unless they were loaded with the version."""
        if "metrics" not in inspect(version).dict and not self._metrics_loaded:
            self._metrics_loaded = True
            versions = [
                v
                for v in (self.version, self.production)
                if v is not None and "metrics" not in inspect(v).dict
            ]
            found = repository.metrics_of(self.session, [v.id for v in versions])
            for v in versions:
                set_committed_value(v, "metrics", found[v.id])
        return version.metrics

    def _metric(
        self, version: ModelVersion | None, metric: str, dataset: str, slice_: str = ""
    ) -> Metric | None:
        if version is None:
            return None
        for m in self._metrics(version):
            if m.name == metric and m.dataset == dataset and m.slice == slice_:
                return m
        return None

    def _threshold(self, rule: ThresholdRule, name: str) -> RuleResult:
        direction = self._direction(rule.metric, rule.direction)
        if direction is None:
            return self._unknown_direction(name, "threshold", rule.metric)
        m = self._metric(self.version, rule.metric, rule.dataset)
        return gates.threshold(
            rule=name,
            metric=rule.metric,
            dataset=rule.dataset,
            value=m.value if m else None,
            undefined_reason=m.undefined_reason if m else None,
            limit=rule.value,
            direction=direction,
        )

    def _no_regression(self, rule: NoRegressionRule, name: str) -> RuleResult:
        metric = rule.metric or self.model.primary_metric
        dataset = rule.dataset or self.model.primary_dataset
        if metric is None or dataset is None:
            return RuleResult(
                name,
                "no_regression",
                False,
                "the model has no primary_metric/primary_dataset to compare: set them "
                "(PATCH /models/{model}) or give the rule a metric and dataset",
                {},
            )
        direction = self._direction(metric, rule.direction)
        if direction is None:
            return self._unknown_direction(name, "no_regression", metric)
        cand = self._metric(self.version, metric, dataset)
        prod = self._metric(self.production, metric, dataset)
        result = gates.no_regression(
            rule=name,
            metric=metric,
            dataset=dataset,
            candidate=cand.value if cand else None,
            production=prod.value if prod else None,
            delta=rule.delta,
            direction=direction,
            has_production=self.production is not None,
            when_no_production=rule.when_no_production,
        )
        undefined = {
            who: m.undefined_reason
            for who, m in (("candidate", cand), ("production", prod))
            if m is not None and m.value is None and m.undefined_reason
        }
        if undefined and not result.passed:
            # The rule saw no value; an undefined metric says why, which "missing" does not.
            reason = "; ".join(f"{who} {why}" for who, why in undefined.items())
            return replace(
                result,
                reason=f"{reason} (dataset {dataset!r})",
                observed={**result.observed, "undefined_reason": undefined},
            )
        return result

    def _evidence(self, version: ModelVersion, dataset: str, test: str) -> Evidence | None:
        kind = _EVIDENCE_KIND[test]
        payload = repository.evidence_payload(self.session, version.id, dataset, kind)
        if payload is None and kind == "counts":
            # Counts follow from per-example correctness when only that was sent.
            payload = repository.evidence_payload(self.session, version.id, dataset, "correctness")
            if payload is not None:
                values = payload["values"]
                return Counts(successes=sum(1 for v in values if v), total=len(values))
        if payload is None:
            return None
        if kind == "correctness":
            return Correctness(values=payload["values"])
        if kind == "counts":
            return Counts(successes=payload["successes"], total=payload["total"])
        return Losses(values=payload["values"])

    def _significance(self, rule: SignificanceRule, name: str) -> RuleResult:
        if self.production is None:
            passed = rule.when_no_production == "pass"
            return RuleResult(
                name,
                "significance",
                passed,
                f"no production version to compare with; the policy says {rule.when_no_production}",
                {"test": rule.test, "alpha": rule.alpha},
                delta=rule.delta,
            )
        candidate = self._evidence(self.version, rule.dataset, rule.test)
        production = self._evidence(self.production, rule.dataset, rule.test)
        for who, ev in (("candidate", candidate), ("production", production)):
            n = _evidence_size(ev)
            if ev is not None and n < rule.min_samples:
                return RuleResult(
                    name,
                    "significance",
                    False,
                    f"{who} evidence on {rule.dataset!r} has {n} examples; the rule needs at "
                    f"least {rule.min_samples}",
                    {"test": rule.test, "n": n, "min_samples": rule.min_samples},
                    delta=rule.delta,
                )
        return gates.significance(
            rule=name,
            test=rule.test,
            delta=rule.delta,
            alpha=rule.alpha,
            candidate=candidate,
            production=production,
            seed=rule.seed,
        )

    def _fairness(self, rule: FairnessRule, name: str) -> RuleResult:
        def slices(version: ModelVersion | None) -> dict[str, float | None]:
            if version is None:
                return {}
            return {
                m.slice: m.value
                for m in self._metrics(version)
                if m.name == rule.metric and m.dataset == rule.dataset and m.slice
            }

        direction = self._direction(rule.metric, rule.direction)
        if direction is None:
            return self._unknown_direction(name, "fairness", rule.metric)
        compare = self.production is not None and rule.max_slice_regression is not None
        return gates.fairness(
            rule=name,
            metric=rule.metric,
            direction=direction,
            slices=slices(self.version),
            floor=rule.floor,
            max_gap=rule.max_gap,
            production_slices=slices(self.production) if compare else None,
            max_slice_regression=rule.max_slice_regression if compare else None,
            min_slices=rule.min_slices,
        )

    def _artifact(self, rule: ArtifactRule, name: str) -> RuleResult:
        v = self.version
        if v.artifact_key is None or v.artifact_sha256 is None:
            return gates.artifact_intact(
                rule=name,
                present=False,
                sha256_expected=v.artifact_expected_sha256,
                sha256_observed=None,
                detail="no artifact has been uploaded for this version",
            )
        check = verify_artifact(
            self.store,
            key=v.artifact_key,
            sha256=v.artifact_sha256,
            size=v.artifact_size or 0,
            etag=v.artifact_etag,
            rehash=rule.deep,
        )
        # sha256_observed is only ever a digest that was computed or read from the store.
        return gates.artifact_intact(
            rule=name,
            present=check.present,
            sha256_expected=v.artifact_sha256,
            sha256_observed=check.sha256_observed,
            detail=f"{check.method}: {check.detail}",
        )


def _evidence_size(evidence: Evidence | None) -> int:
    if evidence is None:
        return 0
    if isinstance(evidence, Counts):
        return evidence.total
    return len(evidence.values)


def _signature(document: dict[str, Any] | None) -> gates.Signature | None:
    if document is None:
        return None

    def columns(items: list[dict[str, Any]]) -> tuple[gates.Column, ...]:
        return tuple(
            gates.Column(
                name=c["name"],
                type=c["type"],
                nullable=c.get("nullable", False),
                required=c.get("required", True),
                categories=tuple(c["categories"]) if c.get("categories") is not None else None,
            )
            for c in items
        )

    return gates.Signature(
        inputs=columns(document.get("inputs", [])), outputs=columns(document.get("outputs", []))
    )
