"""Claim an Idempotency-Key inside the request's transaction, and replay stored answers.

The key row is inserted in the same transaction as the change it guards. A second
request with the same key blocks on the unique index until the first commits, then
replays its answer; if the first rolled back, the second proceeds as if it were first.
So a retried CI job never creates two versions, whatever the timing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit.hashing import canonical_json
from app.db.base import utcnow
from app.errors import IdempotencyKeyReused, ValidationFailed
from app.idempotency.models import IdempotencyRecord

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: dict[str, Any]


def fingerprint(method: str, path: str, payload: Any) -> str:
    text = canonical_json({"method": method, "path": path, "body": payload})
    return hashlib.sha256(text.encode()).hexdigest()


_KEY = re.compile(r"[!-~]([ -~]{0,253}[!-~])?")


def validate_key(key: str) -> str:
    # The format the API document states (app/api/openapi_contract.py): printable ASCII,
    # no space at either end (HTTP strips those, so such a key could not come back intact).
    if not _KEY.fullmatch(key):
        raise ValidationFailed(
            "Idempotency-Key must be 1 to 255 printable ASCII characters, no space at either end",
            errors=[{"loc": ["header", "Idempotency-Key"], "msg": "invalid idempotency key"}],
        )
    return key


def _find(session: Session, principal: str, key: str) -> IdempotencyRecord | None:
    stmt = select(IdempotencyRecord).where(
        IdempotencyRecord.principal == principal, IdempotencyRecord.key == key
    )
    return session.scalars(stmt.execution_options(populate_existing=True)).first()


def _replay(record: IdempotencyRecord, fp: str) -> StoredResponse:
    if record.fingerprint != fp:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different request body or path"
        )
    return StoredResponse(status_code=record.status_code, body=record.response)


def claim(session: Session, *, principal: str, key: str, fp: str) -> StoredResponse | None:
    """Claim the key for this transaction, or return the answer stored for it."""
    found = _find(session, principal, key)
    if found is not None:
        return _replay(found, fp)
    record = IdempotencyRecord(
        principal=principal, key=key, fingerprint=fp, status_code=0, response={},
        created_at=utcnow(),
    )  # fmt: skip
    try:
        with session.begin_nested():
            session.add(record)
            session.flush()
    except IntegrityError:
        found = _find(session, principal, key)
        if found is None:  # pragma: no cover - the winner committed, so its row is visible
            raise
        return _replay(found, fp)
    return None


def store(
    session: Session, *, principal: str, key: str, status_code: int, body: dict[str, Any]
) -> None:
    record = _find(session, principal, key)
    if record is None:  # pragma: no cover - claim() inserted it in this transaction
        raise RuntimeError("idempotency key was not claimed")
    record.status_code = status_code
    record.response = body
