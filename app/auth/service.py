"""Create, authenticate and revoke API tokens; the principals that hold them.

Secrets are 256-bit random strings prefixed ``mgt_``; only their sha256 is stored, and
a token is found by that hash (a high-entropy secret needs no slow hash).

Every token belongs to a principal (a person or a service account, unique by name):
:func:`authenticate` turns a presented secret into the calling :class:`Principal`, whose
``name`` is the principal's. Anything that signs people in (the API, the console) calls
that one function.

The last-admin rule (docs/authorization.md): no revocation may leave no active admin
token, nor leave only admin tokens that will expire.
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
from app.auth.models import ApiToken, PrincipalRecord
from app.auth.roles import SYSTEM, Principal, Role
from app.db.base import utcnow
from app.errors import (
    Forbidden,
    LastAdmin,
    PrincipalKindConflict,
    TokenNotFound,
    Unauthenticated,
)
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

    This is the one way to sign a caller in: the API's bearer check and the console's
    sign-in both use it. A principal found is put in ``cache`` (if given), for
    :func:`remembered` to answer the next requests without a lookup; callers ask
    :func:`remembered` first.
    """
    digest = hash_secret(presented)
    found = repository.by_hash(session, digest)
    # compare_digest keeps the final check constant-time even though the lookup is by hash.
    if found is None or not hmac.compare_digest(found[0].secret_hash, digest):
        raise Unauthenticated("the bearer token is not valid")
    token, owner = found
    principal = _principal_of(token, owner)
    if cache is not None:
        cache.put(digest, principal)
    return principal


def principal_of_token(session: Session, token_id: str) -> Principal:
    """The principal of a token found by its id (a console session keeps the id, never
    the secret), or Unauthenticated when the token is gone, revoked or expired."""
    token = repository.by_id(session, token_id)
    if token is None:
        raise Unauthenticated("the bearer token is not valid")
    return _principal_of(token, repository.principal_by_id(session, token.principal_id))


def _principal_of(token: ApiToken, owner: PrincipalRecord) -> Principal:
    if token.revoked_at is not None:
        raise Unauthenticated("the bearer token has been revoked")
    if token.expires_at is not None and token.expires_at <= utcnow():
        raise Unauthenticated("the bearer token has expired")
    return Principal(
        name=owner.name,
        role=Role(token.role),
        token_id=token.id,
        model_scope=token.model_scope,
        expires_at=token.expires_at,
        kind=owner.kind,
        token_name=token.name,
    )


def principal_for(
    session: Session, *, actor: Principal, name: str, kind: str | None
) -> PrincipalRecord:
    """The principal called ``name``, created (``kind``, default person) if new.

    An existing principal of another kind than the one asked is a 409: a person's name
    given to a CI job (or the reverse) is a mistake to fix, not to paper over.
    """
    existing = repository.principal_by_name(session, name)
    if existing is None:
        repository.insert_principal_if_absent(
            session, name=name, kind=kind or "person", created_by=actor.name, created_at=utcnow()
        )
        existing = repository.principal_by_name(session, name)
        assert existing is not None  # inserted now, or by a concurrent request
    if kind is not None and existing.kind != kind:
        raise PrincipalKindConflict(
            f"principal {name!r} exists as a {existing.kind}, not a {kind}; "
            f"leave principal_kind out or give another principal name"
        )
    return existing


def create_token(
    session: Session,
    *,
    actor: Principal,
    name: str,
    role: Role,
    model_scope: str | None = None,
    expires_in_days: int | None = None,
    secret: str | None = None,
    principal: str | None = None,
    principal_kind: str | None = None,
) -> tuple[ApiToken, str]:
    """Store a new token of ``principal`` (default: a principal named like the token,
    created if new) and return it with its secret (the only time the secret exists)."""
    if actor.model_scope is not None:
        raise Forbidden("a model-scoped token cannot create tokens")
    owner = principal_for(session, actor=actor, name=principal or name, kind=principal_kind)
    secret = secret or new_secret()
    now = utcnow()
    token = ApiToken(
        id=secrets.token_hex(8),
        name=name,
        principal_id=owner.id,
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
            "principal": owner.name,
            "principal_kind": owner.kind,
            "role": role.value,
            "model_scope": model_scope,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        },
    )
    return token, secret


def list_tokens(
    session: Session, *, after_id: str | None, limit: int
) -> list[tuple[ApiToken, PrincipalRecord]]:
    return list(repository.page(session, after_id=after_id, limit=limit))


def list_principals(
    session: Session, *, after_name: str | None, limit: int
) -> list[tuple[PrincipalRecord, list[str]]]:
    """Principals by name, each with the roles it holds through active tokens."""
    rows = list(repository.principals_page(session, after_name=after_name, limit=limit))
    roles = repository.active_roles(session, [p.id for p in rows], now=utcnow())
    return [(p, roles.get(p.id, [])) for p in rows]


def principal_of(session: Session, token: ApiToken) -> PrincipalRecord:
    return repository.principal_by_id(session, token.principal_id)


def _check_last_admin(session: Session, token: ApiToken) -> None:
    """Refuse to revoke what keeps the deployment administrable (docs/authorization.md)."""
    now = utcnow()
    if token.role != Role.ADMIN.value:
        return
    if token.expires_at is not None and token.expires_at <= now:
        return  # already expired: revoking it changes nothing
    active = repository.lock_active_admin_tokens(session, now=now)
    others = [t for t in active if t.id != token.id]
    owner = principal_of(session, token).name
    if not others:
        raise LastAdmin(
            f"token {token.id} is the last active admin token (principal {owner!r}); "
            "revoking it would leave no one able to administer Modelgate. Create another "
            "admin token first; `modelgate tokens create --bootstrap` is the way back "
            "if every admin token is lost."
        )
    if token.expires_at is None and all(t.expires_at is not None for t in others):
        last = max(t.expires_at for t in others if t.expires_at is not None)
        raise LastAdmin(
            f"token {token.id} (principal {owner!r}) is the last admin token that does not "
            f"expire; every other admin token expires by {last.isoformat()}, after which no "
            "one could administer Modelgate. Create an admin token without an expiry first."
        )


def revoke_token(session: Session, *, actor: Principal, token_id: str) -> ApiToken:
    """Revoke a token; refused (409) when it would break the last-admin rule."""
    token = repository.by_id(session, token_id)
    if token is None:
        raise TokenNotFound(f"no token with id {token_id!r}")
    if token.role == Role.ADMIN.value and token.revoked_at is None:
        # The admin rows first, in id order, then this one: the lock order of every
        # revocation, so concurrent ones serialise and see each other's result.
        _check_last_admin(session, token)
    token = repository.by_id(session, token_id, for_update=True)
    assert token is not None  # tokens are never deleted
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        token.revoked_by = actor.name
        audit.record(
            session,
            actor=actor,
            action=AuditAction.TOKEN_REVOKED,
            details={
                "token_id": token.id,
                "name": token.name,
                "principal": principal_of(session, token).name,
                "role": token.role,
            },
        )
        # Dropped now and again once the revocation committed: a request of this process
        # that read the token before the commit may have put it back in between.
        revoked_id = token.id
        forget_everywhere(revoked_id)
        defer(session, lambda: forget_everywhere(revoked_id))
    return token


def ensure_bootstrap_admin(session: Session, *, secret: str) -> bool:
    """Create an admin token with the given secret unless an active admin token exists."""
    if repository.any_active_admin(session, now=utcnow()):
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
    return repository.any_active_admin(session, now=utcnow())
