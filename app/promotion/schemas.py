"""Gate policy documents and promotion payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.gates.catalogue import Direction
from app.gates.registry import Rule
from app.promotion.models import PromotionStatus
from app.registry.models import Stage
from app.registry.schemas import MetricName
from app.serving.schemas import AliasName

Comment = Annotated[str, Field(max_length=4000)]


class StagePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
    )


class GatePolicyDocument(BaseModel):
    """A model's gate policy: rules per target stage, approvals and auto-promotion."""

    model_config = ConfigDict(extra="forbid")

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


class GatePolicyRead(BaseModel):
    model: str
    revision: int = Field(description="0 for the built-in default policy.")
    is_default: bool
    policy: GatePolicyDocument
    digest: str
    created_by: str | None
    created_at: datetime | None


class PromotionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=2_000_000_000)
    target: Literal[Stage.STAGING, Stage.PRODUCTION]
    comment: Comment | None = None


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Comment | None = None


class RejectDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

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


class ArchiveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Comment | None = None


class RollbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

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


class FreezeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
