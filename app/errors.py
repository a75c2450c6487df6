"""The error hierarchy of Modelgate.

Domain and adapter code raise subclasses of :class:`AppError`; the API layer turns
them into RFC 9457 ``application/problem+json`` answers. Nothing here imports
FastAPI, so services, storage and the CLI can share these types.

Each subclass fixes a stable ``code`` (also the last segment of the problem
``type`` URI), an HTTP ``status`` and a short ``title``. Clients branch on
``code``; ``detail`` is for people.
"""

from __future__ import annotations

from typing import Any, ClassVar

# Relative to the server: its catalogue of codes (app/api/docs.py); the API answers with
# absolute URIs (or the `problem_type_base_url` setting), see app/api/problems.type_base.
PROBLEM_TYPE_BASE = "/api/v1/problems/"


class AppError(Exception):
    """Base of every error Modelgate reports to a client."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal server error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra: dict[str, Any] = extra

    @property
    def type_uri(self) -> str:
        return PROBLEM_TYPE_BASE + self.code


# 400 --------------------------------------------------------------------------


class BadRequest(AppError):
    status = 400
    code = "bad-request"
    title = "Bad request"


class MalformedBody(BadRequest):
    code = "malformed-body"
    title = "Malformed request body"


# 401 / 403 --------------------------------------------------------------------


class Unauthenticated(AppError):
    status = 401
    code = "unauthenticated"
    title = "Authentication required"


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    title = "Not allowed"


# 404 --------------------------------------------------------------------------


class NotFound(AppError):
    status = 404
    code = "not-found"
    title = "Not found"


class ModelNotFound(NotFound):
    code = "model-not-found"
    title = "Model not found"


class VersionNotFound(NotFound):
    code = "version-not-found"
    title = "Model version not found"


class ArtifactNotFound(NotFound):
    code = "artifact-not-found"
    title = "Artifact not found"


class TokenNotFound(NotFound):
    code = "token-not-found"
    title = "Token not found"


class RolloutNotFound(NotFound):
    code = "rollout-not-found"
    title = "Rollout not found"


class PromotionNotFound(NotFound):
    code = "promotion-not-found"
    title = "Promotion request not found"


class WebhookNotFound(NotFound):
    code = "webhook-not-found"
    title = "Webhook not found"


class WebhookDeliveryNotFound(NotFound):
    code = "webhook-delivery-not-found"
    title = "Webhook delivery not found"


class ReferenceProfileNotFound(NotFound):
    code = "reference-profile-not-found"
    title = "Reference profile not found"


class DriftReportNotFound(NotFound):
    code = "drift-report-not-found"
    title = "Drift report not found"


# 409 --------------------------------------------------------------------------


class Conflict(AppError):
    status = 409
    code = "conflict"
    title = "Conflict with the current state"


class ModelAlreadyExists(Conflict):
    code = "model-exists"
    title = "Model already exists"


class MetricConflict(Conflict):
    code = "metric-conflict"
    title = "Metric already recorded with another value"


class ArtifactConflict(Conflict):
    code = "artifact-conflict"
    title = "Version already has a different artifact"


class ArtifactCorrupt(Conflict):
    code = "artifact-corrupt"
    title = "Stored artifact does not match its recorded sha256"


class TransitionNotAllowed(Conflict):
    code = "transition-not-allowed"
    title = "Stage transition not allowed"


class ModelFrozen(Conflict):
    code = "model-frozen"
    title = "Model is frozen"


class PromotionNotPending(Conflict):
    code = "promotion-not-pending"
    title = "Promotion request is no longer pending"


class RollbackNotPossible(Conflict):
    code = "rollback-not-possible"
    title = "Rollback not possible"


class RolloutInProgress(Conflict):
    """Another rollout of the model is running or paused: one rollout per model at a time."""

    code = "rollout-in-progress"
    title = "A rollout of this model is in progress"


class RolloutNotActive(Conflict):
    """The rollout has ended (completed or aborted), or is not in the state the action needs."""

    code = "rollout-not-active"
    title = "Rollout not in a state for this action"


class GatesFailed(Conflict):
    """The version does not pass the production gates; the body lists the failed ones."""

    code = "gates-failed"
    title = "The version does not pass the production gates"


class NoIncumbent(Conflict):
    """The model has no production version for a rollout to start against."""

    code = "no-incumbent"
    title = "No production version to roll out against"


class ApprovalRequired(Conflict):
    """The current step of the rollout waits for a reviewer's approval."""

    code = "approval-required"
    title = "The rollout step needs a reviewer's approval"


class RolloutRequired(Conflict):
    """The policy requires a rollout for production: start one instead of a promotion."""

    code = "rollout-required"
    title = "Production is reached only by a rollout"


class ReferenceProfileExists(Conflict):
    code = "reference-profile-exists"
    title = "Version already has a different reference profile"


class NoDriftReference(Conflict):
    code = "no-drift-reference"
    title = "No production version with a reference profile"


class LastAdmin(Conflict):
    code = "last-admin"
    title = "Would leave no administrator"


class StateMismatch(Conflict):
    """A well-formed request about things the registry does not hold (now): a version
    outside the serving plan, a time outside the retention, a key never observed, a
    lineage not the version's. ``errors`` names the items, as a 422's would."""

    code = "state-mismatch"
    title = "Does not match the registry's state"


class PrincipalKindConflict(Conflict):
    code = "principal-kind-conflict"
    title = "Principal exists with another kind"


class IdempotencyKeyInUse(Conflict):
    code = "idempotency-key-in-use"
    title = "Idempotency key is being used by a request in progress"


# 412 / 413 / 415 --------------------------------------------------------------


class PreconditionFailed(AppError):
    status = 412
    code = "precondition-failed"
    title = "Precondition failed"


class PayloadTooLarge(AppError):
    status = 413
    code = "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(AppError):
    status = 415
    code = "unsupported-media-type"
    title = "Unsupported media type"


# 422 --------------------------------------------------------------------------


class ValidationFailed(AppError):
    status = 422
    code = "validation-failed"
    title = "Request is not valid"

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail, errors=errors or [])


class ChecksumMismatch(AppError):
    status = 422
    code = "checksum-mismatch"
    title = "Artifact checksum does not match"


class IdempotencyKeyReused(Conflict):
    """The key's first use (stored state) was another request: a 409 (decision 0025)."""

    code = "idempotency-key-reused"
    title = "Idempotency key was used for a different request"


class InvalidPolicy(AppError):
    status = 422
    code = "invalid-policy"
    title = "Gate policy is not valid"


# Serving ----------------------------------------------------------------------


class AliasNotFound(NotFound):
    code = "alias-not-found"
    title = "Alias not found"


class AliasNeedsApproval(Conflict):
    code = "alias-needs-approval"
    title = "Alias moves only with approval"

    keep_changes: bool = False
    """The refusal recorded a promotion request the caller commits before answering."""


class AliasGatesFailed(AppError):
    status = 422
    code = "alias-gates-failed"
    title = "The alias's gates failed"


class RevisionFromFuture(Conflict):
    code = "revision-from-future"
    title = "Serving revision not issued yet"


# 5xx --------------------------------------------------------------------------


class DependencyUnavailable(AppError):
    status = 503
    code = "dependency-unavailable"
    title = "A dependency is unavailable"


class SecretKeyMissing(AppError):
    status = 503
    code = "secret-key-missing"
    title = "No secret key configured"


class DatabaseUnavailable(DependencyUnavailable):
    code = "database-unavailable"
    title = "Database unavailable"


class StorageUnavailable(DependencyUnavailable):
    code = "storage-unavailable"
    title = "Artifact store unavailable"


class StorageFull(AppError):
    status = 507
    code = "storage-full"
    title = "Artifact store is full or not writable"


class ConfigurationError(Exception):
    """Raised at start-up when settings cannot work; printed as one line."""
