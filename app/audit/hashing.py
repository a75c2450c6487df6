"""The hash chain: how an audit event's hash is computed from its fields and its predecessor.

``hash = sha256(canonical_json({...fields, "prev_hash": prev}))``. Canonical JSON sorts
keys, has no insignificant white space and refuses NaN, so any backend that returns the
same values yields the same hash. Timestamps are hashed as ISO 8601 UTC with microseconds.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64

HASHED_FIELDS = (  # the one list of what an event's hash covers
    "stream",
    "seq",
    "occurred_at",
    "actor",
    "actor_role",
    "token_id",
    "action",
    "model",
    "version",
    "from_stage",
    "to_stage",
    "reason",
    "request_id",
    "details",
)


def canonical_json(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(fields: dict[str, Any], prev_hash: str) -> str:
    payload = {name: fields[name] for name in HASHED_FIELDS}
    payload["occurred_at"] = format_time(fields["occurred_at"])
    payload["prev_hash"] = prev_hash
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()
