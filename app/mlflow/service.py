"""Translation between MLflow's registry API and Modelgate's registry and promotion services.

Functions here take MLflow's arguments, call the public services (never their
repositories) and return MLflow's JSON shapes. Domain errors propagate as ``AppError``;
MLflow-only refusals are :class:`MlflowApiError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.auth.roles import Principal
from app.errors import AliasGatesFailed, AliasNotFound, ModelNotFound, TransitionNotAllowed
from app.mlflow import repository, search
from app.mlflow.errors import MlflowApiError, invalid, not_found
from app.mlflow.models import MlflowVersion, Registration
from app.pagination import MAX_LIMIT
from app.promotion import operations, requests
from app.promotion.schemas import PromotionCreate, PromotionRead
from app.registry import service as registry
from app.registry.models import Stage
from app.registry.schemas import ModelCreate, ModelRead, ModelUpdate, VersionRead
from app.serving import aliases as serving_aliases
from app.serving.schemas import ALIAS_PATTERN

STAGE_TO_MLFLOW = {
    Stage.CANDIDATE.value: "None",
    Stage.STAGING.value: "Staging",
    Stage.PRODUCTION.value: "Production",
    Stage.ARCHIVED.value: "Archived",
}
MLFLOW_TO_STAGE = {v.lower(): Stage(k) for k, v in STAGE_TO_MLFLOW.items()}
MAX_RESULTS_LIMIT = 1000
MAX_VERSION_RESULTS = 200_000  # MLflow's own bounds: 1,000 models, 200,000 versions a page

# Model names MLflow allows but Modelgate's paths do not.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ALIAS = re.compile(ALIAS_PATTERN)
# Alias names MLflow itself reserves: they read as version references in models:/ URIs.
_RESERVED_ALIAS = re.compile(r"^[vV]\d+$")
_MLFLOW_ALIAS = re.compile(r"^[\w-]+$")


def millis(moment: datetime | None) -> int | None:
    return int(moment.timestamp() * 1000) if moment is not None else None


def tag_list(tags: dict[str, Any]) -> list[dict[str, str]]:
    return [{"key": k, "value": str(v)} for k, v in sorted(tags.items())]


def tags_from(items: Any, where: str) -> dict[str, str]:
    """MLflow's ``[{"key", "value"}]`` list as a dict; INVALID_PARAMETER_VALUE if malformed."""
    if items is None:
        return {}
    if not isinstance(items, list):
        raise invalid(f"{where} must be a list of {{key, value}}")
    tags: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise invalid(f"{where}: every tag needs a string key")
        value = item.get("value", "")
        tags[item["key"]] = "" if value is None else str(value)
    return tags


def check_name(name: Any, field: str = "name") -> str:
    if not isinstance(name, str) or not name:
        raise invalid(f"Missing value for required parameter '{field}'.")
    if len(name) > 128 or not _NAME.match(name):
        raise invalid(
            f"Modelgate model names are 1-128 letters, digits, '.', '_' or '-', starting "
            f"with a letter or digit; {name!r} is not one"
        )
    return name


def parse_version(value: Any) -> int:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        raise invalid(f"version must be an integer, got {value!r}") from None
    if number < 1 or number > 2_000_000_000:
        raise invalid(f"version must be a positive integer, got {value!r}")
    return number


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts)


# Registered models -------------------------------------------------------------------------


def model_json(session: Session, model: ModelRead, *, with_latest: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": model.name,
        "creation_timestamp": millis(model.created_at),
        "last_updated_timestamp": millis(model.updated_at),
        "user_id": model.created_by,
        "description": model.description,
        "tags": tag_list(model.tags),
        "aliases": [
            {"alias": a.name, "version": str(a.version)}
            for a in serving_aliases.list_aliases(session, model_name=model.name)
        ],
    }
    if with_latest:
        out["latest_versions"] = latest_versions(session, model.name, None)
    return out


def create_model(
    session: Session, *, actor: Principal, name: Any, description: Any, tags: Any
) -> dict[str, Any]:
    name = check_name(name)
    if actor.model_scope is not None and actor.model_scope != name:
        raise MlflowApiError(
            "PERMISSION_DENIED", f"this token is limited to model {actor.model_scope!r}"
        )
    try:
        data = ModelCreate(
            name=name,
            description=description or "",
            tags=tags_from(tags, "tags"),
        )
    except ValidationError as exc:
        raise invalid(validation_message(exc)) from None
    registry.create_model(session, actor=actor, data=data)
    return {"registered_model": model_json(session, registry.read_model(session, name))}


def get_model(session: Session, name: str) -> dict[str, Any]:
    return {"registered_model": model_json(session, registry.read_model(session, name))}


def update_model(
    session: Session,
    *,
    actor: Principal,
    name: str,
    description: Any = None,
    set_tags: dict[str, str] | None = None,
    delete_tag: str | None = None,
) -> dict[str, Any]:
    current = registry.read_model(session, name)
    fields: dict[str, Any] = {}
    if description is not None:
        fields["description"] = str(description)
    if set_tags is not None or delete_tag is not None:
        tags = {k: str(v) for k, v in current.tags.items()}
        tags.update(set_tags or {})
        if delete_tag is not None:
            if delete_tag not in tags:
                raise not_found(f"model {name!r} has no tag {delete_tag!r}")
            del tags[delete_tag]
        fields["tags"] = tags
    try:
        data = ModelUpdate(**fields)
    except ValidationError as exc:
        raise invalid(validation_message(exc)) from None
    registry.update_model(session, actor=actor, name=name, data=data)
    return {"registered_model": model_json(session, registry.read_model(session, name))}


def _all_models(session: Session, only_name: str | None) -> Iterator[ModelRead]:
    cursor: str | None = None
    while True:
        page = registry.list_models(session, cursor=cursor, limit=MAX_LIMIT, only_name=only_name)
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _max_results(value: Any, default: int, maximum: int = MAX_RESULTS_LIMIT) -> int:
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise invalid(f"max_results must be an integer, got {value!r}") from None
    if n < 1 or n > maximum:
        raise invalid(f"max_results must be between 1 and {maximum}, got {n}")
    return n


def search_models(session: Session, *, actor: Principal, call: search.SearchCall) -> dict[str, Any]:
    comparisons = search.parse_filter(call.filter_string)
    limit = _max_results(call.max_results, 100)
    offset = search.page_token_offset(call.page_token)
    rows = []
    for model in _all_models(session, actor.model_scope):
        fields = {"name": model.name, "description": model.description}
        if search.matches(comparisons, fields, model.tags):
            rows.append(
                {
                    "model": model,
                    "name": model.name,
                    "creation_timestamp": millis(model.created_at),
                    "last_updated_timestamp": millis(model.updated_at),
                }
            )
    ordered = search.sort(
        rows,
        call.order_by,
        allowed={
            "name": "name",
            "creation_timestamp": "creation_timestamp",
            "timestamp": "creation_timestamp",
            "last_updated_timestamp": "last_updated_timestamp",
        },
        default=[("name", False)],
    )
    return search.page(
        ordered,
        offset=offset,
        limit=limit,
        key="registered_models",
        render=lambda r: model_json(session, r["model"]),
    )


# Model versions ----------------------------------------------------------------------------


def version_json(
    read: VersionRead, row: MlflowVersion | None, aliases: list[str] | None = None
) -> dict[str, Any]:
    """MLflow's ModelVersion. Versions made through /api/v1 have no MLflow row: they read
    as READY, with their Modelgate artifact as source and the training run as run_id."""
    out: dict[str, Any] = {
        "name": read.model,
        "version": str(read.version),
        "creation_timestamp": millis(read.created_at),
        "last_updated_timestamp": millis(read.updated_at),
        "user_id": read.created_by,
        "current_stage": STAGE_TO_MLFLOW[read.stage.value],
        "description": read.description,
        "tags": tag_list(read.tags),
        "aliases": sorted(aliases or []),
    }
    if row is not None:
        out["source"] = row.source
        out["status"] = row.status
        if row.status_message:
            out["status_message"] = row.status_message
        if row.run_id:
            out["run_id"] = row.run_id
        if row.run_link:
            out["run_link"] = row.run_link
        if row.logged_model_id:
            out["model_id"] = row.logged_model_id
    else:
        out["source"] = f"modelgate:/models/{read.model}/versions/{read.version}"
        out["status"] = Registration.READY.value
        run_id = read.lineage.get("training_run_id") if isinstance(read.lineage, dict) else None
        if run_id:
            out["run_id"] = str(run_id)
    return out


def aliases_by_number(session: Session, name: str) -> dict[int, list[str]]:
    """The model's alias names per version number."""
    out: dict[int, list[str]] = {}
    for alias in serving_aliases.list_aliases(session, model_name=name):
        out.setdefault(alias.version, []).append(alias.name)
    return out


def get_version(session: Session, name: str, number: int) -> dict[str, Any]:
    model, version = registry.get_version(session, name, number)
    read = registry.to_version_read(model.name, version)
    row = repository.get(session, version.id)
    aliases = aliases_by_number(session, model.name).get(number)
    return {"model_version": version_json(read, row, aliases)}


def _versions_json(session: Session, name: str, reads: list[VersionRead]) -> list[dict[str, Any]]:
    if not reads:
        return []
    model = registry.get_model(session, name)
    rows = repository.by_number(session, model.id, [r.version for r in reads])
    aliases = aliases_by_number(session, name)
    return [version_json(r, rows.get(r.version), aliases.get(r.version)) for r in reads]


def latest_versions(session: Session, name: str, stages: list[str] | None) -> list[dict[str, Any]]:
    """The newest version in each asked stage (all four when none is asked)."""
    wanted: list[Stage] = []
    for stage in stages or list(STAGE_TO_MLFLOW.values()):
        found = MLFLOW_TO_STAGE.get(str(stage).lower())
        if found is None:
            raise invalid(f"invalid stage {stage!r}: one of None, Staging, Production, Archived")
        wanted.append(found)
    reads: list[VersionRead] = []
    for stage in wanted:
        page = registry.versions_in_stage(
            session, model_name=name, stage=stage, cursor=None, limit=1
        )
        reads.extend(page.items)
    reads.sort(key=lambda r: r.version)
    return _versions_json(session, name, reads)


def _all_versions(session: Session, name: str) -> Iterator[VersionRead]:
    cursor: str | None = None
    while True:
        page = registry.list_versions(
            session, model_name=name, stage=None, order_by="-version", dataset=None,
            cursor=cursor, limit=MAX_LIMIT,
        )  # fmt: skip
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def search_versions(
    session: Session, *, actor: Principal, call: search.SearchCall
) -> dict[str, Any]:
    comparisons = search.parse_filter(call.filter_string)
    limit = _max_results(call.max_results, 10_000, MAX_VERSION_RESULTS)
    offset = search.page_token_offset(call.page_token)
    names = [c.value for c in comparisons if c.field == "name" and c.op == "="]
    if names:
        model_names = [str(names[0])]
        if actor.model_scope is not None and actor.model_scope != model_names[0]:
            model_names = []
    else:
        model_names = [m.name for m in _all_models(session, actor.model_scope)]
    rows: list[dict[str, Any]] = []
    for name in model_names:
        try:
            model = registry.get_model(session, name)
        except ModelNotFound:  # a name filter naming no model matches nothing
            continue
        reads = list(_all_versions(session, name))
        mlflow_rows = repository.by_number(session, model.id, [r.version for r in reads])
        aliases = aliases_by_number(session, name)
        for read in reads:
            js = version_json(read, mlflow_rows.get(read.version), aliases.get(read.version))
            fields = {
                "name": read.model,
                "version_number": read.version,
                "run_id": js.get("run_id"),
                "source_path": js.get("source"),
                "current_stage": js["current_stage"],
                "description": read.description,
            }
            if search.matches(comparisons, fields, read.tags):
                rows.append(
                    {
                        "json": js,
                        "name": read.model,
                        "version_number": read.version,
                        "creation_timestamp": js["creation_timestamp"],
                        "last_updated_timestamp": js["last_updated_timestamp"],
                    }
                )
    ordered = search.sort(
        rows,
        call.order_by,
        allowed={
            "name": "name",
            "version_number": "version_number",
            "creation_timestamp": "creation_timestamp",
            "timestamp": "creation_timestamp",
            "last_updated_timestamp": "last_updated_timestamp",
        },
        default=[("name", False), ("version_number", True)],
    )
    return search.page(
        ordered, offset=offset, limit=limit, key="model_versions", render=lambda r: r["json"]
    )


def update_version(
    session: Session,
    *,
    actor: Principal,
    name: str,
    number: int,
    description: Any = None,
    set_tags: dict[str, str] | None = None,
    delete_tag: str | None = None,
) -> dict[str, Any]:
    if set_tags:
        for key, value in set_tags.items():
            if not re.fullmatch(r"[A-Za-z0-9_.:/-]{1,128}", key) or len(value) > 1024:
                raise invalid(
                    f"tag {key!r}: keys are 1-128 letters, digits or _.:/- and values at "
                    "most 1024 characters"
                )
    if delete_tag is not None:
        _, version = registry.get_version(session, name, number)
        if delete_tag not in version.tags:
            raise not_found(f"version {number} of {name!r} has no tag {delete_tag!r}")
    registry.update_version(
        session,
        actor=actor,
        model_name=name,
        number=number,
        description=None if description is None else str(description),
        set_tags=set_tags,
        delete_tags=[delete_tag] if delete_tag is not None else [],
    )
    return get_version(session, name, number)


# Stage transitions ---------------------------------------------------------------------------


class TransitionAnswer:
    """Either the version after the move, or an MLflow error to answer without rolling
    back: a refused or pending promotion request is a record that must stay."""

    def __init__(self, body: dict[str, Any] | None, error: MlflowApiError | None) -> None:
        self.body = body
        self.error = error


def transition(
    session: Session,
    *,
    actor: Principal,
    store: Any,
    name: str,
    number: int,
    stage: Any,
) -> TransitionAnswer:
    target = MLFLOW_TO_STAGE.get(str(stage).lower()) if stage is not None else None
    if target is None:
        raise invalid(f"invalid stage {stage!r}: one of None, Staging, Production, Archived")
    _, version = registry.get_version(session, name, number)
    current = Stage(version.stage)
    if target is current:
        return TransitionAnswer(get_version(session, name, number), None)
    if target is Stage.CANDIDATE:
        raise MlflowApiError(
            "INVALID_STATE",
            f"version {number} of {name!r} is {STAGE_TO_MLFLOW[current.value]}; Modelgate "
            "never moves a version back to None (candidate): archive it, or roll production "
            f"back with POST /api/v1/models/{name}/rollback",
        )
    if target is Stage.ARCHIVED:
        operations.archive(
            session, actor=actor, model_name=name, number=number, reason="MLflow transition-stage"
        )
        return TransitionAnswer(get_version(session, name, number), None)
    try:
        request = requests.request_promotion(
            session,
            actor=actor,
            store=store,
            model_name=name,
            data=PromotionCreate(
                version=number,
                target=target,
                comment="MLflow transition-stage",
            ),
        )
    except TransitionNotAllowed as exc:
        raise MlflowApiError("INVALID_STATE", str(exc)) from None
    if request.status.value == "applied":
        return TransitionAnswer(get_version(session, name, number), None)
    if request.status.value == "rejected":
        row = repository.get(session, version.id)
        return TransitionAnswer(None, MlflowApiError("INVALID_STATE", refusal(request, row)))
    return TransitionAnswer(
        None,
        MlflowApiError(
            "INVALID_STATE",
            f"promotion request {request.id} moving version {number} of {name!r} to "
            f"{STAGE_TO_MLFLOW[target.value]} passed its gates and waits for "
            f"{request.approvals_required} approval(s) by a reviewer other than "
            f"{request.requested_by}: `modelgate promotions approve {request.id}` or "
            f"POST /api/v1/promotions/{request.id}/approve; the version stays "
            f"{STAGE_TO_MLFLOW[current.value]} until then",
        ),
    )


def refusal(request: PromotionRead, row: MlflowVersion | None) -> str:
    """The message of a transition the gates refused: every failing rule, with what was
    observed and the threshold."""
    report = request.report
    lines = [
        f"gates refused version {request.version} of {request.model!r} for "
        f"{STAGE_TO_MLFLOW[request.target.value]} (promotion request {request.id}, policy "
        f"revision {report.policy_revision}):"
    ]
    lines.extend(failed_rules([r.model_dump(mode="json") for r in report.rules], row))
    return "\n".join(lines)


def failed_rules(rules: list[dict[str, Any]], row: MlflowVersion | None) -> list[str]:
    """One line per failing rule of a gate report: its reason, what was observed, the
    threshold (and delta, p-value), and why an MLflow-fed version lacks lineage."""
    lines = []
    for rule in rules:
        if rule.get("passed"):
            continue
        detail = f"- {rule.get('rule')} ({rule.get('kind')}): {rule.get('reason')}"
        extras = []
        if rule.get("observed"):
            extras.append("observed " + json.dumps(rule["observed"], sort_keys=True, default=str))
        if rule.get("threshold") is not None:
            extras.append(f"threshold {rule['threshold']}")
        if rule.get("delta") is not None:
            extras.append(f"delta {rule['delta']}")
        if rule.get("p_value") is not None:
            extras.append(f"p-value {rule['p_value']:.4g}")
        if extras:
            detail += " [" + "; ".join(extras) + "]"
        if rule.get("kind") == "lineage_complete" and (row is None or row.run_id is None):
            detail += (
                " -- this version was registered through MLflow without a run on a tracking "
                "server Modelgate reads (MODELGATE_MLFLOW_TRACKING_URI), so it has no "
                "lineage; register from a run with mlflow.source.git.commit and the other "
                "lineage tags, or give the model a policy without this rule (see "
                "docs/switching-from-mlflow.md)"
            )
        lines.append(detail)
    return lines


# Aliases -------------------------------------------------------------------------------------


def alias_name(value: Any) -> str:
    """An alias name as MLflow's server checks it on every alias call."""
    if not isinstance(value, str) or not value:
        raise invalid("Registered model alias name cannot be empty.")
    if not _MLFLOW_ALIAS.fullmatch(value) or len(value) > 255:
        raise invalid(
            f"Invalid alias name: '{value}'. Names may only contain alphanumerics, "
            "underscores (_), and dashes (-), at most 255 characters."
        )
    return value


def modelgate_alias(alias: str) -> str:
    """``alias`` if it may be set: not a name MLflow reserves (``latest``, ``v<n>``: they
    read as versions in models:/ URIs), and one Modelgate can hold (a slug)."""
    if alias.lower() == "latest":
        raise invalid("'latest' alias name (case insensitive) is reserved.")
    if _RESERVED_ALIAS.fullmatch(alias):
        raise invalid(f"Version alias name '{alias}' is reserved.")
    if not _ALIAS.fullmatch(alias):
        raise invalid(
            f"Modelgate alias names are lower-case letters, digits and inner hyphens, at "
            f"most 64 characters (they are URL path segments in /api/v1); {alias!r} is not one"
        )
    return alias


def _alias_not_found(alias: str) -> MlflowApiError:
    # MLflow's server answers exactly this for an alias that is not set; clients match it.
    return invalid(f"Registered model alias {alias} not found.")


def set_alias(
    session: Session, *, actor: Principal, store: Any, name: str, alias: str, number: int
) -> None:
    """Point ``alias`` at version ``number``, as ``PUT /api/v1/models/{m}/aliases/{a}``:
    through the transition core, audited, a new serving revision; a protected alias only
    when its gates pass (INVALID_STATE naming each failing rule otherwise). An alias
    serves, so it points only at a version whose registration is complete."""
    modelgate_alias(alias)
    _, version = registry.get_version(session, name, number)
    row = repository.get(session, version.id)
    if row is not None and row.status != Registration.READY.value:
        raise MlflowApiError(
            "INVALID_STATE",
            f"version {number} of {name!r} is {row.status}"
            + (f" ({row.status_message})" if row.status_message else "")
            + f"; alias {alias!r} can point only at a READY version",
        )
    try:
        serving_aliases.set_alias(
            session, actor=actor, model_name=name, alias=alias, version=number,
            reason="MLflow set_registered_model_alias", store=store,
        )  # fmt: skip
    except AliasGatesFailed as exc:
        report = exc.extra.get("report") or {}
        lines = [
            f"gates refused version {number} of {name!r} for alias {alias!r} (policy "
            f"revision {report.get('policy_revision')}):",
            *failed_rules(list(report.get("rules") or []), row),
        ]
        raise MlflowApiError("INVALID_STATE", "\n".join(lines)) from None


def delete_alias(session: Session, *, actor: Principal, name: str, alias: str) -> None:
    """Remove ``alias``, as ``DELETE /api/v1/models/{m}/aliases/{a}`` (its history stays).
    An alias that is not set is nothing to remove: no error, as on MLflow's server."""
    if not _ALIAS.fullmatch(alias) or not any(
        a.name == alias for a in serving_aliases.list_aliases(session, model_name=name)
    ):
        registry.get_model(session, name)  # an unknown model is still RESOURCE_DOES_NOT_EXIST
        return
    serving_aliases.delete_alias(
        session, actor=actor, model_name=name, alias=alias,
        reason="MLflow delete_registered_model_alias",
    )  # fmt: skip


def version_by_alias(session: Session, name: str, alias: str) -> dict[str, Any]:
    """The version ``alias`` points at; ``latest`` is the newest version, as in MLflow."""
    if alias.lower() == "latest":
        newest = registry.read_model(session, name).latest_version
        if newest < 1:
            raise not_found(f"Latest version not found for model {name}.")
        return get_version(session, name, newest)
    if not _ALIAS.fullmatch(alias):
        registry.get_model(session, name)
        raise _alias_not_found(alias)
    try:
        number = serving_aliases.resolve(session, model_name=name, alias=alias)
    except AliasNotFound:
        raise _alias_not_found(alias) from None
    return get_version(session, name, number)


def stage_of(value: str) -> Stage | None:
    return MLFLOW_TO_STAGE.get(value.lower())
