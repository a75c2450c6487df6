"""Opaque cursors for keyset pagination.

A cursor is the sort key of the last item of a page, base64url-encoded JSON. Clients
treat it as opaque; a cursor that does not decode is a 400, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from app.errors import BadRequest

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

T = TypeVar("T")
K = TypeVar("K", int, str)


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(
    cursor: str | None, *, arity: int, kinds: Sequence[type] | None = None
) -> list[Any] | None:
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
    # A cursor is client input: a value of the wrong type or out of range must be a 400
    # here, not a ValueError or a database overflow further down.
    if kinds is not None and not all(_fits(v, k) for v, k in zip(values, kinds, strict=True)):
        raise BadRequest("the cursor is not valid for this list")
    return values


def _fits(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and -(2**63) <= value < 2**63
    if kind is float:
        return isinstance(value, int | float) and math.isfinite(value)
    return isinstance(value, kind)


def after(cursor: str | None, kind: type[K]) -> K | None:
    """The single sort key a one-key cursor carries (None: the first page)."""
    values = decode_cursor(cursor, arity=1, kinds=(kind,))
    return kind(values[0]) if values else None


def split_page(
    rows: Sequence[T], limit: int, key: Callable[[T], list[Any]]
) -> tuple[list[T], str | None]:
    """The page and the cursor after it, from ``rows`` read with ``limit + 1``: the extra
    row only says that another page follows (its own key is not the cursor; the last
    row of the page is)."""
    page = list(rows[:limit])
    return page, (encode_cursor(key(page[-1])) if len(rows) > limit else None)
