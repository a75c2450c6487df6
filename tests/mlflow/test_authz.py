"""Who may call each route of the MLflow door, answered in MLflow's error shape.

The bearer matrix of ``/api/v1`` (tests/security/test_authz_matrix.py) leaves out
``/api/2.0/...``: its refusals are problem+json. Here every MLflow route refuses a call
without a token, with a malformed or unknown one (401 ``UNAUTHENTICATED``), with a role
below its ``/api/v1`` counterpart's, or with a token scoped to another model (403
``PERMISSION_DENIED``), and answers the role it needs. A route added to the door without
a row here fails :func:`test_every_mlflow_route_has_a_row`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import routing
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.support.api import ADMIN_TOKEN
from tests.support.flows import new_version

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
MODEL = "fraud"
OTHER = "churn"


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # the route's template, as the application registers it
    role: str  # the least role that may call it (its /api/v1 counterpart's)
    scoped: bool  # names one model: a token scoped to another is refused
    url: str  # a concrete call
    fields: dict[str, Any]

    def send(self, client: TestClient, headers: dict[str, str]) -> Any:
        if self.method == "GET":
            return client.get(self.url, params=self.fields, headers=headers)
        return client.request(self.method, self.url, json=self.fields, headers=headers)


def row(method: str, path: str, role: str, scoped: bool = True, **fields: Any) -> Row:
    url = path if path.startswith("/") else f"{API}/{path}"
    return Row(method, url, role, scoped, url, fields)


NAMED: dict[str, Any] = {"name": MODEL}
VERSION: dict[str, Any] = {"name": MODEL, "version": "1"}
ROWS = [
    row("POST", "registered-models/create", "submitter", **NAMED),
    row("GET", "registered-models/get", "reader", **NAMED),
    row("GET", "registered-models/search", "reader", scoped=False),
    row("POST", "registered-models/search", "reader", scoped=False),
    row("PATCH", "registered-models/update", "submitter", **NAMED, description="d"),
    row("POST", "registered-models/set-tag", "submitter", **NAMED, key="k", value="v"),
    row("DELETE", "registered-models/delete-tag", "submitter", **NAMED, key="k"),
    row("POST", "registered-models/rename", "submitter", scoped=False, **NAMED, new_name="x"),
    row("DELETE", "registered-models/delete", "submitter", scoped=False, **NAMED),
    row("GET", "registered-models/get-latest-versions", "reader", **NAMED),
    row("POST", "registered-models/get-latest-versions", "reader", **NAMED),
    row("POST", "registered-models/alias", "submitter", **NAMED, alias="champion", version="1"),
    row("DELETE", "registered-models/alias", "submitter", **NAMED, alias="champion"),
    row("GET", "registered-models/alias", "reader", **NAMED, alias="champion"),
    row("POST", "model-versions/create", "submitter", **NAMED, source="s3://b/k"),
    row("GET", "model-versions/get", "reader", **VERSION),
    row("GET", "model-versions/search", "reader", scoped=False),
    row("POST", "model-versions/search", "reader", scoped=False),
    row("PATCH", "model-versions/update", "submitter", **VERSION, description="d"),
    row("POST", "model-versions/set-tag", "submitter", **VERSION, key="k", value="v"),
    row("DELETE", "model-versions/delete-tag", "submitter", **VERSION, key="k"),
    row("DELETE", "model-versions/delete", "submitter", scoped=False, **VERSION),
    row("POST", "model-versions/transition-stage", "submitter", **VERSION, stage="Archived"),
    row("GET", "model-versions/get-download-uri", "reader", **VERSION),
    Row("GET", ARTIFACTS, "reader", True, ARTIFACTS, {"path": f"modelgate/{MODEL}/1"}),
    Row("GET", ARTIFACTS + "/{path}", "reader", True,
        f"{ARTIFACTS}/modelgate/{MODEL}/1/artifact", {}),
]  # fmt: skip
# Unknown paths answer ENDPOINT_NOT_FOUND to anyone: they reveal nothing.
CATCH_ALL = API + "/{rest}"
LOWER = {"submitter": "reader", "reader": None}


def mlflow_routes(app: Any) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for context in routing.iter_route_contexts(app.routes):
        path = context.path_format or context.path
        if path is None or not path.startswith("/api/2.0/") or path == CATCH_ALL:
            continue
        for method in context.methods or ():
            if method != "HEAD":
                found.add((method, path))
    return found


def test_every_mlflow_route_has_a_row() -> None:
    app = create_app(Settings.model_construct())
    assert mlflow_routes(app) == {(r.method, r.path) for r in ROWS}


@pytest.fixture
def world(settings: Settings, make_token: Any) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """Two models with a version each, and tokens of every role (scoped ones to OTHER)."""
    app = create_app(settings)
    with TestClient(app, base_url="http://modelgate.test") as client:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        client.headers.update(admin)
        for name in (MODEL, OTHER):
            assert client.post("/api/v1/models", json={"name": name}).status_code == 201
            new_version(client, name)
        client.headers.pop("Authorization")
        tokens = {
            "reader": make_token("reader"),
            "submitter": make_token("submitter"),
            "auditor": make_token("auditor"),
            "scoped-reader": make_token("reader", model_scope=OTHER),
            "scoped-submitter": make_token("submitter", model_scope=OTHER),
        }
        yield client, tokens


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def assert_mlflow_error(response: Any, status: int, code: str, where: Row) -> None:
    assert response.status_code == status, (where.method, where.url, response.text)
    assert response.headers["content-type"] == "application/json", (where.url, response.text)
    body = response.json()
    assert body["error_code"] == code, (where.method, where.url, body)
    assert body["message"], body


def test_mlflow_routes_refuse_missing_wrong_and_weak_tokens(
    world: tuple[TestClient, dict[str, str]],
) -> None:
    client, tokens = world
    for entry in ROWS:  # one world for all rows: each call is refused or harmless
        check_row(client, tokens, entry)


def check_row(client: TestClient, tokens: dict[str, str], entry: Row) -> None:
    basic_wrong = base64.b64encode(b"someone:mgt_not-a-token").decode()
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Token abc"},
        bearer("mgt_not-a-token"),
        {"Authorization": f"Basic {basic_wrong}"},
        {"Authorization": "Basic !!!"},
    ):
        assert_mlflow_error(entry.send(client, headers), 401, "UNAUTHENTICATED", entry)
    lower = LOWER[entry.role]
    if lower is not None:
        weak = entry.send(client, bearer(tokens[lower]))
        assert_mlflow_error(weak, 403, "PERMISSION_DENIED", entry)
        assert entry.role in weak.json()["message"]
        # The auditor reads, like a reader, and writes nothing.
        assert_mlflow_error(
            entry.send(client, bearer(tokens["auditor"])), 403, "PERMISSION_DENIED", entry
        )
    if entry.scoped:
        scoped = entry.send(client, bearer(tokens[f"scoped-{entry.role}"]))
        assert_mlflow_error(scoped, 403, "PERMISSION_DENIED", entry)
        assert OTHER in scoped.json()["message"]
    # The role it needs gets past authorization (what follows is the route's own answer).
    allowed = entry.send(client, bearer(tokens[entry.role]))
    assert allowed.status_code not in (401, 403), (entry.method, entry.url, allowed.text)


def test_scoped_tokens_search_only_their_model(world: tuple[TestClient, dict[str, str]]) -> None:
    client, tokens = world
    scoped = bearer(tokens["scoped-reader"])
    models = client.get(f"{API}/registered-models/search", headers=scoped).json()
    assert [m["name"] for m in models["registered_models"]] == [OTHER]
    versions = client.get(f"{API}/model-versions/search", headers=scoped).json()
    assert {v["name"] for v in versions["model_versions"]} == {OTHER}
    named = client.get(
        f"{API}/model-versions/search", params={"filter": f"name='{MODEL}'"}, headers=scoped
    ).json()
    assert named["model_versions"] == []
    basic = base64.b64encode(f"anyone:{tokens['scoped-reader']}".encode()).decode()
    read = client.get(
        f"{API}/registered-models/get", params={"name": OTHER},
        headers={"Authorization": f"Basic {basic}"},
    )  # fmt: skip
    assert read.status_code == 200, read.text


def test_unknown_mlflow_paths_reveal_nothing(world: tuple[TestClient, dict[str, str]]) -> None:
    client, _ = world
    for headers in ({}, bearer("mgt_not-a-token"), bearer(ADMIN_TOKEN)):
        response = client.post(f"{API}/runs/create", json={}, headers=headers)
        assert response.status_code == 404
        assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"
