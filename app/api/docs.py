"""API documentation for people, served by the server itself (no CDN: it works on a closed
network): Swagger UI at ``/api/v1/docs``, ReDoc at ``/api/v1/redoc``, their assets (from
the ``fastapi-offline`` package, which vendors them) and the catalogue of problem codes at
``/api/v1/problems`` that every problem's ``type`` points into."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from app.api.problems import catalogue, responses, type_base
from app.errors import NotFound

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}

router = APIRouter(tags=["docs"])


def _openapi_url(request: Request) -> str:
    return str(request.scope.get("root_path", "")) + str(request.app.openapi_url)


def operation_id(route: APIRoute) -> str:
    """Readable operation ids for generated clients: ``create_model`` -> ``createModel``."""
    first, *rest = route.name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def add_security(schema: dict[str, Any]) -> None:
    """A bearer scheme (Swagger's "Authorize") required by every operation but the
    probes, metrics and these docs."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearerAuth"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token: `modelgate tokens create` prints one.",
    }
    open_tags = {"health", "docs"}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            public = open_tags.intersection(operation.get("tags", []))
            operation["security"] = [] if public else [{"bearerAuth": []}]


def _assets(request: Request) -> str:
    return str(request.url_for("docs_asset", name="x"))[: -len("x")]


@router.get("/docs", include_in_schema=False)
def swagger_ui(request: Request) -> HTMLResponse:
    assets = _assets(request)
    return get_swagger_ui_html(
        openapi_url=_openapi_url(request),
        title="Modelgate API",
        swagger_js_url=assets + "swagger-ui-bundle.js",
        swagger_css_url=assets + "swagger-ui.css",
        swagger_favicon_url=assets + "favicon.png",
        swagger_ui_parameters={"persistAuthorization": True},
    )


@router.get("/redoc", include_in_schema=False)
def redoc(request: Request) -> HTMLResponse:
    assets = _assets(request)
    return get_redoc_html(
        openapi_url=_openapi_url(request),
        title="Modelgate API",
        redoc_js_url=assets + "redoc.standalone.js",
        redoc_favicon_url=assets + "favicon.png",
        with_google_fonts=False,
    )


@router.get("/docs/assets/{name}", name="docs_asset", include_in_schema=False)
def docs_asset(name: str) -> FileResponse:
    media_type = ASSET_TYPES.get(name)
    if media_type is None:
        raise NotFound(f"no documentation asset {name!r}")
    return FileResponse(
        ASSETS / name, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"}
    )


class ProblemType(BaseModel):
    """One problem code: what a client can branch on."""

    code: str
    type: str
    status: int
    title: str
    description: str


class ProblemCatalogue(BaseModel):
    items: list[ProblemType]


def _entries(request: Request) -> list[ProblemType]:
    base = type_base(request)
    return [ProblemType(type=base + entry["code"], **entry) for entry in catalogue()]


@router.get("/problems", response_model=ProblemCatalogue, responses=responses(404))
def list_problem_types(request: Request) -> dict[str, Any]:
    """Every problem code the API answers with: its status, title and meaning. Each
    problem's ``type`` is this catalogue's URL followed by the code."""
    return {"items": _entries(request)}


@router.get("/problems/{code}", response_model=ProblemType, responses=responses(404, 422))
def get_problem_type(request: Request, code: str) -> ProblemType:
    """One problem code (the target of a problem's ``type``)."""
    for entry in _entries(request):
        if entry.code == code:
            return entry
    raise NotFound(f"no problem code {code!r}")
