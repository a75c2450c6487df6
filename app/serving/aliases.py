"""Aliases: named pointers to versions (``champion``, ``challenger``), beside the stages.

The public functions here are the alias service other features build on (the MLflow
adapter's ``set/delete/get model version by alias`` among them):

- :func:`list_aliases`, :func:`get_alias`, :func:`resolve` read;
- :func:`set_alias` and :func:`delete_alias` move, always through the transition core
  (:func:`app.promotion.transitions.move` with an ``AliasPointer``): locked, checked
  against the alias's policy, audited (from, to, who, why), published as an event
  (``alias.moved`` / ``alias.removed``), kept in the alias history and bumping the
  model's serving revision, all in the caller's transaction;
- :func:`history` pages through the moves, newest first.

An alias on a version that is later archived stays valid. A version an alias points at
cannot be deleted (the foreign key refuses it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from app import pagination
from app.auth.roles import Principal
from app.errors import AliasNotFound, ValidationFailed
from app.registry import service as registry
from app.registry.models import ModelVersion, RegisteredModel, Stage
from app.registry.schemas import Page
from app.serving import repository
from app.serving.models import AliasMove, ModelAlias
from app.serving.schemas import ALIAS_PATTERN, AliasAt, AliasMoveRead, AliasRead
from app.storage.base import ArtifactStore

if TYPE_CHECKING:
    from app.promotion.transitions import Moved

import re

_SLUG = re.compile(ALIAS_PATTERN)


def check_name(name: str) -> str:
    """The alias name if it is a slug; a 422 problem otherwise."""
    if not _SLUG.fullmatch(name):
        raise ValidationFailed(
            f"alias {name!r} is not a slug (lower-case letters, digits and inner hyphens, "
            "at most 64 characters)",
            errors=[{"loc": ["path", "alias"], "msg": "not a slug"}],
        )
    return name


def _read(model_name: str, alias: ModelAlias, stage: str) -> AliasRead:
    return AliasRead(
        model=model_name, name=alias.name, version=alias.version, stage=Stage(stage),
        updated_by=alias.updated_by, updated_at=alias.updated_at,
        created_by=alias.created_by, created_at=alias.created_at,
    )  # fmt: skip


def list_aliases(session: Session, *, model_name: str) -> list[AliasRead]:
    """Every alias of the model, by name."""
    model = registry.get_model(session, model_name)
    rows = repository.aliases(session, model.id)
    stages = {v.id: v.stage for v in repository.plan_versions(session, model.id)}
    return [_read(model.name, a, stages[a.version_id]) for a in rows]


def get_alias(session: Session, *, model_name: str, alias: str) -> AliasRead:
    model = registry.get_model(session, model_name)
    found = repository.alias(session, model.id, check_name(alias))
    if found is None:
        raise AliasNotFound(f"model {model_name!r} has no alias {alias!r}")
    _, version = registry.get_version(session, model_name, found.version)
    return _read(model.name, found, version.stage)


def resolve(session: Session, *, model_name: str, alias: str) -> int:
    """The version number ``alias`` points at (404 alias-not-found otherwise)."""
    model = registry.get_model(session, model_name)
    found = repository.alias(session, model.id, check_name(alias))
    if found is None:
        raise AliasNotFound(f"model {model_name!r} has no alias {alias!r}")
    return found.version


def aliases_by_version(session: Session, version_ids: Sequence[int]) -> dict[int, list[str]]:
    """Alias names per version id, for showing aliases on versions."""
    return repository.aliases_of_versions(session, version_ids)


def of_models(session: Session, model_names: Sequence[str]) -> dict[str, dict[str, int]]:
    """``{alias: version}`` per model, for showing aliases on lists of models."""
    return repository.aliases_of_models(session, model_names)


def names_by_version(session: Session, model_name: str) -> dict[int, list[str]]:
    """Alias names per version number of one model (for lists of its versions)."""
    found: dict[int, list[str]] = {}
    for pointers in of_models(session, [model_name]).values():
        for alias, version in pointers.items():
            found.setdefault(version, []).append(alias)
    return found


def set_alias(
    session: Session, *, actor: Principal, model_name: str, alias: str, version: int,
    reason: str | None, store: ArtifactStore | None = None,
) -> AliasRead:  # fmt: skip
    """Point ``alias`` at ``version`` (creating it), through the transition core: the
    alias's policy, if any, is checked first (:func:`app.serving.alias_policy.check`;
    a protected alias that needs approvals raises ``AliasNeedsApproval`` after recording
    a promotion request, which the caller commits when ``keep_changes`` says so)."""
    from app.promotion import transitions
    from app.serving import alias_policy

    check_name(alias)
    loaded = transitions.load_for_alias(session, model_name=model_name, number=version)
    alias_policy.check(session, actor=actor, loaded=loaded, alias=alias, store=store, reason=reason)
    current = repository.alias(session, loaded.model.id, alias, for_update=True)
    if current is not None and current.version_id == loaded.version.id:
        return _read(loaded.model.name, current, loaded.version.stage)  # already there
    transitions.move(
        session, actor=actor, loaded=loaded,
        change=transitions.Move(pointer=transitions.AliasPointer(alias), version=loaded.version,
                                via="alias", reason=reason),
    )  # fmt: skip
    found = repository.alias(session, loaded.model.id, alias)
    assert found is not None
    return _read(loaded.model.name, found, loaded.version.stage)


def delete_alias(
    session: Session, *, actor: Principal, model_name: str, alias: str, reason: str | None
) -> None:
    """Remove ``alias`` (404 if there is none), through the transition core; its history
    stays. A protected alias is removed only by whoever may change the policy (admin)."""
    from app.promotion import transitions
    from app.serving import alias_policy

    check_name(alias)
    model = registry.lock_model(session, model_name)
    current = repository.alias(session, model.id, alias, for_update=True)
    if current is None:
        raise AliasNotFound(f"model {model_name!r} has no alias {alias!r}")
    loaded = transitions.load_for_alias(session, model_name=model_name, number=current.version)
    alias_policy.check_removal(actor=actor, loaded=loaded, alias=alias)
    transitions.move(
        session, actor=actor, loaded=loaded,
        change=transitions.Move(pointer=transitions.AliasPointer(alias, remove=True),
                                version=loaded.version, via="alias", reason=reason),
    )  # fmt: skip


def history(
    session: Session, *, model_name: str, alias: str | None, cursor: str | None, limit: int
) -> Page[AliasMoveRead]:
    """The moves of the model's aliases (or of one), newest first."""
    model = registry.get_model(session, model_name)
    rows = repository.history(
        session, model.id, check_name(alias) if alias else None,
        before_id=pagination.after(cursor, int), limit=limit + 1,
    )  # fmt: skip
    page, next_cursor = pagination.split_page(rows, limit, lambda r: [r.id])
    return Page[AliasMoveRead](
        items=[AliasMoveRead.model_validate(r, from_attributes=True) for r in page],
        next_cursor=next_cursor,
    )


def aliases_at(session: Session, *, model: RegisteredModel, at: datetime) -> list[AliasAt]:
    """Where each of the model's aliases pointed at ``at`` (from the alias history;
    an alias removed by then is absent), by name."""
    current: dict[str, AliasMove] = {}
    for move in repository.moves_until(session, model.id, at):
        if move.to_version is None:
            current.pop(move.alias, None)
        else:
            current[move.alias] = move
    return [
        AliasAt(alias=name, version=move.to_version, since=move.occurred_at, actor=move.actor)
        for name, move in sorted(current.items())
        if move.to_version is not None
    ]


# Called by the transition core only ------------------------------------------------------


def point(
    session: Session, *, actor: Principal, model: RegisteredModel, name: str,
    version: ModelVersion | None, now: datetime,
) -> int | None:  # fmt: skip
    """Set the alias row to ``version`` (None: delete it); returns the version it pointed
    at before. Only :func:`app.promotion.transitions.move` calls this."""
    current = repository.alias(session, model.id, name, for_update=True)
    before = current.version if current is not None else None
    if version is None:
        if current is not None:
            repository.delete(session, current)
    elif current is None:
        repository.add(
            session,
            ModelAlias(model_id=model.id, name=name, version_id=version.id,
                       version=version.version, created_by=actor.name, created_at=now,
                       updated_by=actor.name, updated_at=now),
        )  # fmt: skip
    else:
        current.version_id = version.id
        current.version = version.version
        current.updated_by = actor.name
        current.updated_at = now
    session.flush()
    return before


def record_move(
    session: Session, *, actor: Principal, moved: Moved, name: str, to_version: int | None,
    revision: int,
) -> None:  # fmt: skip
    """Append the move to the alias history (the transition core calls this)."""
    repository.add(
        session,
        AliasMove(model_id=moved.model.id, alias=name, from_version=moved.from_version,
                  to_version=to_version, actor=actor.name, reason=moved.move.reason,
                  promotion_id=moved.move.promotion_id, revision=revision,
                  occurred_at=moved.at),
    )  # fmt: skip
