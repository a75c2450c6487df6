"""Version search by tag and by lineage field: the terms a version is found by, and the
parsing of the ``?tag=`` and ``?lineage.<field>=`` filters.

A version's terms are ``("tag:<key>", sha256(value))`` for each tag and
``("lineage:<field>", sha256(value))`` for each scalar lineage field it states, the value
written as text (integers in decimal, booleans as ``true``/``false``). They are stored in
``version_search_terms`` when the version is created and when its tags change.

Filters (all of them must hold):

- ``tag=KEY=VALUE``: the tag ``KEY`` has exactly ``VALUE`` (split at the first ``=``; a key
  never holds one, so keys with ``:`` are written this way);
- ``tag=KEY:VALUE``: the same, for a key without ``:`` (split at the first ``:``);
- ``tag=KEY``: the version has the tag ``KEY``, whatever its value;
- ``lineage.FIELD=VALUE``: the lineage field has exactly ``VALUE``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.errors import BadRequest

SEARCHABLE_LINEAGE = (
    "code_commit",
    "code_repository",
    "code_dirty",
    "data_version",
    "feature_pipeline_version",
    "environment",
    "seed",
    "training_run_id",
    "ci_run_id",
    "ci_run_url",
)
"""The scalar lineage fields a version can be found by."""

MAX_TAG_FILTERS = 20
_TAG_KEY = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")
TAG_FILTER_PATTERN = r"^([A-Za-z0-9_.:/-]{1,128}=[^\x00]*|[A-Za-z0-9_./-]{1,128}(:[^=\x00]*)?)$"
"""A ``?tag=`` filter :func:`tag_term` takes: ``KEY=VALUE``, ``KEY:VALUE`` or ``KEY``."""


@dataclass(frozen=True)
class Term:
    """One condition: the version has ``key``, with the value of digest ``value_sha256``
    (``None``: any value)."""

    key: str
    value_sha256: str | None


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    return None


def terms_of(*, tags: Mapping[str, Any], lineage: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key, value digest)`` of every term a version with these tags and lineage has."""
    found = [(f"tag:{key}", digest(str(value))) for key, value in sorted(tags.items())]
    for field in SEARCHABLE_LINEAGE:
        text = _text(lineage.get(field))
        if text is not None:
            found.append((f"lineage:{field}", digest(text)))
    return found


def tag_term(raw: str) -> Term:
    """One ``?tag=`` filter as a term; a malformed one is a 400 that says how to write it."""
    value: str | None
    if "=" in raw:
        key, _, value = raw.partition("=")
    elif ":" in raw:
        key, _, value = raw.partition(":")
    else:
        key, value = raw, None
    if not _TAG_KEY.fullmatch(key):
        raise BadRequest(
            f"tag={raw!r}: the key {key!r} is not a tag key (1-128 of A-Z a-z 0-9 _ . : / -); "
            "write tag=KEY=VALUE, tag=KEY:VALUE (a key without ':') or tag=KEY",
            errors=[{"loc": ["query", "tag"], "msg": "not a tag filter", "type": "value_error"}],
        )
    return Term(f"tag:{key}", None if value is None else digest(value))


def filters(tags: list[str] | None, lineage: Mapping[str, str | None]) -> list[Term]:
    """The terms of the ``?tag=`` and ``?lineage.*=`` filters given."""
    given = tags or []
    if len(given) > MAX_TAG_FILTERS:
        raise BadRequest(
            f"at most {MAX_TAG_FILTERS} tag filters ({len(given)} given)",
            errors=[{"loc": ["query", "tag"], "msg": "too many", "type": "value_error"}],
        )
    found = [tag_term(raw) for raw in given]
    for field, value in sorted(lineage.items()):
        if value is not None:
            found.append(Term(f"lineage:{field}", digest(value)))
    return found
