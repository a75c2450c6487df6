"""Console sessions: sign in with an API token, resolve the cookie, sign out.

The browser holds a random session id; the database holds only its sha256, so a copy
of the table signs nobody in. A session acts as its token's principal (the audit log
shows the same actor as the API would) and ends at its expiry, after an idle timeout,
on sign-out, or as soon as its token is revoked or expires. The CSRF token of a form is
an HMAC of the session id: it needs no storage and is worthless without the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.auth.roles import Principal
from app.console import repository
from app.console.models import ConsoleSession
from app.db.base import utcnow
from app.errors import Unauthenticated


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A resolved session: who acts, and the CSRF token its forms must carry."""

    principal: Principal
    csrf_token: str


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def csrf_token_for(session_id: str) -> str:
    return hmac.new(session_id.encode(), b"modelgate-console-csrf", hashlib.sha256).hexdigest()


def csrf_matches(session_id: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(csrf_token_for(session_id), presented)


def sign_in(session: Session, *, secret: str, lifetime_seconds: int) -> tuple[str, Principal]:
    """Check an API token and open a session for it; returns the new session id (for the
    cookie, never stored) and its principal. Unauthenticated when the token is not valid."""
    principal = auth_service.authenticate(session, secret)
    if principal.token_id is None:  # tokens from the database always have an id
        raise Unauthenticated("this token cannot open a console session")
    session_id = secrets.token_urlsafe(32)
    now = utcnow()
    expires_at = now + timedelta(seconds=lifetime_seconds)
    if principal.expires_at is not None:
        expires_at = min(expires_at, principal.expires_at)
    repository.add(
        session,
        ConsoleSession(
            id_hash=_hash(session_id),
            token_id=principal.token_id,
            created_at=now,
            last_seen_at=now,
            expires_at=expires_at,
        ),
    )
    return session_id, principal


def resolve(session: Session, *, session_id: str, idle_seconds: int) -> SignedIn | None:
    """The signed-in principal of a session id, or None when the session is unknown,
    revoked, expired, idle too long, or its token no longer valid (then it is revoked)."""
    row = repository.by_hash(session, _hash(session_id))
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    if row.expires_at <= now or row.last_seen_at + timedelta(seconds=idle_seconds) <= now:
        row.revoked_at = now
        return None
    try:
        principal = auth_service.principal_of_token(session, row.token_id)
    except Unauthenticated:
        repository.revoke_for_token(session, row.token_id, now)
        return None
    # Written at most once a minute: a page view need not be a write each time.
    if now - row.last_seen_at >= timedelta(seconds=min(60, idle_seconds / 4)):
        row.last_seen_at = now
    return SignedIn(principal=principal, csrf_token=csrf_token_for(session_id))


def sign_out(session: Session, *, session_id: str) -> None:
    row = repository.by_hash(session, _hash(session_id))
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
