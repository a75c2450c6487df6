"""Payloads of the serving plan and of aliases."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from app.registry.models import Stage
from app.schemas import Strict

ALIAS_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
"""An alias name is a slug: lower-case letters, digits and inner hyphens, up to 64."""

AliasName = Annotated[str, StringConstraints(pattern=ALIAS_PATTERN)]


class PlanArtifact(BaseModel):
    """Where a serving process gets a version's bytes, and how it checks them."""

    sha256: str | None = Field(description="Hex digest; null while the version has no artifact.")
    size: int | None
    media_type: str | None
    download_path: str = Field(
        description="Path under the server's base URL (GET, with the same token); the "
        "server streams the bytes or redirects to a presigned URL."
    )


class PlanVersion(BaseModel):
    version: int
    stage: Stage
    artifact: PlanArtifact


class PlanRoute(PlanVersion):
    weight: float = Field(description="Percent of the requests this version takes (0-100).")


class PlanShadow(PlanVersion):
    share: float = Field(description="Percent of the requests this version also scores (0-100).")


class PlanAlias(PlanVersion):
    name: str


class ServingPlan(BaseModel):
    """What serves a model now. ``revision`` grows by one on every change that affects
    serving; it is also the response's ``ETag``."""

    model: str
    revision: int
    production: PlanVersion | None
    routes: list[PlanRoute]
    shadows: list[PlanShadow]
    aliases: list[PlanAlias]


class ServingPlans(BaseModel):
    """The plans newer than the revisions a watcher of many models gave."""

    plans: list[ServingPlan]


class AliasSet(Strict):
    version: int = Field(ge=1, le=2_000_000_000)
    reason: str | None = Field(default=None, max_length=2000)


class AliasRead(BaseModel):
    model: str
    name: str
    version: int
    stage: Stage
    updated_by: str
    updated_at: datetime
    created_by: str
    created_at: datetime


class AliasAt(BaseModel):
    """Where an alias pointed at a past time, and since when."""

    alias: str
    version: int
    since: datetime = Field(description="When the alias was set to this version.")
    actor: str = Field(description="Who set it there.")


class AliasMoveRead(BaseModel):
    """One entry of the alias history: set (``from_version`` null), moved, or removed
    (``to_version`` null)."""

    id: int
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str | None
    promotion_id: int | None
    revision: int
    occurred_at: datetime
