"""The JSON shapes the Modelgate API answers with, as TypedDicts.

They mirror the server's pydantic read models (``openapi/openapi.json`` is the
authoritative description) without importing them, so the client needs only httpx;
``tests/client/test_api_types.py`` fails when a field here and in the spec disagree.
Values are exactly what the JSON holds: timestamps are ISO 8601 strings, enums are
strings.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, NotRequired, TypedDict, TypeVar

T = TypeVar("T")

StageName = Literal["candidate", "staging", "production", "archived"]
PromotionStatusName = Literal[
    "pending_approval", "approved", "rejected", "applied", "cancelled", "superseded"
]


class Page(TypedDict, Generic[T]):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[T]
    next_cursor: str | None


class ModelRead(TypedDict):
    name: str
    description: str
    owner: str | None
    tags: dict[str, str]
    primary_metric: str | None
    primary_dataset: str | None
    latest_version: int
    production_version: int | None
    aliases: NotRequired[dict[str, int]]
    """The model's aliases and the version each points at."""
    frozen: bool
    frozen_by: str | None
    frozen_reason: str | None
    created_by: str
    created_at: str
    updated_at: str


class MetricRead(TypedDict):
    name: str
    value: float | None
    undefined_reason: str | None
    dataset: str
    slice: str | None
    sample_count: int | None
    source: str


class EvidenceRead(TypedDict):
    dataset: str
    kind: str
    size: int
    digest: str


class ArtifactRead(TypedDict):
    status: Literal["missing", "verified", "corrupt"]
    sha256: str | None
    size: int | None
    media_type: str | None
    uploaded_at: str | None
    expected_sha256: str | None


class VersionRead(TypedDict):
    model: str
    version: int
    stage: StageName
    description: str
    lineage: dict[str, Any]
    signature: dict[str, Any] | None
    tags: dict[str, str]
    metrics: list[MetricRead]
    evidence: list[EvidenceRead]
    artifact: ArtifactRead
    rolled_back: bool
    created_by: str
    created_at: str
    updated_at: str
    stage_changed_at: str
    archived_reason: NotRequired[str | None]
    """Why the version was archived (replaced, rolled back, retired)."""
    aliases: NotRequired[list[str]]
    """The aliases pointing at this version."""
    lineage_fingerprint: NotRequired[str]
    """sha256 of the training specification (code, data, features, environment,
    hyperparameters, seed): versions with the same one are re-runs of one recipe."""


class StageRead(TypedDict):
    model: str
    stage: StageName
    items: list[VersionRead]
    next_cursor: str | None


class RuleReport(TypedDict):
    rule: str
    kind: str
    passed: bool
    reason: str
    observed: dict[str, Any]
    threshold: float | None
    delta: float | None
    p_value: float | None


class GateReport(TypedDict):
    model: str
    version: int
    target: StageName
    passed: bool
    policy_revision: int
    evaluated_against: int | None
    evaluated_at: str
    rules: list[RuleReport]
    failed: list[str]
    approvals_required: int
    digest: str


class ApprovalRead(TypedDict):
    reviewer: str
    reviewer_role: str
    comment: str | None
    created_at: str


class PromotionRead(TypedDict):
    id: int
    model: str
    version: int
    from_stage: StageName
    target: StageName
    alias: NotRequired[str | None]
    """Set when the request moves this protected alias (its version keeps its stage)."""
    status: PromotionStatusName
    requested_by: str
    requested_at: str
    comment: str | None
    policy_revision: int
    approvals_required: int
    approvals: list[ApprovalRead]
    report: GateReport
    decided_by: str | None
    decided_at: str | None
    decision_comment: str | None
    applied_at: str | None


class PolicyRead(TypedDict):
    model: str
    revision: int
    is_default: bool
    policy: dict[str, Any]
    digest: str
    created_by: str | None
    created_at: str | None


class RollbackRead(TypedDict):
    model: str
    serving_version: int
    replaced_version: int
    reason: str
    rolled_back_by: str
    rolled_back_at: str
    artifact_check: str


class FreezeRead(TypedDict):
    model: str
    frozen: bool
    frozen_at: str | None
    frozen_by: str | None
    reason: str | None


class HistoryEntry(TypedDict):
    version: int
    started_at: str
    ended_at: str | None
    via: Literal["promotion", "rollback"]
    actor: str
    reason: str | None
    promotion_id: int | None
    replaced_version: int | None
    ended_by: str | None


class AuditEvent(TypedDict):
    id: int
    stream: str
    seq: int
    occurred_at: str
    actor: str
    actor_role: str
    token_id: str | None
    action: str
    model: str | None
    version: int | None
    from_stage: str | None
    to_stage: str | None
    reason: str | None
    request_id: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class ChainProblem(TypedDict):
    stream: str
    seq: int
    event_id: int | None
    kind: str
    detail: str


class AuditVerification(TypedDict):
    ok: bool
    events_checked: int
    streams_checked: int
    first_problem: ChainProblem | None
    problems: list[ChainProblem]


class TokenRead(TypedDict):
    id: str
    name: str
    principal: str
    principal_kind: str
    role: str
    model_scope: str | None
    created_by: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None


class TokenCreated(TokenRead):
    token: str


class PrincipalRead(TypedDict):
    name: str
    kind: str
    created_by: str
    created_at: str
    active_roles: list[str]


class Download(TypedDict):
    """What :meth:`ModelgateClient.download_artifact` wrote (not an API shape)."""

    path: str
    sha256: str
    size: int


RolloutStrategy = Literal["canary", "blue_green", "shadow", "ab"]
RolloutState = Literal["running", "paused", "completed", "aborted"]


class StepRead(TypedDict):
    """One step of a rollout: the candidate's weight (percent) and its hold."""

    weight: float
    hold: dict[str, Any]
    started_at: NotRequired[str | None]
    approved_by: NotRequired[str | None]


class LookRead(TypedDict):
    """One look of the analysis: the score, the status and a result per metric."""

    number: int
    at: str
    step: int
    score: float | None
    status: Literal["pass", "marginal", "fail", "nodata"]
    action: str
    reason: str
    results: list[dict[str, Any]]


class DecisionRead(TypedDict):
    at: str
    action: Literal["started", "advanced", "paused", "resumed", "aborted", "completed", "approved"]
    step: int
    actor: str
    automatic: bool
    reason: str | None


class RolloutRead(TypedDict):
    id: int
    model: str
    version: int
    incumbent_version: int | None
    strategy: RolloutStrategy
    state: RolloutState
    step: int
    switched: bool
    steps: list[StepRead]
    weights: dict[str, float]
    shadow_share: float
    promote_on_complete: bool
    analysis: dict[str, Any]
    looks: list[LookRead]
    look_count: int
    next_look_at: str | None
    decisions: list[DecisionRead]
    reason: str | None
    created_by: str
    created_at: str
    updated_at: str
    ended_at: str | None
    serving_revision: int
