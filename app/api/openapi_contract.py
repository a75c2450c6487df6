"""What the generated OpenAPI document must say beyond what FastAPI derives.

FastAPI and pydantic describe types, lengths and patterns, but not everything the
server enforces, and they leave out what connects operations. One pass over the
document, run once when it is built, adds:

- dict keys: pydantic puts a key type's pattern in ``patternProperties`` only, which
  lets other keys through as unconstrained; the pattern goes into ``propertyNames`` too;
- NUL characters and lone surrogates: every request string is refused if it holds one
  (``app.api.deps.reject_unstorable_text``); strings without a pattern of their own get
  :data:`STORABLE` (an ECMA-262, Rust and Python regex) so the document says so;
- the ``Idempotency-Key`` header's format (:data:`IDEMPOTENCY_KEY_PATTERN`);
- cursors are opaque: only a ``next_cursor`` from the previous page is valid; anything
  else is a 400 the schema cannot express;
- links from the responses that create identifiers to the operations that use them,
  so that a client (or a stateful fuzzer) can walk real sequences;
- the problem answers every operation can give by the way the server is built, not by
  what the route does (:func:`_shared_problems`): routes declare only the answers that
  depend on their own rules (409, 412, 507...), and a route added later is covered
  without doing anything.
"""

from __future__ import annotations

from typing import Any

from app.api.problems import PROBLEM_MEDIA_TYPE

STORABLE = r"^[^\x00]*$"
"""No NUL. Lone surrogates are refused as well, but they are not Unicode characters (no
scalar value, no UTF-8 form), so no schema-valid string holds one, and a surrogate range
is a pattern many validators (Rust's regex, which schemathesis uses) cannot compile
(decision 0025)."""
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]([ -~]{0,253}[!-~])?$"
CURSOR_DESCRIPTION = (
    "Opaque: the `next_cursor` of the previous page, passed back as it is. Any other "
    "value is a 400 (bad-request); its content is not part of the contract."
)

API_PREFIX = "/api/v1"
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})

# (method, path of the creating operation, status) -> {link name: (method, path, parameters)}
_P = "/api/v1"
LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, dict[str, str]]]] = {
    ("post", f"{_P}/models", "201"): {
        "ReadModel": ("get", f"{_P}/models/{{model}}", {"model": "$response.body#/name"}),
        "UpdateModel": ("patch", f"{_P}/models/{{model}}", {"model": "$response.body#/name"}),
        "CreateVersion": (
            "post",
            f"{_P}/models/{{model}}/versions",
            {"model": "$response.body#/name"},
        ),
        "ListVersions": (
            "get",
            f"{_P}/models/{{model}}/versions",
            {"model": "$response.body#/name"},
        ),
        "ReadPolicy": ("get", f"{_P}/models/{{model}}/policy", {"model": "$response.body#/name"}),
        "History": ("get", f"{_P}/models/{{model}}/history", {"model": "$response.body#/name"}),
    },
    ("post", f"{_P}/models/{{model}}/versions", "201"): {
        name: (
            method,
            f"{_P}/models/{{model}}/versions/{{version}}{tail}",
            {
                "model": "$request.path.model",
                "version": "$response.body#/version",
            },
        )
        for name, method, tail in [
            ("ReadVersion", "get", ""),
            ("UploadArtifact", "put", "/artifact"),
            ("DownloadArtifact", "get", "/artifact"),
            ("Evaluate", "post", "/evaluate"),
            ("AddMetrics", "post", "/metrics"),
            ("Archive", "post", "/archive"),
            ("CreateReferenceProfile", "post", "/reference-profile"),
        ]
    },
    ("post", f"{_P}/models/{{model}}/promotions", "201"): {
        name: (
            method,
            f"{_P}/promotions/{{promotion_id}}{tail}",
            {
                "promotion_id": "$response.body#/id",
            },
        )
        for name, method, tail in [
            ("ReadPromotion", "get", ""),
            ("Approve", "post", "/approve"),
            ("Reject", "post", "/reject"),
            ("Cancel", "post", "/cancel"),
        ]
    },
    ("post", f"{_P}/webhooks", "201"): {
        name: (method, f"{_P}/webhooks/{{webhook_id}}{tail}", {"webhook_id": "$response.body#/id"})
        for name, method, tail in [
            ("ReadWebhook", "get", ""),
            ("ListDeliveries", "get", "/deliveries"),
            ("DeleteWebhook", "delete", ""),
        ]
    },
    ("post", f"{_P}/models/{{model}}/drift-reports", "201"): {
        "ReadDriftReport": (
            "get",
            f"{_P}/models/{{model}}/drift-reports/{{report_id}}",
            {"model": "$request.path.model", "report_id": "$response.body#/id"},
        ),
    },
    ("post", f"{_P}/tokens", "201"): {
        "RevokeToken": ("delete", f"{_P}/tokens/{{token_id}}", {"token_id": "$response.body#/id"}),
    },
}


def _walk(node: Any) -> Any:
    """Every dict in a JSON document, depth first (a loop: no recursion limit to hit)."""
    pending = [node]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            yield item
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _constrain_schemas(document: dict[str, Any]) -> None:
    for schema in list(_walk(document.get("components", {}))) + list(
        _walk(document.get("paths", {}))
    ):
        patterns = schema.get("patternProperties")
        if isinstance(patterns, dict) and len(patterns) == 1 and schema.get("type") == "object":
            names = schema.setdefault("propertyNames", {})
            names.setdefault("pattern", next(iter(patterns)))
        names = schema.get("propertyNames")
        if isinstance(names, dict) and "pattern" not in names:
            names["pattern"] = STORABLE
        if (
            schema.get("type") == "string"
            and not {"pattern", "enum", "const", "format"} & schema.keys()
        ):
            schema["pattern"] = STORABLE


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional header's schema without its ``null`` branch: a header is a string or
    absent (``required: false`` says it may be absent). With the branch, a generator sent
    the header ``X-Artifact-SHA256: null``, which the document called valid."""
    branches = schema.get("anyOf")
    if not isinstance(branches, list) or {"type": "null"} not in branches:
        return schema
    kept = [branch for branch in branches if branch != {"type": "null"}]
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**kept[0], **rest} if len(kept) == 1 else {**rest, "anyOf": kept}


def _parameters(document: dict[str, Any]) -> None:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "header" and isinstance(parameter.get("schema"), dict):
                    parameter["schema"] = _not_null(parameter["schema"])
                if parameter.get("in") == "header" and parameter["name"] == "Idempotency-Key":
                    for schema in _walk(parameter["schema"]):
                        if schema.get("type") == "string":
                            schema.update(
                                minLength=1, maxLength=255, pattern=IDEMPOTENCY_KEY_PATTERN
                            )
                    parameter["description"] = (
                        "1 to 255 printable ASCII characters, no space at either end. "
                        "Retries with the same key return the first answer and create nothing."
                    )
                if parameter.get("in") == "query" and parameter["name"] == "cursor":
                    parameter["description"] = CURSOR_DESCRIPTION


def _links(document: dict[str, Any]) -> None:
    paths = document.get("paths", {})
    for (method, path, status), links in LINKS.items():
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        found: dict[str, Any] = {}
        for name, (target_method, target_path, parameters) in links.items():
            target = paths.get(target_path, {}).get(target_method)
            if target is None or "operationId" not in target:
                continue
            found[name] = {"operationId": target["operationId"], "parameters": parameters}
        if found:
            response["links"] = found


# Why each status can answer any operation that has the named trait (see _shared_problems).
SHARED_PROBLEMS: dict[int, str] = {
    400: "Malformed request: an unknown query parameter (every operation refuses the "
    "parameters it does not declare), a body that is not JSON, or an opaque value (a "
    "cursor) that is not one the server gave",
    401: "Missing, invalid, revoked or expired token",
    403: "The token's role or model scope does not allow this",
    404: "Not found: a resource the path names does not exist",
    409: "Conflicts with the current state (an Idempotency-Key whose first request is "
    "still running or was another request, or the operation's own rules)",
    412: "Precondition failed: the If-Match tag is not the current one",
    413: "Payload too large",
    422: "Invalid request: a value the schema or the operation's rules refuse, or a NUL "
    "character or lone surrogate in any query parameter or JSON string",
    503: "Database or artifact store unavailable",
}
_BODY_METHODS = frozenset({"post", "put", "patch"})


def shared_statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The problem statuses an operation can answer because of how every route is served:

    - 400 and 422, every operation under the API prefix: the app-wide dependencies refuse
      an unknown query parameter (400, ``app.api.query``) and a NUL character in any query
      value (422, ``app.api.deps.reject_unstorable_text``), and any request can send a query;
    - 401, 403, 503, every operation that needs a token: the token is looked up in the
      database, and a role or a model scope may not allow the call;
    - 404, every operation with a path parameter (the thing it names may not exist);
    - 409, every operation taking an ``Idempotency-Key`` (its first request still running);
    - 412, every operation taking ``If-Match``;
    - 413 and 422, every operation that can carry a body (the size limit, validation).
    """
    if not path.startswith(API_PREFIX + "/") or method not in _HTTP_METHODS:
        return set()
    statuses = {400, 422}
    if operation.get("security"):
        statuses |= {401, 403, 503}
    parameters = operation.get("parameters", [])
    if any(p.get("in") == "path" for p in parameters):
        statuses.add(404)
    headers = {str(p.get("name", "")).lower() for p in parameters if p.get("in") == "header"}
    if "idempotency-key" in headers:
        statuses.add(409)
    if "if-match" in headers:
        statuses.add(412)
    if method in _BODY_METHODS or "requestBody" in operation:
        statuses.add(413)
    return statuses


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _shared_problems(document: dict[str, Any]) -> None:
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            declared = operation.setdefault("responses", {})
            for status in sorted(shared_statuses(path, method, operation)):
                declared.setdefault(str(status), _problem(SHARED_PROBLEMS[status]))
            operation["responses"] = dict(sorted(declared.items()))


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Add to a FastAPI-built OpenAPI document what it does not derive (see the module)."""
    _constrain_schemas(document)
    _parameters(document)
    _shared_problems(document)
    _links(document)
    return document
