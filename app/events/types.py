"""The webhook event types, derived from the audit actions that publish them
(:class:`app.audit.actions.AuditAction` holds the mapping)."""

from __future__ import annotations

from app.audit.actions import EVENT_TYPE_OF

ACTION_TO_EVENT: dict[str, str] = {action.value: kind for action, kind in EVENT_TYPE_OF.items()}

EVENT_TYPES: tuple[str, ...] = tuple(dict.fromkeys(ACTION_TO_EVENT.values()))
"""Every type a webhook can subscribe to; ``*`` subscribes to all, present and future."""

ALL = "*"
