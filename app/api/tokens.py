"""Routes for API tokens and the principals that hold them (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app import pagination
from app.api.deps import Admin, UowDep, require_unscoped
from app.api.problems import responses
from app.auth import service
from app.auth.models import ApiToken, PrincipalRecord
from app.auth.roles import Role
from app.auth.schemas import PrincipalRead, TokenCreate, TokenCreated, TokenRead
from app.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.registry.schemas import Page

router = APIRouter(prefix="/tokens", tags=["tokens"])
principals_router = APIRouter(prefix="/principals", tags=["tokens"])


def _read(token: ApiToken, owner: PrincipalRecord) -> TokenRead:
    return TokenRead(
        id=token.id,
        name=token.name,
        principal=owner.name,
        principal_kind=owner.kind,
        role=Role(token.role),
        model_scope=token.model_scope,
        created_by=token.created_by,
        created_at=token.created_at,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
    )


@router.post(
    "",
    status_code=201,
    response_model=TokenCreated,
    responses=responses(400, 401, 403, 409, 413, 422, 503),
)
def create_token(body: TokenCreate, uow: UowDep, principal: Admin) -> TokenCreated:
    """Create a token for a principal (created if new). The secret is in this answer
    only; store it now."""
    require_unscoped(principal)
    token, secret = service.create_token(
        uow.session,
        actor=principal,
        name=body.name,
        role=Role(body.role),
        model_scope=body.model_scope,
        expires_in_days=body.expires_in_days,
        principal=body.principal,
        principal_kind=body.principal_kind,
    )
    owner = service.principal_of(uow.session, token)
    return TokenCreated(**_read(token, owner).model_dump(), token=secret)


@router.get("", response_model=Page[TokenRead], responses=responses(400, 401, 403, 422, 503))
def list_tokens(
    uow: UowDep,
    principal: Admin,
    cursor: Annotated[str | None, Query(description="Opaque: a next_cursor, as given.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[TokenRead]:
    """List tokens (never their secrets)."""
    require_unscoped(principal)
    rows = service.list_tokens(uow.session, after_id=pagination.after(cursor, str), limit=limit + 1)
    page, next_cursor = pagination.split_page(rows, limit, lambda row: [row[0].id])
    return Page[TokenRead](items=[_read(t, p) for t, p in page], next_cursor=next_cursor)


@router.delete(
    "/{token_id}", response_model=TokenRead, responses=responses(401, 403, 404, 409, 422, 503)
)
def revoke_token(
    token_id: Annotated[str, Path(max_length=32, pattern=r"^[0-9a-f]+$")],
    uow: UowDep,
    principal: Admin,
) -> TokenRead:
    """Revoke a token; it stops working at once, on every server process. Refused (409
    `last-admin`) for the last active admin token, or the last that does not expire."""
    require_unscoped(principal)
    token = service.revoke_token(uow.session, actor=principal, token_id=token_id)
    return _read(token, service.principal_of(uow.session, token))


@principals_router.get(
    "", response_model=Page[PrincipalRead], responses=responses(400, 401, 403, 422, 503)
)
def list_principals(
    uow: UowDep,
    principal: Admin,
    cursor: Annotated[str | None, Query(description="Opaque: a next_cursor, as given.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[PrincipalRead]:
    """List principals (people and service accounts) with the roles their active tokens hold."""
    require_unscoped(principal)
    rows = service.list_principals(
        uow.session, after_name=pagination.after(cursor, str), limit=limit + 1
    )
    page, next_cursor = pagination.split_page(rows, limit, lambda row: [row[0].name])
    return Page[PrincipalRead](
        items=[
            PrincipalRead(
                name=p.name,
                kind=p.kind,
                created_by=p.created_by,
                created_at=p.created_at,
                active_roles=[Role(r) for r in roles],
            )
            for p, roles in page
        ],
        next_cursor=next_cursor,
    )
