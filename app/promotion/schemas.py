"""Gate policy documents and promotion payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.gates.catalogue import Direction
from app.gates.registry import Rule
from app.promotion.models import PromotionStatus
from app.registry.models import Stage
from app.registry.schemas import MetricName
from app.schemas import Strict
from app.serving.schemas import AliasAt, AliasName

Comment = Annotated[str, Field(max_length=4000)]


class StagePolicy(Strict):
    rules: list[Rule] = Field(default_factory=list, max_length=200)
    approvals_required: int = Field(default=0, ge=0, le=20)
    auto_promote: bool = Field(
        default=False,
        description="Apply at once when the gates pass and no approval is required "
        "(continuous deployment); otherwise a reviewer decides.",
    )


class ProductionPolicy(StagePolicy):
    require_staging: bool = Field(
        default=True, description="Only versions in staging may be promoted to production."
    )
    require_rollout: bool = Field(
        default=False,
        description="Production is reached only by a rollout (POST /models/{model}/rollouts); "
        "a promotion request to production answers 409 rollout-required.",
        # Left out of the stored document when false, so that the digests of policies
        # written before this field existed stay what they were.
        exclude_if=lambda value: value is False,
    )


class MonitoringMetric(Strict):
    """One metric production is watched on, against the previous version's baseline."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    kind: Literal["error_rate", "accuracy", "latency", "prediction_distribution"]
    tolerance: float = Field(
        default=0.0, ge=0, allow_inf_nan=False,
        description="Harm tolerated: absolute for rates, relative for latency, a "
        "Jensen-Shannon distance for prediction distributions.",
    )  # fmt: skip
    weight: float = Field(default=1.0, gt=0, le=1000, allow_inf_nan=False)
    min_sample: int = Field(default=500, ge=1, le=100_000_000)


def _default_monitoring_metrics() -> list[MonitoringMetric]:
    return [
        MonitoringMetric(name="errors", kind="error_rate", tolerance=0.0),
        MonitoringMetric(name="latency", kind="latency", tolerance=0.1),
    ]


class MonitoringPolicy(Strict):
    """How production is watched after release (decision record 0020): its observations
    since it became production against the previous version's while that served, with an
    always-valid test; a degradation raises ``production.degraded`` once per production
    period and, with ``on_degraded: rollback``, rolls production back."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    metrics: list[MonitoringMetric] = Field(
        default_factory=_default_monitoring_metrics, min_length=1, max_length=20
    )
    alpha: float = Field(
        default=0.05, gt=0, lt=0.5,
        description="Chance of a false alarm over the whole production period, every "
        "check included (shared between metrics by weight).",
    )  # fmt: skip
    on_degraded: Literal["alert", "rollback"] = "alert"
    baseline_hours: int = Field(
        default=24, ge=1, le=24 * 366,
        description="The baseline: the previous version's last hours in production.",
    )  # fmt: skip
    interval_seconds: int = Field(default=30, ge=1, le=86_400, description="Time between checks.")
    # Each check is classified as a rollout's look is (app.gates.canary.judge): the score is
    # 100 times the weight of passing metrics over the weight of judged ones; below
    # marginal_score the check fails, below pass_score it is marginal. The defaults (100,
    # 100, 1) degrade on the first check that fails any metric, as before these fields
    # existed; they are left out of the stored document when at their defaults, so that
    # policies written before keep their digests.
    pass_score: float = Field(
        default=100.0, ge=0, le=100, allow_inf_nan=False,
        description="A check scoring at least this passes.",
        exclude_if=lambda value: value == 100.0,
    )  # fmt: skip
    marginal_score: float = Field(
        default=100.0, ge=0, le=100, allow_inf_nan=False,
        description="A check scoring below this fails; between it and pass_score it is "
        "marginal (a marginal or passing check ends a run of failed checks).",
        exclude_if=lambda value: value == 100.0,
    )  # fmt: skip
    failure_limit: int = Field(
        default=1, ge=1, le=1000,
        description="production.degraded is raised after this many failed checks in a row.",
        exclude_if=lambda value: value == 1,
    )  # fmt: skip

    @model_validator(mode="after")
    def _unique_names(self) -> MonitoringPolicy:
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError("monitoring metric names must be unique")
        if self.marginal_score > self.pass_score:
            raise ValueError("monitoring marginal_score must not exceed pass_score")
        return self


class GatePolicyDocument(Strict):
    """A model's gate policy: rules per target stage, approvals and auto-promotion."""

    staging: StagePolicy = Field(default_factory=StagePolicy)
    production: ProductionPolicy = Field(default_factory=ProductionPolicy)
    metric_directions: dict[MetricName, Direction] = Field(
        default_factory=dict, description="Directions for metrics the catalogue does not know."
    )
    aliases: dict[AliasName, StagePolicy] = Field(
        default_factory=dict,
        description="Protected aliases: the gates (compared with production, as "
        "production's are) a version must pass before the alias moves to it. An alias "
        "not named here is moved by submitters.",
    )
    # Left out of the dump when absent, so that a policy without the section dumps (and
    # digests) as it did before the section existed: stored policies keep their digests.
    monitoring: MonitoringPolicy | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="Watching production after release; absent: the defaults (error rate "
        "and latency, alpha 0.05, alert only).",
    )

    @property
    def monitoring_in_force(self) -> MonitoringPolicy:
        return self.monitoring if self.monitoring is not None else MonitoringPolicy()


class GatePolicyRead(BaseModel):
    model: str
    revision: int = Field(description="0 for the built-in default policy.")
    is_default: bool
    policy: GatePolicyDocument
    digest: str
    created_by: str | None
    created_at: datetime | None


class PromotionCreate(Strict):
    version: int = Field(ge=1, le=2_000_000_000)
    target: Literal[Stage.STAGING, Stage.PRODUCTION]
    comment: Comment | None = None


class Decision(Strict):
    comment: Comment | None = None


class RejectDecision(Strict):
    comment: Annotated[str, Field(min_length=1, max_length=4000)] = Field(
        description="Why the request is rejected."
    )


class RuleReport(BaseModel):
    rule: str
    kind: str
    passed: bool
    reason: str
    observed: dict[str, Any]
    threshold: float | None = None
    delta: float | None = None
    p_value: float | None = None


class GateReportRead(BaseModel):
    model: str
    version: int
    target: Stage
    passed: bool = Field(description="All gates passed (approvals are counted separately).")
    policy_revision: int
    evaluated_against: int | None = Field(description="Production version compared with.")
    evaluated_at: datetime
    rules: list[RuleReport]
    failed: list[str]
    approvals_required: int
    digest: str


class ApprovalRead(BaseModel):
    reviewer: str
    reviewer_role: str
    comment: str | None
    created_at: datetime


class PromotionRead(BaseModel):
    id: int
    model: str
    version: int
    from_stage: Stage
    target: Stage
    alias: AliasName | None = Field(
        default=None,
        description="Set when the request moves this protected alias to the version "
        "instead of changing its stage; `target` is then production, the stage its "
        "gates compare with.",
    )
    status: PromotionStatus
    requested_by: str
    requested_at: datetime
    comment: str | None
    policy_revision: int
    approvals_required: int
    approvals: list[ApprovalRead]
    report: GateReportRead
    decided_by: str | None
    decided_at: datetime | None
    decision_comment: str | None
    applied_at: datetime | None


class ArchiveRequest(Strict):
    reason: Comment | None = None


class RollbackCreate(Strict):
    reason: Annotated[str, Field(min_length=1, max_length=4000)] = Field(
        description="Why production is rolled back (kept in the audit log)."
    )
    to_version: int | None = Field(
        default=None, ge=1, le=2_000_000_000,
        description="An archived version to restore; default: the previous stable one.",
    )  # fmt: skip
    deep_check: bool = Field(
        default=False,
        description="Always re-hash the target's artifact, even where the store keeps a "
        "SHA-256 checksum of it (content is verified either way).",
    )


class RollbackRead(BaseModel):
    model: str
    serving_version: int = Field(description="The version now in production.")
    replaced_version: int = Field(description="The version rolled back from.")
    reason: str
    rolled_back_by: str
    rolled_back_at: datetime
    artifact_check: str


class FreezeCreate(Strict):
    reason: Annotated[str, Field(min_length=1, max_length=4000)]


class FreezeRead(BaseModel):
    model: str
    frozen: bool
    frozen_at: datetime | None
    frozen_by: str | None
    reason: str | None


class HistoryEntry(BaseModel):
    version: int
    started_at: datetime
    ended_at: datetime | None = Field(description="Open while the version serves.")
    via: Literal["promotion", "rollback"]
    actor: str
    reason: str | None
    promotion_id: int | None
    replaced_version: int | None
    ended_by: str | None = Field(description="promotion or rollback, once it ended.")


class StagesAt(BaseModel):
    """Version numbers per stage at a past time (versions created later are absent)."""

    candidate: list[int]
    staging: list[int]
    production: list[int]
    archived: list[int]


class PointersAt(BaseModel):
    """What a model's pointers held at a past time ``at``: the production version (its
    production period), every version's stage, and every alias."""

    model: str
    at: datetime
    production: HistoryEntry | None = Field(
        description="The production period that covered `at` (null: nothing served)."
    )
    stages: StagesAt
    aliases: list[AliasAt]
