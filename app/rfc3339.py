"""Date-times as the API documents them: RFC 3339 strings, and nothing else.

pydantic's own datetime parsing is lenient: it takes numbers and numeric strings as
Unix times (``until=0.5`` is 1970-01-01T00:00:00.5Z) and dates without a time. The API
declares ``format: date-time`` (RFC 3339, section 5.6), so it accepts exactly that:
``2026-11-26T08:00:00Z`` or with an offset, fractions of a second allowed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$", re.ASCII
)
PATTERN = _RFC3339.pattern


def require_rfc3339(value: Any) -> Any:
    """Let through an RFC 3339 date-time string (pydantic then parses it); refuse the rest."""
    if isinstance(value, str) and _RFC3339.match(value):
        return value
    raise ValueError("must be an RFC 3339 date-time with a time zone, e.g. 2026-11-26T08:00:00Z")


Rfc3339DateTime = Annotated[AwareDatetime, BeforeValidator(require_rfc3339)]
"""An aware datetime given as an RFC 3339 string (a number or a bare date is a 422)."""


def parse_rfc3339(value: str) -> datetime:
    """An RFC 3339 date-time string as an aware UTC datetime; ``ValueError`` (saying why)
    for anything else: another format, an impossible date, or a time out of range."""
    require_rfc3339(value)
    text = value.upper()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:  # Python takes at most six digits of a fraction: keep microseconds.
        digits = rest[: len(rest) - 6]
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not a valid RFC 3339 date-time: {exc}") from None
