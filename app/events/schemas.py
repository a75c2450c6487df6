"""Webhook payloads: subscriptions and their delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.events.models import DeliveryStatus
from app.events.types import ALL, EVENT_TYPES
from app.registry.schemas import ModelName, Strict

EventTypeName = Annotated[
    str, Field(min_length=1, max_length=64, json_schema_extra={"enum": [ALL, *EVENT_TYPES]})
]


_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
# RFC 3986's IPv6address, which is what ipaddress.IPv6Address takes (without a zone):
# before, any run of hex digits, colons and dots in brackets matched, "[156]" among them.
_H16 = r"[0-9A-Fa-f]{1,4}"
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_LS32 = rf"({_H16}:{_H16}|{_OCTET}(\.{_OCTET}){{3}})"
IPV6_PATTERN = (
    "("
    + "|".join(
        (
            rf"({_H16}:){{6}}{_LS32}",
            rf"::({_H16}:){{5}}{_LS32}",
            rf"({_H16})?::({_H16}:){{4}}{_LS32}",
            rf"(({_H16}:){{0,1}}{_H16})?::({_H16}:){{3}}{_LS32}",
            rf"(({_H16}:){{0,2}}{_H16})?::({_H16}:){{2}}{_LS32}",
            rf"(({_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
            rf"(({_H16}:){{0,4}}{_H16})?::{_LS32}",
            rf"(({_H16}:){{0,5}}{_H16})?::{_H16}",
            rf"(({_H16}:){{0,6}}{_H16})?::",
        )
    )
    + ")"
)
URL_PATTERN = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://"
    rf"([A-Za-z0-9_~.-]+|\[{IPV6_PATTERN}\])"
    rf"(:{_PORT})?"
    r"([/?][^\s#\x00]*)?$"
)
"""The shape of a webhook URL (decision 0025): http(s), a host name or IP literal and
an optional port, no credentials, no fragment; what the host resolves to is checked apart
(app/events/urls.py)."""


class WebhookCreate(Strict):
    url: Annotated[str, Field(min_length=1, max_length=2048, pattern=URL_PATTERN)] = Field(
        description="http or https URL that receives POSTs of JSON events: no credentials, "
        "no fragment; its addresses are checked (no link-local or metadata address, no "
        "private one unless allowed) when it is created and at every delivery.",
        examples=["https://ci.example.com/hooks/modelgate"],
    )
    event_types: list[EventTypeName] = Field(
        default_factory=lambda: [ALL],
        min_length=1,
        max_length=64,
        description='Event types to receive, or `["*"]` for all. Known types: '
        + ", ".join(EVENT_TYPES)
        + ". A type given twice counts once.",
        # "*" only alone (or repeated): every item is "*", or none is.
        json_schema_extra={
            "anyOf": [{"items": {"const": ALL}}, {"not": {"contains": {"const": ALL}}}]
        },
    )
    secret: Annotated[
        str, Field(min_length=16, max_length=256, pattern=r"^[!-~]([ -~]*[!-~])?$")
    ] = Field(
        description="Signs every delivery (HMAC-SHA256). Write-only: never returned. "
        "Printable ASCII, without surrounding spaces."
    )
    model: ModelName | None = Field(default=None, description="Only events of this model.")
    description: Annotated[str, Field(max_length=2000)] = ""
    active: bool = True

    @field_validator("event_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        value = list(dict.fromkeys(value))
        unknown = [t for t in value if t != ALL and t not in EVENT_TYPES]
        if unknown:
            raise ValueError(
                f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}"
            )
        if ALL in value and len(value) > 1:
            raise ValueError('"*" already means every type; send it alone')
        return value


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    event_types: list[str]
    model: str | None
    description: str
    active: bool
    created_by: str
    created_at: datetime
    deleted_at: datetime | None
    deleted_by: str | None


class DeliveryRead(BaseModel):
    """One event sent (or to be sent) to one webhook."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    webhook_id: int
    event_id: str = Field(description="Stable identity of the event: receivers dedupe by it.")
    event_type: str
    model: str | None = None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(
        description="When the next attempt is due (pending and failed deliveries)."
    )
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    redelivery_of: int | None
    created_at: datetime
