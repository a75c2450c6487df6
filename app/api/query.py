"""Unknown query parameters are a 400 that names them, for every route, in one place.

A parameter a route does not declare used to be ignored, so ``?filter=...`` or a typo
in ``?stgae=`` answered an unfiltered 200 that looked like an answer. The declared
names come from the matched route's own signature (its flattened dependencies), so a
route never lists them twice.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.errors import BadRequest

_declared: dict[int, frozenset[str]] = {}


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _declared_query(route: APIRoute) -> frozenset[str]:
    found = _declared.get(id(route))
    if found is None:
        found = frozenset(_query_names(route.dependant))
        _declared[id(route)] = found
    return found


async def reject_unknown_query(request: Request) -> None:
    """App-wide dependency: 400 when the query names a parameter the route does not take."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    # The rule is the /api/v1 contract's. The MLflow door reads its fields as the MLflow
    # client sends them (repeated, undeclared), and the console's forms are its own.
    if not request.url.path.startswith("/api/v1/"):
        return
    declared = _declared_query(route)
    unknown = sorted({name for name in request.query_params if name not in declared})
    if unknown:
        allowed = ", ".join(sorted(declared)) or "none"
        raise BadRequest(
            f"unknown query parameter(s): {', '.join(unknown)} (this endpoint takes: {allowed})",
            errors=[
                {"loc": ["query", name], "msg": "unknown query parameter", "type": "unknown"}
                for name in unknown
            ],
        )
