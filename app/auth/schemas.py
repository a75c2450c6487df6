"""Token and principal payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.auth.roles import Role
from app.registry.schemas import ModelName
from app.schemas import Strict

TokenName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\w.@:/ -]+$")]
PrincipalKind = Literal["person", "service"]


class TokenCreate(Strict):
    name: TokenName = Field(description="A label for the token (where or what it is for).")
    role: Role
    principal: TokenName | None = Field(
        default=None,
        description=(
            "Who holds the token: a person or a service account, unique by name; created "
            "if new. Approvals and the audit log use it. Default: the token's name."
        ),
    )
    principal_kind: PrincipalKind | None = Field(
        default=None,
        description=(
            "The principal's kind. New principals default to person; naming an existing "
            "principal with another kind is a 409 (principal-kind-conflict)."
        ),
    )
    model_scope: ModelName | None = Field(
        default=None, description="Restrict the token to one model's endpoints."
    )
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    principal: str
    principal_kind: PrincipalKind
    role: Role
    model_scope: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenRead):
    token: str = Field(description="The secret. Shown once; only its hash is stored.")


class PrincipalRead(BaseModel):
    name: str
    kind: PrincipalKind
    created_by: str
    created_at: datetime
    active_roles: list[Role] = Field(
        description="The roles it holds through tokens neither revoked nor expired."
    )
