"""Every cell of the authorization matrix (tests/support/authz.py), against the live app.

One module-wide world is built through the API (two models, versions with artifacts, a
pending promotion, a webhook, and a token per kind of caller); then each route's request
is sent once per kind of caller and the answer compared with the table's cell. Requests
are valid-looking, so that "allowed" means the authorization layer let them through:
their answers (200, 404, 409, 422) are about the request, never 401 or 403.

Decisions made after loading state (may a token cancel this request? is this promotion
of its model?) get a fresh pending promotion per caller, so that every caller meets the
same state and a state conflict (409) cannot hide a refusal.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import routing
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, update

from app.auth.models import ApiToken
from app.db.base import utcnow
from app.main import create_app
from app.settings import Settings
from tests.support.api import ADMIN_TOKEN, API, auth, sha256_hex, version_payload
from tests.support.authz import CALLER_KEYS, DOC_PATH, MATRIX, Outcome, Rule, render_markdown

TARGET = "authz-target"
OTHER = "authz-other"
PROBLEM = "application/problem+json"
# Starlette answers HEAD wherever it answers GET on its own routes (the docs pages):
# HEAD is not a route of ours, so the table leaves it out.
IGNORED_METHODS = {"HEAD"}

STAGING_NEEDS_A_REVIEWER = {
    "staging": {"rules": [], "approvals_required": 1, "auto_promote": False},
    "production": {"rules": [], "approvals_required": 1, "auto_promote": False},
}
PROFILE = {
    "features": {
        "amount": {"kind": "numeric", "edges": [0.0, 1.0, 2.0], "counts": [10, 10]},
    }
}


@dataclass
class Request:
    method: str
    url: str
    json: Any = None
    content: bytes | None = None
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    """What the requests refer to, and a secret per kind of caller."""

    client: TestClient
    secrets: dict[str, str | None]
    artifact: bytes
    promotion_id: int
    webhook_id: int
    spare_webhook_id: int
    spare_token_id: str
    rollout_id: int = 0

    def admin(self, method: str, url: str, **kwargs: Any) -> Any:
        headers = {**kwargs.pop("headers", {}), **auth(ADMIN_TOKEN)}
        response = self.client.request(method, url, headers=headers, **kwargs)
        assert response.status_code < 300, (method, url, response.status_code, response.text)
        return response.json()

    def new_version(self, model: str = TARGET) -> int:
        number: int = self.admin("POST", f"{API}/models/{model}/versions", json=version_payload())[
            "version"
        ]
        data = f"{model}/{number}/{uuid.uuid4()}".encode()
        self.admin(
            "PUT",
            f"{API}/models/{model}/versions/{number}/artifact",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        return number

    def pending_promotion(self, model: str = TARGET) -> int:
        """A promotion to staging waiting for a reviewer, requested by the "ci" token."""
        number = self.new_version(model)
        response = self.client.post(
            f"{API}/models/{model}/promotions",
            json={"version": number, "target": "staging"},
            headers=auth(self.secrets["requester"] or ""),
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["status"] == "pending_approval", body
        promotion_id: int = body["id"]
        return promotion_id


def _token(client: TestClient, role: str, *, scope: str | None = None, **extra: Any) -> Any:
    body: dict[str, Any] = {"name": f"matrix-{role}-{uuid.uuid4().hex[:6]}", "role": role}
    if scope is not None:
        body["model_scope"] = scope
    body.update(extra)
    response = client.post(f"{API}/tokens", json=body, headers=auth(ADMIN_TOKEN))
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def world(module_app_client: TestClient, module_settings: Settings) -> World:
    client = module_app_client
    secrets: dict[str, str | None] = {"none": None, "garbage": "mgt_" + uuid.uuid4().hex * 2}
    for role in ("reader", "submitter", "reviewer", "operator", "admin", "auditor"):
        secrets[role] = _token(client, role)["token"]
    secrets["scoped"] = _token(client, "submitter", scope=TARGET)["token"]
    secrets["other"] = _token(client, "submitter", scope=OTHER)["token"]
    secrets["requester"] = _token(client, "submitter")["token"]

    revoked = _token(client, "admin")
    assert (
        client.delete(f"{API}/tokens/{revoked['id']}", headers=auth(ADMIN_TOKEN)).status_code == 200
    )
    secrets["revoked"] = revoked["token"]

    expired = _token(client, "admin", expires_in_days=1)
    engine = create_engine(module_settings.database_url)
    with engine.begin() as conn:
        conn.execute(
            update(ApiToken)
            .where(ApiToken.id == expired["id"])
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    engine.dispose()
    secrets["expired"] = expired["token"]

    headers = auth(ADMIN_TOKEN)
    for name in (TARGET, OTHER):
        assert client.post(f"{API}/models", json={"name": name}, headers=headers).status_code == 201
        assert (
            client.put(
                f"{API}/models/{name}/policy", json=STAGING_NEEDS_A_REVIEWER, headers=headers
            ).status_code
            == 200
        )
    artifact = b"matrix artifact bytes"
    assert (
        client.post(
            f"{API}/models/{TARGET}/versions", json=version_payload(), headers=headers
        ).status_code
        == 201
    )
    upload = client.put(
        f"{API}/models/{TARGET}/versions/1/artifact",
        content=artifact,
        headers={**headers, "Content-Type": "application/octet-stream"},
    )
    assert upload.status_code == 200, upload.text

    hook = {"url": "http://127.0.0.1:9/matrix", "secret": "s" * 16}
    webhook = client.post(f"{API}/webhooks", json=hook, headers=headers)
    spare_webhook = client.post(f"{API}/webhooks", json=hook, headers=headers)
    assert webhook.status_code == spare_webhook.status_code == 201, webhook.text

    w = World(
        client=client,
        secrets=secrets,
        artifact=artifact,
        promotion_id=0,
        webhook_id=webhook.json()["id"],
        spare_webhook_id=spare_webhook.json()["id"],
        spare_token_id=_token(client, "reader")["id"],
    )
    w.promotion_id = w.pending_promotion()
    w.rollout_id = _running_rollout(w)
    return w


def _running_rollout(w: World) -> int:
    """A rollout of TARGET for the rollout routes: a new version to production and another
    rolled out under a permissive policy (version 1 stays a candidate), then the matrix's
    policy back."""
    permissive = {
        "staging": {"rules": [], "approvals_required": 0, "auto_promote": True},
        "production": {"rules": [], "approvals_required": 0, "auto_promote": True,
                       "require_staging": False},
    }  # fmt: skip
    w.admin("PUT", f"{API}/models/{TARGET}/policy", json=permissive)
    incumbent = w.new_version()
    applied = w.admin(
        "POST",
        f"{API}/models/{TARGET}/promotions",
        json={"version": incumbent, "target": "production"},
    )
    assert applied["status"] == "applied", applied
    number = w.new_version()
    steps = [{"weight": 10, "hold": {"approval": True}}]
    rollout = w.admin("POST", f"{API}/models/{TARGET}/rollouts",
                      json={"version": number, "steps": steps})  # fmt: skip
    w.admin("PUT", f"{API}/models/{TARGET}/policy", json=STAGING_NEEDS_A_REVIEWER)
    rollout_id: int = rollout["id"]
    return rollout_id


# The request each route gets: path parameters filled in, a valid-looking body. -----------

Builder = Callable[[World, str], Request]
M = f"{API}/models/{TARGET}"
V = f"{M}/versions/1"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _fixed(method: str, url: str, **kwargs: Any) -> Builder:
    return lambda world, caller: Request(method, url, **kwargs)


def _create_model(world: World, caller: str) -> Request:
    # A scoped token may register only its own model: both scoped columns ask for TARGET
    # (a 409, it exists); the others register a fresh name.
    name = TARGET if caller in ("scoped", "other") else f"matrix-{uuid.uuid4().hex[:8]}"
    return Request("POST", f"{API}/models", json={"name": name})


def _decide(action: str) -> Builder:
    def build(world: World, caller: str) -> Request:
        body = {"comment": "matrix"}
        return Request("POST", f"{API}/promotions/{world.pending_promotion()}/{action}", json=body)

    return build


BUILDERS: dict[tuple[str, str], Builder] = {
    ("POST", f"{API}/models"): _create_model,
    ("GET", f"{API}/models"): _fixed("GET", f"{API}/models"),
    ("GET", f"{API}/models/{{model}}"): _fixed("GET", M),
    ("PATCH", f"{API}/models/{{model}}"): _fixed("PATCH", M, json={"description": "matrix"}),
    ("POST", f"{API}/models/{{model}}/versions"): _fixed(
        "POST", f"{M}/versions", json=version_payload()
    ),
    ("GET", f"{API}/models/{{model}}/versions"): _fixed("GET", f"{M}/versions"),
    ("GET", f"{API}/models/{{model}}/versions/{{version}}"): _fixed("GET", V),
    ("POST", f"{API}/models/{{model}}/versions/{{version}}/metrics"): _fixed(
        "POST", f"{V}/metrics", json={"metrics": [{"name": "f1", "value": 0.5, "dataset": "x"}]}
    ),
    ("GET", f"{API}/models/{{model}}/stages/{{stage}}"): _fixed("GET", f"{M}/stages/candidate"),
    ("PUT", f"{API}/models/{{model}}/versions/{{version}}/artifact"): lambda world, caller: Request(
        "PUT",
        f"{V}/artifact",
        content=world.artifact,
        headers={
            "Content-Type": "application/octet-stream",
            "X-Artifact-SHA256": sha256_hex(world.artifact),
        },
    ),
    ("GET", f"{API}/models/{{model}}/versions/{{version}}/artifact"): _fixed(
        "GET", f"{V}/artifact"
    ),
    ("GET", f"{API}/models/{{model}}/policy"): _fixed("GET", f"{M}/policy"),
    ("PUT", f"{API}/models/{{model}}/policy"): _fixed(
        "PUT", f"{M}/policy", json=STAGING_NEEDS_A_REVIEWER
    ),
    ("POST", f"{API}/models/{{model}}/versions/{{version}}/evaluate"): _fixed(
        "POST", f"{V}/evaluate", params={"target": "staging"}
    ),
    ("POST", f"{API}/models/{{model}}/promotions"): _fixed(
        "POST", f"{M}/promotions", json={"version": 1, "target": "staging"}
    ),
    ("GET", f"{API}/promotions"): _fixed(
        "GET", f"{API}/promotions", params={"status": "pending_approval"}
    ),
    ("GET", f"{API}/promotions/{{promotion_id}}"): lambda world, caller: Request(
        "GET", f"{API}/promotions/{world.promotion_id}"
    ),
    ("POST", f"{API}/promotions/{{promotion_id}}/approve"): _decide("approve"),
    ("POST", f"{API}/promotions/{{promotion_id}}/reject"): _decide("reject"),
    ("POST", f"{API}/promotions/{{promotion_id}}/cancel"): _decide("cancel"),
    ("POST", f"{API}/models/{{model}}/versions/{{version}}/archive"): lambda world, caller: Request(
        "POST", f"{M}/versions/{world.new_version()}/archive", json={"reason": "matrix"}
    ),
    ("POST", f"{API}/models/{{model}}/rollback"): _fixed(
        "POST", f"{M}/rollback", json={"reason": "matrix"}
    ),
    ("POST", f"{API}/models/{{model}}/freeze"): _fixed(
        "POST", f"{M}/freeze", json={"reason": "matrix"}
    ),
    ("POST", f"{API}/models/{{model}}/unfreeze"): _fixed(
        "POST", f"{M}/unfreeze", json={"reason": "matrix"}
    ),
    ("GET", f"{API}/models/{{model}}/history"): _fixed("GET", f"{M}/history"),
    ("POST", f"{API}/models/{{model}}/versions/{{version}}/reference-profile"): _fixed(
        "POST", f"{V}/reference-profile", json=PROFILE
    ),
    ("GET", f"{API}/models/{{model}}/versions/{{version}}/reference-profile"): _fixed(
        "GET", f"{V}/reference-profile"
    ),
    ("POST", f"{API}/models/{{model}}/drift-reports"): _fixed(
        "POST", f"{M}/drift-reports", json=PROFILE
    ),
    ("GET", f"{API}/models/{{model}}/drift-reports"): _fixed("GET", f"{M}/drift-reports"),
    ("GET", f"{API}/models/{{model}}/drift-reports/{{report_id}}"): _fixed(
        "GET", f"{M}/drift-reports/1"
    ),
    ("GET", f"{API}/models/{{model}}/aliases"): _fixed("GET", f"{M}/aliases"),
    ("GET", f"{API}/models/{{model}}/aliases/{{alias}}"): _fixed("GET", f"{M}/aliases/matrix"),
    ("PUT", f"{API}/models/{{model}}/aliases/{{alias}}"): _fixed(
        "PUT", f"{M}/aliases/matrix", json={"version": 1, "reason": "matrix"}
    ),
    ("DELETE", f"{API}/models/{{model}}/aliases/{{alias}}"): _fixed(
        "DELETE", f"{M}/aliases/matrix-gone"
    ),
    ("GET", f"{API}/models/{{model}}/aliases/{{alias}}/history"): _fixed(
        "GET", f"{M}/aliases/matrix/history"
    ),
    ("GET", f"{API}/models/{{model}}/versions/@{{alias}}"): _fixed("GET", f"{M}/versions/@matrix"),
    ("GET", f"{API}/models/{{model}}/versions/@{{alias}}/artifact"): _fixed(
        "GET", f"{M}/versions/@matrix/artifact"
    ),
    ("POST", f"{API}/models/{{model}}/versions/{{version}}/reproductions"): _fixed(
        "POST", f"{V}/reproductions", json={"metrics": []}
    ),
    ("GET", f"{API}/models/{{model}}/versions/{{version}}/reproductions"): _fixed(
        "GET", f"{V}/reproductions"
    ),
    ("POST", f"{API}/models/{{model}}/versions/{{version}}/data-checks"): _fixed(
        "POST", f"{V}/data-checks", json={"dataset": "matrix", "sample": {"amount": [1.0]}}
    ),
    ("GET", f"{API}/models/{{model}}/versions/{{version}}/data-checks"): _fixed(
        "GET", f"{V}/data-checks"
    ),
    ("POST", f"{API}/artifacts/scrub"): _fixed("POST", f"{API}/artifacts/scrub", json={"limit": 1}),
    ("GET", f"{API}/models/{{model}}/serving"): _fixed("GET", f"{M}/serving"),
    ("GET", f"{API}/models/-/serving"): _fixed(
        "GET", f"{API}/models/-/serving", params={"after": f"{TARGET}:0"}
    ),
    ("POST", f"{API}/models/{{model}}/observations"): lambda world, caller: Request(
        "POST",
        f"{M}/observations",
        json={
            "observations": [{"request_key": f"matrix-{caller}", "version": 1, "time": _now_iso()}]
        },
    ),
    ("GET", f"{API}/models/{{model}}/observations"): _fixed("GET", f"{M}/observations"),
    ("POST", f"{API}/models/{{model}}/labels"): _fixed(
        "POST", f"{M}/labels", json={"labels": [{"request_key": "matrix", "class": "a"}]}
    ),
    # The matrix's model has a rollout running (a start is a 409); the actions are asked
    # about a rollout that does not exist (404, past the authorization layer), so that no
    # caller changes the state the next one meets; reading asks about the running one.
    ("POST", f"{API}/models/{{model}}/rollouts"): _fixed(
        "POST",
        f"{M}/rollouts",
        json={"version": 1, "steps": [{"weight": 10, "hold": {"duration_seconds": 1}}]},
    ),
    ("GET", f"{API}/models/{{model}}/rollouts"): _fixed("GET", f"{M}/rollouts"),
    ("GET", f"{API}/rollouts/{{rollout_id}}"): lambda world, caller: Request(
        "GET", f"{API}/rollouts/{world.rollout_id}"
    ),
    ("POST", f"{API}/rollouts/{{rollout_id}}/advance"): _fixed(
        "POST", f"{API}/rollouts/999999/advance", json={"reason": "matrix"}
    ),
    ("POST", f"{API}/rollouts/{{rollout_id}}/approve"): _fixed(
        "POST", f"{API}/rollouts/999999/approve", json={"comment": "matrix"}
    ),
    ("POST", f"{API}/rollouts/{{rollout_id}}/pause"): _fixed(
        "POST", f"{API}/rollouts/999999/pause", json={}
    ),
    ("POST", f"{API}/rollouts/{{rollout_id}}/resume"): _fixed(
        "POST", f"{API}/rollouts/999999/resume", json={}
    ),
    ("POST", f"{API}/rollouts/{{rollout_id}}/abort"): _fixed(
        "POST", f"{API}/rollouts/999999/abort", json={"reason": "matrix"}
    ),
    ("GET", f"{API}/models/{{model}}/drift-settings"): _fixed("GET", f"{M}/drift-settings"),
    ("PUT", f"{API}/models/{{model}}/drift-settings"): _fixed(
        "PUT", f"{M}/drift-settings", json={}
    ),
    ("POST", f"{API}/tokens"): lambda world, caller: Request(
        "POST", f"{API}/tokens", json={"name": f"matrix-{caller}", "role": "reader"}
    ),
    ("GET", f"{API}/tokens"): _fixed("GET", f"{API}/tokens"),
    ("GET", f"{API}/principals"): _fixed("GET", f"{API}/principals"),
    ("DELETE", f"{API}/tokens/{{token_id}}"): lambda world, caller: Request(
        "DELETE", f"{API}/tokens/{world.spare_token_id}"
    ),
    ("GET", f"{API}/audit"): _fixed("GET", f"{API}/audit", params={"limit": "5"}),
    ("GET", f"{API}/audit/verify"): _fixed("GET", f"{API}/audit/verify"),
    ("GET", f"{API}/audit/export"): _fixed("GET", f"{API}/audit/export"),
    ("POST", f"{API}/webhooks"): _fixed(
        "POST", f"{API}/webhooks", json={"url": "http://127.0.0.1:9/x", "secret": "s" * 16}
    ),
    ("GET", f"{API}/webhooks"): _fixed("GET", f"{API}/webhooks"),
    ("GET", f"{API}/webhooks/{{webhook_id}}"): lambda world, caller: Request(
        "GET", f"{API}/webhooks/{world.webhook_id}"
    ),
    ("DELETE", f"{API}/webhooks/{{webhook_id}}"): lambda world, caller: Request(
        "DELETE", f"{API}/webhooks/{world.spare_webhook_id}"
    ),
    ("GET", f"{API}/webhooks/{{webhook_id}}/deliveries"): lambda world, caller: Request(
        "GET", f"{API}/webhooks/{world.webhook_id}/deliveries"
    ),
    ("POST", f"{API}/webhooks/{{webhook_id}}/deliveries/{{delivery_id}}/redeliver"): (
        lambda world, caller: Request(
            "POST", f"{API}/webhooks/{world.webhook_id}/deliveries/1/redeliver"
        )
    ),
    ("GET", f"{API}/healthz"): _fixed("GET", f"{API}/healthz"),
    ("GET", f"{API}/readyz"): _fixed("GET", f"{API}/readyz"),
    ("GET", f"{API}/metrics"): _fixed("GET", f"{API}/metrics"),
    ("GET", "/healthz"): _fixed("GET", "/healthz"),
    ("GET", "/readyz"): _fixed("GET", "/readyz"),
    ("GET", "/metrics"): _fixed("GET", "/metrics"),
    ("GET", f"{API}/openapi.json"): _fixed("GET", f"{API}/openapi.json"),
    ("GET", f"{API}/docs"): _fixed("GET", f"{API}/docs"),
    ("GET", f"{API}/docs/assets/{{name}}"): _fixed("GET", f"{API}/docs/assets/swagger-ui.css"),
    ("GET", f"{API}/redoc"): _fixed("GET", f"{API}/redoc"),
    ("GET", f"{API}/problems"): _fixed("GET", f"{API}/problems"),
    ("GET", f"{API}/problems/{{code}}"): _fixed("GET", f"{API}/problems/model-not-found"),
}


def _verdict(expected: Outcome, response: Any) -> str | None:
    """Why ``response`` does not match ``expected``, or None when it does."""
    status = response.status_code
    if status >= 500:
        return f"server error {status}: {response.text[:200]}"
    if expected is Outcome.ALLOWED:
        return f"refused with {status}" if status in (401, 403) else None
    if status != int(expected.value):
        return f"got {status}: {response.text[:160]}"
    if not response.headers.get("content-type", "").startswith(PROBLEM):
        return f"{status} is not a problem+json"
    code = response.json().get("code")
    wanted = {
        Outcome.UNAUTHENTICATED: "unauthenticated",
        Outcome.FORBIDDEN: "forbidden",
    }.get(expected)
    if wanted is not None and code != wanted:
        return f"{status} with code {code!r}, expected {wanted!r}"
    if expected is Outcome.UNAUTHENTICATED and "www-authenticate" not in response.headers:
        return "401 without WWW-Authenticate"
    return None


@pytest.mark.parametrize("rule", MATRIX, ids=lambda r: f"{r.method} {r.path}")
def test_every_cell(world: World, rule: Rule) -> None:
    build = BUILDERS[rule.route]
    mismatches: list[str] = []
    statuses: dict[str, int] = {}
    for caller in CALLER_KEYS:
        request = build(world, caller)
        secret = world.secrets[caller]
        headers = {**request.headers, **(auth(secret) if secret else {})}
        kwargs: dict[str, Any] = {"params": request.params, "headers": headers}
        if request.json is not None:
            kwargs["content"] = json.dumps(request.json)
            headers["Content-Type"] = "application/json"
        elif request.content is not None:
            kwargs["content"] = request.content
        response = world.client.request(request.method, request.url, **kwargs)
        statuses[caller] = response.status_code
        why = _verdict(rule.cells[caller], response)
        if why:
            mismatches.append(f"{caller:>9} expected {rule.cells[caller].value}: {why}")
    if any(cell is Outcome.HIDDEN for cell in rule.cells.values()):
        # A 404 hides the resource only if it exists: those allowed must find it.
        found_404 = [
            c for c, o in rule.cells.items() if o is Outcome.ALLOWED and statuses[c] == 404
        ]
        if found_404:
            mismatches.append(f"the resource is missing for allowed callers {found_404}")
    assert not mismatches, f"{rule.method} {rule.path}\n" + "\n".join(mismatches)


def test_scoped_deciders_see_other_models_requests_as_missing(world: World) -> None:
    """A reviewer or operator scoped to one model gets 404 for another model's request,
    pending or decided, on every decision (no 403 or 409 telling it exists and its
    state); on its own model it decides."""
    reviewer = _token(world.client, "reviewer", scope=OTHER)["token"]
    operator = _token(world.client, "operator", scope=OTHER)["token"]
    pending = world.pending_promotion()
    decided = world.pending_promotion()
    assert (
        world.client.post(
            f"{API}/promotions/{decided}/reject", json={"comment": "no"}, headers=auth(ADMIN_TOKEN)
        ).status_code
        == 200
    )
    for promotion in (pending, decided, 10**9):
        for secret, action in ((reviewer, "approve"), (reviewer, "reject"), (operator, "cancel")):
            response = world.client.post(
                f"{API}/promotions/{promotion}/{action}",
                json={"comment": "matrix"},
                headers=auth(secret),
            )
            assert response.status_code == 404, (promotion, action, response.text)
            assert response.json()["code"] == "promotion-not-found", response.text
    own = world.pending_promotion(OTHER)
    response = world.client.post(f"{API}/promotions/{own}/approve", json={}, headers=auth(reviewer))
    assert response.status_code == 200, response.text
    # The request the scoped tokens could not see is still pending.
    response = world.client.get(f"{API}/promotions/{pending}", headers=auth(ADMIN_TOKEN))
    assert response.json()["status"] == "pending_approval"


def app_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path template) of every route the application answers with a bearer token.

    The console (``/``, ``/ui/...``) authenticates by session cookie, not bearer token:
    its authorization (roles, CSRF, sessions) is tested in a browser in tests/console."""
    found: set[tuple[str, str]] = set()
    for context in routing.iter_route_contexts(app.routes):
        path = context.path_format or context.path
        assert path is not None, context
        if path in ("/", "/ui") or path.startswith("/ui/"):
            continue
        if path.startswith("/api/2.0/"):
            # The MLflow door answers in MLflow's error shape; its authorization is
            # tested against its /api/v1 counterparts in tests/mlflow.
            continue
        for method in context.methods or ():
            if method not in IGNORED_METHODS:
                found.add((method, path))
    return found


@pytest.fixture(scope="module")
def bare_app() -> Any:
    """The application, built from defaults (no lifespan: nothing is opened)."""
    return create_app(Settings.model_construct())


def test_the_matrix_lists_every_route_of_the_application(bare_app: Any) -> None:
    listed = {r.route for r in MATRIX}
    actual = app_routes(bare_app)
    assert actual, "no routes found: has the routing API changed?"
    missing = sorted(actual - listed)
    stale = sorted(listed - actual)
    assert not missing, (
        "routes missing from tests/support/authz.py (add a row, then run "
        f"scripts/render-authz): {missing}"
    )
    assert not stale, f"rows of tests/support/authz.py for routes that do not exist: {stale}"


def test_the_matrix_lists_every_operation_of_the_spec(bare_app: Any) -> None:
    spec = bare_app.openapi()
    operations = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete", "patch"}
    }
    listed = {r.route for r in MATRIX}
    assert operations <= listed, sorted(operations - listed)


def test_every_row_has_a_request() -> None:
    assert set(BUILDERS) == {r.route for r in MATRIX}


def test_the_matrix_speaks_for_every_kind_of_caller() -> None:
    for rule in MATRIX:
        assert tuple(rule.cells) == CALLER_KEYS, rule.route
        if rule.who != "anyone":
            # A token that does not authenticate never gets further than a 401.
            for caller in ("none", "garbage", "revoked", "expired"):
                assert rule.cells[caller] is Outcome.UNAUTHENTICATED, (rule.route, caller)


def test_the_committed_page_is_rendered_from_the_matrix() -> None:
    page = Path(__file__).resolve().parents[2] / DOC_PATH
    assert page.is_file(), f"{DOC_PATH} is missing: run scripts/render-authz"
    assert page.read_text(encoding="utf-8") == render_markdown(), (
        f"{DOC_PATH} is out of date with tests/support/authz.py: run scripts/render-authz"
    )
