"""Create, authenticate and revoke API tokens.

Secrets are 256-bit random strings prefixed ``mgt_``; only their sha256 is stored, and
a token is found by that hash (a high-entropy secret needs no slow hash).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth import repository
from app.auth.cache import TokenCache, forget_everywhere
from app.auth.models import ApiToken
from app.auth.roles import SYSTEM, Principal, Role
from app.db.base import utcnow
from app.errors import Forbidden, TokenNotFound, Unauthenticated
from app.observability.aftercommit import defer

TOKEN_PREFIX = "mgt_"  # noqa: S105 - a prefix for secret scanners, not a secret


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def remembered(cache: TokenCache | None, presented: str) -> Principal | None:
    """The principal of a secret the cache still holds (None if it holds none); no I/O.

    Raises Unauthenticated when the remembered token has expired since.
    """
    if cache is None or not cache.enabled:
        return None
    principal = cache.get(hash_secret(presented))
    expires_at = principal.expires_at if principal is not None else None
    if expires_at is not None and expires_at <= utcnow():
        raise Unauthenticated("the bearer token has expired")
    return principal


def authenticate(session: Session, presented: str, cache: TokenCache | None = None) -> Principal:
    """The principal behind a bearer secret, looked up in the database, or Unauthenticated.

    A principal found is put in ``cache`` (if given), for :func:`remembered` to answer
    the next requests without a lookup; callers ask :func:`remembered` first.
    """
    digest = hash_secret(presented)
    token = repository.by_hash(session, digest)
    # compare_digest keeps the final check constant-time even though the lookup is by hash.
    if token is None or not hmac.compare_digest(token.secret_hash, digest):
        raise Unauthenticated("the bearer token is not valid")
    if token.revoked_at is not None:
        raise Unauthenticated("the bearer token has been revoked")
    if token.expires_at is not None and token.expires_at <= utcnow():
        raise Unauthenticated("the bearer token has expired")
    principal = Principal(
        name=token.name,
        role=Role(token.role),
        token_id=token.id,
        model_scope=token.model_scope,
        expires_at=token.expires_at,
    )
    if cache is not None:
        cache.put(digest, principal)
    return principal


def create_token(
    session: Session,
    *,
    actor: Principal,
    name: str,
    role: Role,
    model_scope: str | None = None,
    expires_in_days: int | None = None,
    secret: str | None = None,
) -> tuple[ApiToken, str]:
    """Store a new token and return it with its secret (the only time the secret exists)."""
    if actor.model_scope is not None:
        raise Forbidden("a model-scoped token cannot create tokens")
    secret = secret or new_secret()
    now = utcnow()
    token = ApiToken(
        id=secrets.token_hex(8),
        name=name,
        role=role.value,
        model_scope=model_scope,
        secret_hash=hash_secret(secret),
        created_by=actor.name,
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    repository.add(session, token)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.TOKEN_CREATED,
        details={
            "token_id": token.id,
            "name": name,
            "role": role.value,
            "model_scope": model_scope,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        },
    )
    return token, secret


def list_tokens(session: Session, *, after_id: str | None, limit: int) -> list[ApiToken]:
    return list(repository.page(session, after_id=after_id, limit=limit))


def revoke_token(session: Session, *, actor: Principal, token_id: str) -> ApiToken:
    token = repository.by_id(session, token_id, for_update=True)
    if token is None:
        raise TokenNotFound(f"no token with id {token_id!r}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        token.revoked_by = actor.name
        audit.record(
            session,
            actor=actor,
            action=AuditAction.TOKEN_REVOKED,
            details={"token_id": token.id, "name": token.name, "role": token.role},
        )
        # Dropped now and again once the revocation committed: a request of this process
        # that read the token before the commit may have put it back in between.
        revoked_id = token.id
        forget_everywhere(revoked_id)
        defer(session, lambda: forget_everywhere(revoked_id))
    return token


def ensure_bootstrap_admin(session: Session, *, secret: str) -> bool:
    """Create an admin token with the given secret unless an active admin token exists."""
    if repository.any_active_admin(session):
        return False
    if repository.by_hash(session, hash_secret(secret)) is not None:
        return False
    try:
        # Every server process runs this at start: two workers of one `serve --workers N`
        # on a fresh database race here, and the loser must not fail its boot (gunicorn
        # would then stop every worker).
        with session.begin_nested():
            create_token(
                session, actor=SYSTEM, name="bootstrap-admin", role=Role.ADMIN, secret=secret
            )
            session.flush()
    except IntegrityError:
        return False
    return True


def has_any_admin(session: Session) -> bool:
    return repository.any_active_admin(session)
