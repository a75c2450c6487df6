"""Opaque cursors for keyset pagination.

A cursor is the sort key of the last item of a page, base64url-encoded JSON. Clients
treat it as opaque; a cursor that does not decode is a 400, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from app.errors import BadRequest

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, arity: int) -> list[Any] | None:
    if cursor is None or cursor == "":
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("the cursor is not valid; pass back next_cursor unchanged") from None
    if not isinstance(values, list) or len(values) != arity:
        raise BadRequest("the cursor is not valid for this list")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float | str):
            raise BadRequest("the cursor is not valid for this list")
    return values
