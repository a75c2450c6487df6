"""The MLflow model-registry REST API, ``/api/2.0/mlflow/...``, and the artifact listing
and download MLflow clients use to fetch a registered model's files.

Fields of GET requests arrive as query parameters, of other methods as a JSON body.
Every answer is 200 with MLflow's JSON, or ``{"error_code", "message"}``; a path this
API does not serve is ``ENDPOINT_NOT_FOUND``. Callers authenticate with a Modelgate
token as ``Bearer`` (``MLFLOW_TRACKING_TOKEN``) or as the Basic password.
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from app.api.deps import UowDep
from app.api.uow import UnitOfWork
from app.auth import service as auth_service
from app.auth.cache import TokenCache
from app.auth.roles import Principal, Role, role_allows
from app.errors import AppError
from app.mlflow import registration, repository, service
from app.mlflow.errors import MlflowApiError, invalid
from app.mlflow.search import SearchCall
from app.registry import artifacts
from app.registry import service as registry
from app.settings import Settings
from app.storage.base import ArtifactStore

PREFIX = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
ARTIFACT_ROOT = "modelgate"

router = APIRouter(include_in_schema=False)
T = TypeVar("T")


async def mlflow_principal(request: Request) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise MlflowApiError(
            "UNAUTHENTICATED",
            "send a Modelgate token: set MLFLOW_TRACKING_TOKEN (Bearer), or "
            "MLFLOW_TRACKING_PASSWORD (Basic)",
        )
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    secret = ""
    if scheme.lower() == "bearer":
        secret = credentials
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise MlflowApiError("UNAUTHENTICATED", "malformed Basic credentials") from None
        secret = decoded.partition(":")[2]
    if not secret:
        raise MlflowApiError(
            "UNAUTHENTICATED", "the Authorization header must be Bearer <token> or Basic"
        )
    cache: TokenCache | None = getattr(request.app.state, "token_cache", None)
    principal = auth_service.remembered(cache, secret)
    if principal is None:
        factory: sessionmaker[Session] = request.app.state.sessions
        read_bind = request.app.state.read_bind

        def lookup() -> Principal:
            with factory(bind=read_bind) if read_bind is not None else factory() as session:
                return auth_service.authenticate(session, secret, cache)

        try:
            principal = await run_in_threadpool(lookup)
        except AppError as exc:
            raise MlflowApiError("UNAUTHENTICATED", str(exc)) from None
    return principal


def allow(principal: Principal, role: Role, model: str | None = None) -> None:
    """The same role check as the matching /api/v1 route, and the token's model scope."""
    if not role_allows(principal.role, role):
        raise MlflowApiError(
            "PERMISSION_DENIED",
            f"this needs the {role.value} role; the token has {principal.role.value}",
        )
    if model is not None and not principal.may_touch_model(model):
        raise MlflowApiError(
            "PERMISSION_DENIED", f"this token is limited to model {principal.model_scope!r}"
        )


async def fields(request: Request) -> dict[str, Any]:
    """The call's fields: query parameters (lists repeated) and, off GET, the JSON body."""
    out: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        out[key] = values if len(values) > 1 or key in ("order_by", "stages") else values[0]
    if request.method not in ("GET", "HEAD"):
        raw = await request.body()
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                raise invalid("the request body is not JSON") from None
            if not isinstance(body, dict):
                raise invalid("the request body must be a JSON object")
            out.update(body)
    return out


def required(data: dict[str, Any], name: str) -> Any:
    value = data.get(name)
    if value is None or value == "":
        raise invalid(f"Missing value for required parameter '{name}'.")
    return value


def name_of(data: dict[str, Any]) -> str:
    return service.check_name(required(data, "name"))


def as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


async def run(uow: UnitOfWork, fn: Callable[[Session], T]) -> T:
    """``fn`` on the request's session in the threadpool; domain errors in MLflow's shape."""

    def call() -> T:
        try:
            return fn(uow.session)
        except AppError as exc:
            if getattr(exc, "keep_changes", False):
                # A protected alias's refusal recorded the promotion request it names;
                # it stays (as on PUT /api/v1/models/{m}/aliases/{a}), the answer is the error.
                uow.commit()
            raise service_error(exc) from None

    return await run_in_threadpool(call)


def service_error(exc: AppError) -> MlflowApiError:
    from app.mlflow.errors import from_app_error

    return from_app_error(exc)


def ok(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=200)


def version_of(data: dict[str, Any]) -> int:
    return service.parse_version(required(data, "version"))


def tag_of(data: dict[str, Any]) -> dict[str, str]:
    """The one tag a set-tag call sets; a missing value is the empty string."""
    key = str(required(data, "key"))
    value = data.get("value")
    return {key: "" if value is None else str(value)}


async def search(
    request: Request,
    uow: UnitOfWork,
    principal: Principal,
    searcher: Callable[..., dict[str, Any]],
) -> Response:
    """A search call (models or versions): any reader, the token's scope applied inside."""
    data = await fields(request)
    allow(principal, Role.READER)
    call = SearchCall(
        filter_string=data.get("filter"),
        max_results=data.get("max_results"),
        order_by=as_list(data.get("order_by")),
        page_token=data.get("page_token"),
    )
    return ok(await run(uow, lambda s: searcher(s, actor=principal, call=call)))


Caller = Depends(mlflow_principal)

# Registered models --------------------------------------------------------------------------


@router.post(PREFIX + "/registered-models/create")
async def create_model(request: Request, uow: UowDep, principal: Principal = Caller) -> Response:
    data = await fields(request)
    allow(principal, Role.SUBMITTER)
    return ok(
        await run(
            uow,
            lambda s: service.create_model(
                s,
                actor=principal,
                name=data.get("name"),
                description=data.get("description"),
                tags=data.get("tags"),
            ),
        )
    )


@router.get(PREFIX + "/registered-models/get")
async def get_model(request: Request, uow: UowDep, principal: Principal = Caller) -> Response:
    data = await fields(request)
    name = name_of(data)
    allow(principal, Role.READER, name)
    return ok(await run(uow, lambda s: service.get_model(s, name)))


@router.api_route(PREFIX + "/registered-models/search", methods=["GET", "POST"])
async def search_models(request: Request, uow: UowDep, principal: Principal = Caller) -> Response:
    return await search(request, uow, principal, service.search_models)


@router.patch(PREFIX + "/registered-models/update")
async def update_model(request: Request, uow: UowDep, principal: Principal = Caller) -> Response:
    data = await fields(request)
    name = name_of(data)
    allow(principal, Role.SUBMITTER, name)
    return ok(
        await run(
            uow,
            lambda s: service.update_model(
                s, actor=principal, name=name, description=data.get("description")
            ),
        )
    )


@router.post(PREFIX + "/registered-models/set-tag")
async def set_model_tag(request: Request, uow: UowDep, principal: Principal = Caller) -> Response:
    data = await fields(request)
    name = name_of(data)
    tag = tag_of(data)
    allow(principal, Role.SUBMITTER, name)
    await run(uow, lambda s: service.update_model(s, actor=principal, name=name, set_tags=tag))
    return ok({})


@router.delete(PREFIX + "/registered-models/delete-tag")
async def delete_model_tag(
    request: Request, uow: UowDep, principal: Principal = Caller
) -> Response:
    data = await fields(request)
    name = name_of(data)
    key = str(required(data, "key"))
    allow(principal, Role.SUBMITTER, name)
    await run(uow, lambda s: service.update_model(s, actor=principal, name=name, delete_tag=key))
    return ok({})


@router.post(PREFIX + "/registered-models/rename")
async def rename_model(request: Request, principal: Principal = Caller) -> Response:
    data = await fields(request)
    allow(principal, Role.SUBMITTER)  # refused below, but only to a writer
    raise invalid(
        f"Modelgate does not rename models ({data.get('name')!r}): the name is the identity "
        "of its audit chain, tokens and policies. Create a model under the new name and "
        "register versions there."
    )


@router.delete(PREFIX + "/registered-models/delete")
async def delete_model(request: Request, principal: Principal = Caller) -> Response:
    data = await fields(request)
    allow(principal, Role.SUBMITTER)  # refused below, but only to a writer
    raise invalid(
        f"Modelgate does not delete models ({data.get('name')!r}): versions stay so that "
        "rollback and the audit trail always work. Archive versions with transition-stage "
        "to Archived."
    )


@router.api_route(PREFIX + "/registered-models/get-latest-versions", methods=["GET", "POST"])
async def latest_versions(request: Request, uow: UowDep, principal: Principal = Caller) -> Response:
    data = await fields(request)
    name = name_of(data)
    allow(principal, Role.READER, name)
    stages = as_list(data.get("stages"))

    def latest(s: Session) -> dict[str, Any]:
        registry.get_model(s, name)
        return {"model_versions": service.latest_versions(s, name, stages or None)}

    return ok(await run(uow, latest))


# Aliases: Modelgate's aliases (app/serving/aliases.py), moved through the transition core.


@router.post(PREFIX + "/registered-models/alias")
async def set_alias(request: Request, uow: UowDep, principal: Principal = Caller) -> Response:
    data = await fields(request)
    name = name_of(data)
    alias = service.alias_name(required(data, "alias"))
    number = version_of(data)
    allow(principal, Role.SUBMITTER, name)
    store: ArtifactStore = request.app.state.store
    await run(
        uow,
        lambda s: service.set_alias(
            s, actor=principal, store=store, name=name, alias=alias, number=number
        ),
    )
    return ok({})


@router.delete(PREFIX + "/registered-models/alias")
async def delete_alias(request: Request, uow: UowDep, principal: Principal = Caller) -> Response:
    data = await fields(request)
    name = name_of(data)
    alias = service.alias_name(required(data, "alias"))
    allow(principal, Role.SUBMITTER, name)
    await run(uow, lambda s: service.delete_alias(s, actor=principal, name=name, alias=alias))
    return ok({})


@router.get(PREFIX + "/registered-models/alias")
async def version_by_alias(
    request: Request, uow: UowDep, principal: Principal = Caller
) -> Response:
    data = await fields(request)
    name = name_of(data)
    alias = service.alias_name(required(data, "alias"))
    allow(principal, Role.READER, name)
    return ok(await run(uow, lambda s: service.version_by_alias(s, name, alias)))


# Model versions -----------------------------------------------------------------------------


@router.post(PREFIX + "/model-versions/create")
async def create_version(request: Request, uow: UowDep, principal: Principal = Caller) -> Response:
    data = await fields(request)
    name = name_of(data)
    source = required(data, "source")
    if not isinstance(source, str):
        raise invalid("source must be a string")
    allow(principal, Role.SUBMITTER, name)
    settings: Settings = request.app.state.settings
    store: ArtifactStore = request.app.state.store
    tags = service.tags_from(data.get("tags"), "tags")

    def register(_: Session) -> tuple[int, int]:
        return registration.register(
            uow.commit, lambda: uow.session, actor=principal, store=store, settings=settings,
            name=name, source=source, run_id=data.get("run_id") or None,
            run_link=data.get("run_link") or None, logged_model_id=data.get("model_id") or None,
            description=str(data.get("description") or ""), tags=tags,
        )  # fmt: skip

    number, _ = await run(uow, register)
    return ok(await run(uow, lambda s: service.get_version(s, name, number)))


@router.get(PREFIX + "/model-versions/get")
async def get_version(request: Request, uow: UowDep, principal: Principal = Caller) -> Response:
    data = await fields(request)
    name = name_of(data)
    number = version_of(data)
    allow(principal, Role.READER, name)
    return ok(await run(uow, lambda s: service.get_version(s, name, number)))


@router.api_route(PREFIX + "/model-versions/search", methods=["GET", "POST"])
async def search_versions(request: Request, uow: UowDep, principal: Principal = Caller) -> Response:
    return await search(request, uow, principal, service.search_versions)


@router.patch(PREFIX + "/model-versions/update")
async def update_version(request: Request, uow: UowDep, principal: Principal = Caller) -> Response:
    data = await fields(request)
    name = name_of(data)
    number = version_of(data)
    allow(principal, Role.SUBMITTER, name)
    return ok(
        await run(
            uow,
            lambda s: service.update_version(
                s, actor=principal, name=name, number=number, description=data.get("description")
            ),
        )
    )


@router.post(PREFIX + "/model-versions/set-tag")
async def set_version_tag(request: Request, uow: UowDep, principal: Principal = Caller) -> Response:
    data = await fields(request)
    name = name_of(data)
    number = version_of(data)
    tag = tag_of(data)
    allow(principal, Role.SUBMITTER, name)
    await run(
        uow,
        lambda s: service.update_version(
            s, actor=principal, name=name, number=number, set_tags=tag
        ),
    )
    return ok({})


@router.delete(PREFIX + "/model-versions/delete-tag")
async def delete_version_tag(
    request: Request, uow: UowDep, principal: Principal = Caller
) -> Response:
    data = await fields(request)
    name = name_of(data)
    number = version_of(data)
    key = str(required(data, "key"))
    allow(principal, Role.SUBMITTER, name)
    await run(
        uow,
        lambda s: service.update_version(
            s, actor=principal, name=name, number=number, delete_tag=key
        ),
    )
    return ok({})


@router.delete(PREFIX + "/model-versions/delete")
async def delete_version(request: Request, principal: Principal = Caller) -> Response:
    data = await fields(request)
    allow(principal, Role.SUBMITTER)  # refused below, but only to a writer
    raise invalid(
        f"Modelgate does not delete versions (version {data.get('version')} of "
        f"{data.get('name')!r}): archived versions stay available for rollback and audit. "
        "Use transition-stage to Archived."
    )


@router.post(PREFIX + "/model-versions/transition-stage")
async def transition_stage(
    request: Request, uow: UowDep, principal: Principal = Caller
) -> Response:
    data = await fields(request)
    name = name_of(data)
    number = version_of(data)
    stage = required(data, "stage")
    allow(principal, Role.SUBMITTER, name)
    store: ArtifactStore = request.app.state.store
    answer = await run(
        uow,
        lambda s: service.transition(
            s, actor=principal, store=store, name=name, number=number, stage=stage
        ),
    )
    if answer.error is not None:
        # Not raised: the refused or pending promotion request is committed and audited.
        return JSONResponse(answer.error.body(), status_code=answer.error.status)
    assert answer.body is not None
    return ok(answer.body)


@router.get(PREFIX + "/model-versions/get-download-uri")
async def download_uri(request: Request, uow: UowDep, principal: Principal = Caller) -> Response:
    data = await fields(request)
    name = name_of(data)
    number = version_of(data)
    allow(principal, Role.READER, name)
    await run(uow, lambda s: registry.get_version(s, name, number))
    base = str(request.base_url).rstrip("/")
    return ok({"artifact_uri": f"{base}{ARTIFACTS}/{ARTIFACT_ROOT}/{name}/{number}"})


# Model files, as MLflow's artifact proxy serves them ---------------------------------------


def _manifest(session: Session, name: str, number: int) -> list[dict[str, Any]]:
    """The files of a version: its MLflow model directory, or its one Modelgate artifact."""
    _, version = registry.get_version(session, name, number)
    row = repository.get(session, version.id)
    if row is not None:
        if row.files is None:
            raise MlflowApiError(
                "RESOURCE_DOES_NOT_EXIST",
                f"version {number} of {name!r} is {row.status}"
                + (f": {row.status_message}" if row.status_message else ""),
            )
        return list(row.files)
    info = artifacts.download_info(session, model_name=name, number=number)
    return [{"path": "artifact", "sha256": info.sha256, "size": info.size, "key": info.key}]


def _split(path: str) -> tuple[str, int, str]:
    parts = path.strip("/").split("/", 3)
    if len(parts) < 3 or parts[0] != ARTIFACT_ROOT:
        raise MlflowApiError(
            "RESOURCE_DOES_NOT_EXIST",
            f"no artifact {path!r} here: Modelgate serves model files under "
            f"{ARTIFACT_ROOT}/<model>/<version>",
        )
    name = service.check_name(parts[1])
    return name, service.parse_version(parts[2]), parts[3] if len(parts) > 3 else ""


@router.get(ARTIFACTS)
async def list_artifacts(request: Request, uow: UowDep, principal: Principal = Caller) -> Response:
    name, number, sub = _split(request.query_params.get("path", ""))
    allow(principal, Role.READER, name)
    files = await run(uow, lambda s: _manifest(s, name, number))
    prefix = sub.strip("/") + "/" if sub.strip("/") else ""
    listed: dict[str, dict[str, Any]] = {}
    for f in files:
        if not f["path"].startswith(prefix):
            continue
        rest = f["path"][len(prefix) :]
        head, sep, _ = rest.partition("/")
        if sep:
            listed.setdefault(head, {"path": head, "is_dir": True})
        else:
            listed[head] = {"path": head, "is_dir": False, "file_size": f["size"]}
    return ok({"files": [listed[k] for k in sorted(listed)]})


@router.get(ARTIFACTS + "/{path:path}")
async def download_artifact(
    path: str, request: Request, uow: UowDep, principal: Principal = Caller
) -> Response:
    name, number, sub = _split(path)
    allow(principal, Role.READER, name)
    files = await run(uow, lambda s: _manifest(s, name, number))
    wanted = posixpath.normpath(sub) if sub else ""
    entry = next((f for f in files if f["path"] == wanted), None)
    if entry is None:
        raise MlflowApiError(
            "RESOURCE_DOES_NOT_EXIST", f"version {number} of {name!r} has no file {sub!r}"
        )
    store: ArtifactStore = request.app.state.store
    key = entry.get("key") or store.key_for(entry["sha256"])
    chunks = store.open(key)
    first = await run_in_threadpool(next, chunks, b"")

    def body() -> Iterator[bytes]:
        yield first
        yield from chunks

    return StreamingResponse(
        iterate_in_threadpool(body()),
        media_type="application/octet-stream",
        headers={"Content-Length": str(entry["size"]), "X-Artifact-SHA256": entry["sha256"]},
    )


@router.api_route(
    PREFIX + "/{rest:path}", methods=["GET", "POST", "PATCH", "DELETE", "PUT", "HEAD"]
)
async def not_served(rest: str, request: Request) -> Response:
    raise MlflowApiError(
        "ENDPOINT_NOT_FOUND",
        f"{request.method} {PREFIX}/{rest} is not served by Modelgate: it serves MLflow's "
        "model registry API (registered-models/..., model-versions/...); tracking calls "
        "(runs, experiments) go to your MLflow tracking server",
    )


def install(app: FastAPI) -> None:
    """Serve the MLflow API on ``app``, answering its errors in MLflow's shape."""

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, MlflowApiError)
        return JSONResponse(exc.body(), status_code=exc.status)

    app.add_exception_handler(MlflowApiError, handle)
    app.include_router(router)
