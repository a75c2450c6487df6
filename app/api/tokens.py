"""Routes for API tokens (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.api.deps import Admin, UowDep, require_unscoped
from app.api.problems import responses
from app.auth import service
from app.auth.roles import Role
from app.auth.schemas import TokenCreate, TokenCreated, TokenRead
from app.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor
from app.registry.schemas import Page

router = APIRouter(prefix="/tokens", tags=["tokens"])


@router.post(
    "",
    status_code=201,
    response_model=TokenCreated,
    responses=responses(400, 401, 403, 413, 422, 503),
)
def create_token(body: TokenCreate, uow: UowDep, principal: Admin) -> TokenCreated:
    """Create a token. The secret is in this answer only; store it now."""
    require_unscoped(principal)
    token, secret = service.create_token(
        uow.session,
        actor=principal,
        name=body.name,
        role=Role(body.role),
        model_scope=body.model_scope,
        expires_in_days=body.expires_in_days,
    )
    return TokenCreated(**TokenRead.model_validate(token).model_dump(), token=secret)


@router.get("", response_model=Page[TokenRead], responses=responses(400, 401, 403, 422, 503))
def list_tokens(
    uow: UowDep,
    principal: Admin,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[TokenRead]:
    """List tokens (never their secrets)."""
    require_unscoped(principal)
    after = decode_cursor(cursor, arity=1, kinds=(str,))
    rows = service.list_tokens(
        uow.session, after_id=str(after[0]) if after else None, limit=limit + 1
    )
    page = rows[:limit]
    return Page[TokenRead](
        items=[TokenRead.model_validate(t) for t in page],
        next_cursor=encode_cursor([page[-1].id]) if len(rows) > limit else None,
    )


@router.delete(
    "/{token_id}", response_model=TokenRead, responses=responses(401, 403, 404, 422, 503)
)
def revoke_token(
    token_id: Annotated[str, Path(max_length=32, pattern=r"^[0-9a-f]+$")],
    uow: UowDep,
    principal: Admin,
) -> TokenRead:
    """Revoke a token; it stops working at once, on every server process."""
    require_unscoped(principal)
    return TokenRead.model_validate(
        service.revoke_token(uow.session, actor=principal, token_id=token_id)
    )
