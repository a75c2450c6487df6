"""The webhook event types, and the audit actions they come from."""

from __future__ import annotations

ACTION_TO_EVENT: dict[str, str] = {
    "version.created": "version.created",
    "gates.evaluated": "gates.evaluated",
    "gates.reevaluated": "gates.evaluated",
    "promotion.requested": "promotion.requested",
    "promotion.approved": "promotion.approved",
    "promotion.rejected": "promotion.rejected",
    "promotion.applied": "promotion.applied",
    "model.rolled_back": "model.rolled_back",
    "model.frozen": "model.frozen",
    "model.unfrozen": "model.unfrozen",
    "drift.detected": "drift.detected",
    "retrain.requested": "retrain.requested",
    "artifact.corrupt": "artifact.corrupt",
    "artifact.verified": "artifact.verified",
}

EVENT_TYPES: tuple[str, ...] = tuple(dict.fromkeys(ACTION_TO_EVENT.values()))
"""Every type a webhook can subscribe to; ``*`` subscribes to all, present and future."""

ALL = "*"


def event_type_for(action: str) -> str | None:
    return ACTION_TO_EVENT.get(action)


def matches(subscribed: list[str], event_type: str) -> bool:
    return ALL in subscribed or event_type in subscribed
