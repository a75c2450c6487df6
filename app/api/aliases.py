"""Alias routes: list, read, set, remove, history; versions read by alias (``@name``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import RedirectResponse

from app.api.deps import ModelPath, ModelReader, ModelSubmitter, StoreDep, UowDep
from app.api.problems import responses
from app.errors import AliasNeedsApproval
from app.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.registry import service as registry
from app.registry.schemas import Page, VersionRead
from app.serving import aliases
from app.serving.schemas import ALIAS_PATTERN, AliasMoveRead, AliasRead, AliasSet

router = APIRouter(prefix="/models/{model}", tags=["aliases"])

AliasPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=ALIAS_PATTERN,
        description="The alias's name: a slug (lower-case letters, digits, inner hyphens).",
    ),
]


@router.get(
    "/aliases", response_model=list[AliasRead], responses=responses(401, 403, 404, 422, 503)
)
def list_aliases(model: ModelPath, uow: UowDep, principal: ModelReader) -> list[AliasRead]:
    """Every alias of the model and the version it points at."""
    return aliases.list_aliases(uow.session, model_name=model)


@router.get(
    "/aliases/{alias}", response_model=AliasRead, responses=responses(401, 403, 404, 422, 503)
)
def read_alias(
    model: ModelPath, alias: AliasPath, uow: UowDep, principal: ModelReader
) -> AliasRead:
    """One alias and the version it points at."""
    return aliases.get_alias(uow.session, model_name=model, alias=alias)


@router.put(
    "/aliases/{alias}",
    response_model=AliasRead,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def set_alias(
    model: ModelPath, alias: AliasPath, body: AliasSet, uow: UowDep, principal: ModelSubmitter,
    store: StoreDep,
) -> AliasRead:  # fmt: skip
    """Point the alias at a version (creating it). Audited, published as `alias.moved`,
    and a new serving revision.

    A protected alias moves only when its policy's gates pass (422 `alias-gates-failed`
    otherwise). When its policy also asks for approvals, the answer is 409
    `alias-needs-approval` with the `promotion_id` of a pending promotion request whose
    target is the alias (recorded now, or the one already pending for this version);
    reviewers approve it under `/promotions/{id}/approve` and the alias then moves."""
    try:
        return aliases.set_alias(
            uow.session, actor=principal, model_name=model, alias=alias, version=body.version,
            reason=body.reason, store=store,
        )  # fmt: skip
    except AliasNeedsApproval as refused:
        if refused.keep_changes:
            uow.commit()  # the promotion request stays; the answer is still the refusal
        raise


@router.delete("/aliases/{alias}", status_code=204, responses=responses(401, 403, 404, 422, 503))
def delete_alias(
    model: ModelPath, alias: AliasPath, uow: UowDep, principal: ModelSubmitter,
    reason: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:  # fmt: skip
    """Remove the alias (its history stays). Audited and published as `alias.removed`."""
    aliases.delete_alias(uow.session, actor=principal, model_name=model, alias=alias, reason=reason)
    return Response(status_code=204)


@router.get(
    "/aliases/{alias}/history",
    response_model=Page[AliasMoveRead],
    responses=responses(401, 403, 404, 422, 503),
)
def alias_history(
    model: ModelPath, alias: AliasPath, uow: UowDep, principal: ModelReader,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[AliasMoveRead]:  # fmt: skip
    """Every move of the alias, newest first: from, to, who, why, the serving revision."""
    return aliases.history(uow.session, model_name=model, alias=alias, cursor=cursor, limit=limit)


@router.get(
    "/versions/@{alias}", response_model=VersionRead, responses=responses(401, 403, 404, 422, 503)
)
def read_version_by_alias(
    model: ModelPath, alias: AliasPath, uow: UowDep, principal: ModelReader
) -> VersionRead:
    """The version the alias points at (as `GET .../versions/{version}`)."""
    number = aliases.resolve(uow.session, model_name=model, alias=alias)
    m, v = registry.get_version(uow.session, model, number)
    read = registry.to_version_read(m.name, v)
    read.aliases = aliases.aliases_by_version(uow.session, [v.id]).get(v.id, [])
    return read


@router.get(
    "/versions/@{alias}/artifact",
    status_code=307,
    response_class=RedirectResponse,
    responses=responses(401, 403, 404, 422, 503),
)
def artifact_by_alias(
    model: ModelPath, alias: AliasPath, uow: UowDep, principal: ModelReader, request: Request
) -> RedirectResponse:
    """Redirect to the artifact of the version the alias points at now."""
    number = aliases.resolve(uow.session, model_name=model, alias=alias)
    url = request.url.path.replace(f"/versions/@{alias}/", f"/versions/{number}/")
    return RedirectResponse(url, status_code=307)
