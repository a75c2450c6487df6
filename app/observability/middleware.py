"""Request latency histograms by route template, method and status class."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.metrics import HTTP_REQUEST_DURATION

UNMATCHED = "<unmatched>"


class MetricsMiddleware:
    """Pure ASGI, like the request-context middleware. The route *template* is the label
    (``/api/v1/models/{model}``), never the path, so the number of series stays bounded."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            HTTP_REQUEST_DURATION.labels(
                method=scope["method"], route=route_template(scope), status=f"{status // 100}xx"
            ).observe(time.perf_counter() - started)


def route_template(scope: Scope) -> str:
    """The matched route's full template, e.g. ``/api/v1/models/{model}``.

    FastAPI puts the route in the scope, but its ``path`` lacks the prefix the router
    was included under; that prefix holds no parameters, so it is the request path less
    as many trailing segments as the route's own template has."""
    route_path = getattr(scope.get("route"), "path", None)
    if not isinstance(route_path, str):
        return UNMATCHED
    if ":path}" in route_path:  # a parameter that spans segments: keep the route's own path
        return route_path
    segments = scope["path"].split("/")
    own = route_path.count("/")
    if own >= len(segments):
        return route_path
    return "/".join(segments[: len(segments) - own]) + route_path
