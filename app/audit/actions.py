"""Every audit action, one enum member each, with what it publishes beside it.

A member's :attr:`AuditAction.event_type` is the webhook event type the action writes to
the outbox (``None``: no webhook), and :attr:`AuditAction.promotion_outcome` the
``outcome`` label it counts on ``modelgate_promotions_total`` (``None``: not counted
there). The other counters an action feeds (rollbacks, freezes, drift reports, gate
failures) are named in :func:`app.observability.audit_metrics.count`, one branch per
member. A misspelt action is an ``AttributeError`` at import, not a silently dropped
webhook or metric.
"""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    MODEL_CREATED = "model.created"
    MODEL_UPDATED = "model.updated"
    MODEL_FROZEN = "model.frozen"
    MODEL_FREEZE_UPDATED = "model.freeze_updated"
    MODEL_UNFROZEN = "model.unfrozen"
    MODEL_ROLLED_BACK = "model.rolled_back"
    POLICY_UPDATED = "policy.updated"
    VERSION_CREATED = "version.created"
    VERSION_STAGE_CHANGED = "version.stage_changed"
    VERSION_ARCHIVED = "version.archived"
    VERSION_UPDATED = "version.updated"
    VERSION_IMPORTED = "version.imported"
    REPRODUCTION_RECORDED = "reproduction.recorded"
    DATA_CHECK_RECORDED = "data_check.recorded"
    METRICS_ADDED = "metrics.added"
    ARTIFACT_UPLOADED = "artifact.uploaded"
    ARTIFACT_CORRUPT = "artifact.corrupt"
    ARTIFACT_VERIFIED = "artifact.verified"
    GATES_EVALUATED = "gates.evaluated"
    GATES_REEVALUATED = "gates.reevaluated"
    PROMOTION_REQUESTED = "promotion.requested"
    PROMOTION_APPROVED = "promotion.approved"
    PROMOTION_REJECTED = "promotion.rejected"
    PROMOTION_APPLIED = "promotion.applied"
    PROMOTION_CANCELLED = "promotion.cancelled"
    PROMOTION_SUPERSEDED = "promotion.superseded"
    REFERENCE_PROFILE_CREATED = "reference_profile.created"
    DRIFT_SETTINGS_UPDATED = "drift_settings.updated"
    DRIFT_REPORTED = "drift.reported"
    DRIFT_DETECTED = "drift.detected"
    RETRAIN_REQUESTED = "retrain.requested"
    TOKEN_CREATED = "token.created"  # noqa: S105 (an action name, not a secret)
    TOKEN_REVOKED = "token.revoked"  # noqa: S105
    WEBHOOK_CREATED = "webhook.created"
    WEBHOOK_DELETED = "webhook.deleted"
    WEBHOOK_REDELIVERY_REQUESTED = "webhook.redelivery_requested"
    ALIAS_MOVED = "alias.moved"
    ALIAS_REMOVED = "alias.removed"
    ROLLOUT_STARTED = "rollout.started"
    ROLLOUT_ADVANCED = "rollout.advanced"
    ROLLOUT_PAUSED = "rollout.paused"
    ROLLOUT_RESUMED = "rollout.resumed"
    ROLLOUT_APPROVED = "rollout.approved"
    ROLLOUT_ABORTED = "rollout.aborted"
    ROLLOUT_COMPLETED = "rollout.completed"

    @property
    def event_type(self) -> str | None:
        """The webhook event type this action publishes, if any."""
        return EVENT_TYPE_OF.get(self)

    @property
    def promotion_outcome(self) -> str | None:
        """The ``outcome`` label of ``modelgate_promotions_total`` this action counts, if any."""
        return _PROMOTION_OUTCOMES.get(self)


EVENT_TYPE_OF: dict[AuditAction, str] = {
    AuditAction.VERSION_CREATED: "version.created",
    AuditAction.GATES_EVALUATED: "gates.evaluated",
    AuditAction.GATES_REEVALUATED: "gates.evaluated",
    AuditAction.PROMOTION_REQUESTED: "promotion.requested",
    AuditAction.PROMOTION_APPROVED: "promotion.approved",
    AuditAction.PROMOTION_REJECTED: "promotion.rejected",
    AuditAction.PROMOTION_APPLIED: "promotion.applied",
    AuditAction.MODEL_ROLLED_BACK: "model.rolled_back",
    AuditAction.MODEL_FROZEN: "model.frozen",
    AuditAction.MODEL_FREEZE_UPDATED: "model.frozen",
    AuditAction.MODEL_UNFROZEN: "model.unfrozen",
    AuditAction.DRIFT_DETECTED: "drift.detected",
    AuditAction.RETRAIN_REQUESTED: "retrain.requested",
    AuditAction.ARTIFACT_CORRUPT: "artifact.corrupt",
    AuditAction.ARTIFACT_VERIFIED: "artifact.verified",
    AuditAction.ALIAS_MOVED: "alias.moved",
    AuditAction.ALIAS_REMOVED: "alias.removed",
    AuditAction.ROLLOUT_STARTED: "rollout.started",
    AuditAction.ROLLOUT_ADVANCED: "rollout.advanced",
    AuditAction.ROLLOUT_PAUSED: "rollout.paused",
    AuditAction.ROLLOUT_RESUMED: "rollout.resumed",
    AuditAction.ROLLOUT_APPROVED: "rollout.approved",
    AuditAction.ROLLOUT_ABORTED: "rollout.aborted",
    AuditAction.ROLLOUT_COMPLETED: "rollout.completed",
}

_PROMOTION_OUTCOMES: dict[AuditAction, str] = {
    AuditAction.PROMOTION_REQUESTED: "requested",
    AuditAction.PROMOTION_APPROVED: "approved",
    AuditAction.PROMOTION_REJECTED: "rejected",
    AuditAction.PROMOTION_APPLIED: "applied",
    AuditAction.PROMOTION_CANCELLED: "cancelled",
    AuditAction.PROMOTION_SUPERSEDED: "superseded",
}
