"""The MLflow wire conventions, in process on both backends: auth, shapes, error codes,
search filters and page tokens, registration from s3:// and failures."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.support.api import ADMIN_TOKEN, full_lineage
from tests.support.flows import gate, new_version, permissive_policy, put_policy

API = "/api/2.0/mlflow"


@pytest.fixture
def mlflow(settings: Settings, s3_endpoint: str) -> Iterator[TestClient]:
    """The app with an admin bearer token, able to read s3:// sources on the moto server."""
    app = create_app(settings.model_copy(update={"s3_endpoint_url": s3_endpoint}))
    with TestClient(app, base_url="http://modelgate.test") as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield client


def create(client: TestClient, name: str, **extra: Any) -> dict[str, Any]:
    response = client.post(f"{API}/registered-models/create", json={"name": name, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_authentication_bearer_basic_and_errors(mlflow: TestClient) -> None:
    bare = mlflow.get(f"{API}/registered-models/search", headers={"Authorization": ""})
    assert bare.status_code == 401
    assert bare.json()["error_code"] == "UNAUTHENTICATED"
    basic = base64.b64encode(f"anyone:{ADMIN_TOKEN}".encode()).decode()
    ok = mlflow.get(f"{API}/registered-models/search", headers={"Authorization": f"Basic {basic}"})
    assert ok.status_code == 200
    wrong = base64.b64encode(b"anyone:mgt_wrong").decode()
    denied = mlflow.get(
        f"{API}/registered-models/search", headers={"Authorization": f"Basic {wrong}"}
    )
    assert denied.json()["error_code"] == "UNAUTHENTICATED"


def test_reader_cannot_create(mlflow: TestClient, make_token: Any) -> None:
    reader = make_token("reader")
    response = mlflow.post(
        f"{API}/registered-models/create",
        json={"name": "m"},
        headers={"Authorization": f"Bearer {reader}"},
    )
    assert response.status_code == 403
    assert response.json()["error_code"] == "PERMISSION_DENIED"


def test_models_shapes_errors_and_search(mlflow: TestClient) -> None:
    body = create(mlflow, "fraud", description="d", tags=[{"key": "team", "value": "risk"}])
    model = body["registered_model"]
    assert model["name"] == "fraud"
    assert model["tags"] == [{"key": "team", "value": "risk"}]
    assert isinstance(model["creation_timestamp"], int)
    again = mlflow.post(f"{API}/registered-models/create", json={"name": "fraud"})
    assert again.status_code == 400
    assert again.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    missing = mlflow.get(f"{API}/registered-models/get", params={"name": "nope"})
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    bad_name = mlflow.post(f"{API}/registered-models/create", json={"name": "a b"})
    assert bad_name.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    for name in ("churn", "ranker", "prompt-x"):
        create(mlflow, name)
    tag = mlflow.post(
        f"{API}/registered-models/set-tag",
        json={"name": "prompt-x", "key": "mlflow.prompt.is_prompt", "value": "true"},
    )
    assert tag.status_code == 200
    assert tag.json() == {}
    prompt_clause = "tag.`mlflow.prompt.is_prompt` != 'true'"
    first = mlflow.get(
        f"{API}/registered-models/search",
        params={"filter": prompt_clause, "max_results": 2, "order_by": ["name DESC"]},
    ).json()
    assert [m["name"] for m in first["registered_models"]] == ["ranker", "fraud"]
    second = mlflow.get(
        f"{API}/registered-models/search",
        params={
            "filter": prompt_clause, "max_results": 2, "order_by": ["name DESC"],
            "page_token": first["next_page_token"],
        },
    ).json()  # fmt: skip
    assert [m["name"] for m in second["registered_models"]] == ["churn"]
    assert "next_page_token" not in second
    liked = mlflow.get(
        f"{API}/registered-models/search",
        params={"filter": f"name ILIKE 'FR%' AND {prompt_clause}"},
    ).json()
    assert [m["name"] for m in liked["registered_models"]] == ["fraud"]
    broken = mlflow.get(f"{API}/registered-models/search", params={"filter": "name ~ 1"})
    assert broken.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    for path in ("registered-models/rename", "registered-models/delete"):
        refused = mlflow.request(
            "POST" if path.endswith("rename") else "DELETE", f"{API}/{path}", json={"name": "x"}
        )
        assert refused.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_unsupported_endpoints_answer_endpoint_not_found(mlflow: TestClient) -> None:
    for method, path in (("GET", "runs/get"), ("POST", "experiments/create"), ("GET", "nope")):
        response = mlflow.request(method, f"{API}/{path}")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_s3_source_registers_and_downloads_byte_identical(
    mlflow: TestClient, s3_client: Any, s3_bucket: str
) -> None:
    files = {"MLmodel": b"flavors: {}\n", "data/model.pkl": bytes(range(256)) * 40}
    for path, data in files.items():
        s3_client.put_object(Bucket=s3_bucket, Key=f"runs/7/model/{path}", Body=data)
    create(mlflow, "fraud")
    made = mlflow.post(
        f"{API}/model-versions/create",
        json={"name": "fraud", "source": f"s3://{s3_bucket}/runs/7/model",
              "tags": [{"key": "fold", "value": "1"}], "description": "first"},
    )  # fmt: skip
    assert made.status_code == 200, made.text
    version = made.json()["model_version"]
    assert version["version"] == "1"
    assert version["status"] == "READY"
    assert version["current_stage"] == "None"
    uri = mlflow.get(
        f"{API}/model-versions/get-download-uri", params={"name": "fraud", "version": "1"}
    ).json()["artifact_uri"]
    assert uri == "http://modelgate.test/api/2.0/mlflow-artifacts/artifacts/modelgate/fraud/1"
    listing = mlflow.get(
        "/api/2.0/mlflow-artifacts/artifacts", params={"path": "modelgate/fraud/1"}
    ).json()
    assert listing["files"] == [
        {"path": "MLmodel", "is_dir": False, "file_size": len(files["MLmodel"])},
        {"path": "data", "is_dir": True},
    ]
    for path, data in files.items():
        got = mlflow.get(f"/api/2.0/mlflow-artifacts/artifacts/modelgate/fraud/1/{path}")
        assert got.status_code == 200
        assert got.content == data
    read = mlflow.get("/api/v1/models/fraud/versions/1").json()
    assert read["artifact"]["status"] == "verified"
    assert read["tags"] == {"fold": "1"}
    searched = mlflow.get(
        f"{API}/model-versions/search", params={"filter": "name='fraud' AND tags.fold = '1'"}
    ).json()
    assert [v["version"] for v in searched["model_versions"]] == ["1"]
    latest = mlflow.post(
        f"{API}/registered-models/get-latest-versions", json={"name": "fraud", "stages": ["None"]}
    ).json()
    assert [v["version"] for v in latest["model_versions"]] == ["1"]


def test_unreadable_source_fails_registration_with_the_reason(mlflow: TestClient) -> None:
    create(mlflow, "fraud")
    made = mlflow.post(
        f"{API}/model-versions/create", json={"name": "fraud", "source": "/home/me/model"}
    ).json()["model_version"]
    assert made["status"] == "FAILED_REGISTRATION"
    assert "cannot read source" in made["status_message"]
    tracked = mlflow.post(
        f"{API}/model-versions/create", json={"name": "fraud", "source": "runs:/abc/model"}
    ).json()["model_version"]
    assert tracked["status"] == "FAILED_REGISTRATION"
    assert "MODELGATE_MLFLOW_TRACKING_URI" in tracked["status_message"]
    listing = mlflow.get(
        "/api/2.0/mlflow-artifacts/artifacts", params={"path": "modelgate/fraud/1"}
    )
    assert listing.status_code == 404
    assert "FAILED_REGISTRATION" in listing.json()["message"]


def test_transitions_go_through_the_gates(mlflow: TestClient) -> None:
    create(mlflow, "fraud")
    patched = mlflow.patch(
        "/api/v1/models/fraud", json={"primary_metric": "accuracy", "primary_dataset": "mlflow"}
    )
    assert patched.status_code == 200, patched.text
    payload = b"weights"
    digest = hashlib.sha256(payload).hexdigest()
    made = mlflow.post(
        "/api/v1/models/fraud/versions",
        json={"lineage": full_lineage(), "artifact": {"sha256": digest}},
    )
    assert made.status_code == 201, made.text
    mlflow.put(
        "/api/v1/models/fraud/versions/1/artifact",
        content=payload,
        headers={"X-Artifact-SHA256": digest},
    )
    mlflow.post("/api/v1/models/fraud/versions", json={"lineage": {}})
    refused = mlflow.post(
        f"{API}/model-versions/transition-stage",
        json={"name": "fraud", "version": "2", "stage": "Staging",
              "archive_existing_versions": False},
    )  # fmt: skip
    assert refused.status_code == 400
    assert refused.json()["error_code"] == "INVALID_STATE"
    message = refused.json()["message"]
    assert "artifact_intact" in message
    assert "lineage_complete" in message
    # The refused request was kept, not rolled back with the error.
    requests = mlflow.get("/api/v1/promotions", params={"status": "rejected"}).json()["items"]
    assert len(requests) == 1
    staged = mlflow.post(
        f"{API}/model-versions/transition-stage",
        json={"name": "fraud", "version": "1", "stage": "staging"},
    )
    assert staged.status_code == 200, staged.text
    assert staged.json()["model_version"]["current_stage"] == "Staging"
    skipped = mlflow.post(
        f"{API}/model-versions/transition-stage",
        json={"name": "fraud", "version": "2", "stage": "Production"},
    )
    assert "staging" in skipped.json()["message"]
    pending = mlflow.post(
        f"{API}/model-versions/transition-stage",
        json={"name": "fraud", "version": "1", "stage": "Production"},
    )
    assert pending.json()["error_code"] == "INVALID_STATE"
    assert "/approve" in pending.json()["message"]
    archived = mlflow.post(
        f"{API}/model-versions/transition-stage",
        json={"name": "fraud", "version": "2", "stage": "Archived"},
    )
    assert archived.json()["model_version"]["current_stage"] == "Archived"
    back = mlflow.post(
        f"{API}/model-versions/transition-stage",
        json={"name": "fraud", "version": "2", "stage": "None"},
    )
    assert back.json()["error_code"] == "INVALID_STATE"


def test_aliases_move_modelgate_aliases_and_show_everywhere(mlflow: TestClient) -> None:
    create(mlflow, "fraud")
    for accuracy in (0.91, 0.97):
        new_version(mlflow, "fraud", accuracy=accuracy)
    alias = f"{API}/registered-models/alias"
    for name, version in (("champion", "2"), ("challenger", 1)):
        made = mlflow.post(alias, json={"name": "fraud", "alias": name, "version": version})
        assert made.status_code == 200, made.text
        assert made.json() == {}
    got = mlflow.get(alias, params={"name": "fraud", "alias": "champion"})
    assert got.status_code == 200, got.text
    assert got.json()["model_version"]["version"] == "2"
    assert got.json()["model_version"]["aliases"] == ["champion"]
    model = mlflow.get(f"{API}/registered-models/get", params={"name": "fraud"}).json()
    assert sorted(model["registered_model"]["aliases"], key=lambda a: a["alias"]) == [
        {"alias": "challenger", "version": "1"},
        {"alias": "champion", "version": "2"},
    ]
    searched = mlflow.get(f"{API}/model-versions/search", params={"filter": "name='fraud'"}).json()
    assert {v["version"]: v["aliases"] for v in searched["model_versions"]} == {
        "2": ["champion"],
        "1": ["challenger"],
    }
    found = mlflow.post(f"{API}/registered-models/search", json={"filter": "name='fraud'"}).json()
    assert len(found["registered_models"][0]["aliases"]) == 2
    # Modelgate's own API sees the same aliases, their history and the audit events.
    own = mlflow.get("/api/v1/models/fraud/aliases").json()
    assert {a["name"]: a["version"] for a in own} == {"challenger": 1, "champion": 2}
    moved = mlflow.post(alias, json={"name": "fraud", "alias": "champion", "version": "1"})
    assert moved.status_code == 200, moved.text
    moves = mlflow.get("/api/v1/models/fraud/aliases/champion/history").json()["items"]
    assert [(m["from_version"], m["to_version"]) for m in moves] == [(2, 1), (None, 2)]
    assert moves[0]["reason"] == "MLflow set_registered_model_alias"
    events = mlflow.get("/api/v1/audit", params={"model": "fraud", "limit": 100}).json()["items"]
    assert sum(e["action"] == "alias.moved" for e in events) == 3

    deleted = mlflow.request("DELETE", alias, json={"name": "fraud", "alias": "challenger"})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {}
    events = mlflow.get("/api/v1/audit", params={"model": "fraud", "limit": 100}).json()["items"]
    assert [e["action"] for e in events].count("alias.removed") == 1
    assert [a["name"] for a in mlflow.get("/api/v1/models/fraud/aliases").json()] == ["champion"]
    # Errors in MLflow's shape.
    # An alias that is not set: exactly what MLflow's server answers (clients match it).
    gone = mlflow.get(alias, params={"name": "fraud", "alias": "challenger"})
    assert gone.status_code == 400
    assert gone.json() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "Registered model alias challenger not found.",
    }
    odd = mlflow.get(alias, params={"name": "fraud", "alias": "Best_Model"})
    assert odd.json()["message"] == "Registered model alias Best_Model not found."
    # Removing it again is nothing to do, as in MLflow: no error, nothing recorded.
    for name in ("challenger", "Best_Model"):
        again = mlflow.request("DELETE", alias, json={"name": "fraud", "alias": name})
        assert again.status_code == 200, again.text
    events = mlflow.get("/api/v1/audit", params={"model": "fraud", "limit": 100}).json()["items"]
    assert [e["action"] for e in events].count("alias.removed") == 1
    no_model_delete = mlflow.request("DELETE", alias, json={"name": "nope", "alias": "x"})
    assert no_model_delete.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    no_version = mlflow.post(alias, json={"name": "fraud", "alias": "champion", "version": "9"})
    assert no_version.status_code == 404
    assert no_version.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    no_model = mlflow.get(alias, params={"name": "nope", "alias": "champion"})
    assert no_model.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    for bad in ("Champion", "best_model", "latest", "v2", "a/b"):
        refused = mlflow.post(alias, json={"name": "fraud", "alias": bad, "version": "1"})
        assert refused.status_code == 400
        assert refused.json()["error_code"] == "INVALID_PARAMETER_VALUE", bad
    # As in MLflow, `latest` reads as the newest version.
    latest = mlflow.get(alias, params={"name": "fraud", "alias": "LATEST"})
    assert latest.json()["model_version"]["version"] == "2"
    bad = mlflow.get(alias, params={"name": "fraud", "alias": "a/b"})
    assert bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "Invalid alias name" in bad.json()["message"]
    missing = mlflow.post(alias, json={"name": "fraud", "version": "1"})
    assert missing.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "alias" in missing.json()["message"]
    assert [a["name"] for a in mlflow.get("/api/v1/models/fraud/aliases").json()] == ["champion"]


def test_a_protected_alias_moves_only_through_its_gates(
    mlflow: TestClient, make_token: Any
) -> None:
    create(mlflow, "fraud")
    weak = new_version(mlflow, "fraud", accuracy=0.90)
    strong = new_version(mlflow, "fraud", accuracy=0.97)
    policy = permissive_policy()
    policy["aliases"] = {
        "champion": {
            "rules": [gate("threshold", "good-enough", metric="accuracy", dataset="holdout",
                           value=0.95)],
            "approvals_required": 0,
            "auto_promote": True,
        }
    }  # fmt: skip
    put_policy(mlflow, "fraud", policy)
    alias = f"{API}/registered-models/alias"
    refused = mlflow.post(alias, json={"name": "fraud", "alias": "champion", "version": str(weak)})
    assert refused.status_code == 400
    body = refused.json()
    assert body["error_code"] == "INVALID_STATE"
    assert "good-enough" in body["message"]
    assert "0.95" in body["message"]  # the threshold
    assert "0.9" in body["message"]  # what was observed
    assert mlflow.get("/api/v1/models/fraud/aliases").json() == []
    ok = mlflow.post(alias, json={"name": "fraud", "alias": "champion", "version": str(strong)})
    assert ok.status_code == 200, ok.text
    # A protected alias is removed by an admin only, as on /api/v1.
    submitter = make_token("submitter")
    kept = mlflow.request(
        "DELETE", alias, json={"name": "fraud", "alias": "champion"},
        headers={"Authorization": f"Bearer {submitter}"},
    )  # fmt: skip
    assert kept.status_code == 403
    assert kept.json()["error_code"] == "PERMISSION_DENIED"
    assert [a["version"] for a in mlflow.get("/api/v1/models/fraud/aliases").json()] == [strong]
    policy["aliases"]["champion"]["approvals_required"] = 1
    put_policy(mlflow, "fraud", policy)
    # With approvals required, the gates still come first: no request for a failing version.
    waits = mlflow.post(alias, json={"name": "fraud", "alias": "champion", "version": str(weak)})
    assert waits.json()["error_code"] == "INVALID_STATE"
    assert "good-enough" in waits.json()["message"]
    # A version that passes the gates: the move is a promotion request, named in the error
    # with how to approve it, and kept although the answer is an error.
    stronger = new_version(mlflow, "fraud", accuracy=0.98)
    asked = mlflow.post(alias, json={"name": "fraud", "alias": "champion",
                                     "version": str(stronger)})  # fmt: skip
    assert asked.status_code == 400
    assert asked.json()["error_code"] == "INVALID_STATE"
    message = asked.json()["message"]
    pending = mlflow.get(
        "/api/v1/promotions", params={"model": "fraud", "status": "pending_approval"}
    )
    assert pending.status_code == 200, pending.text
    (request,) = [p for p in pending.json()["items"] if p["version"] == stronger]
    assert f"promotion request {request['id']}" in message
    assert f"/api/v1/promotions/{request['id']}/approve" in message
    assert [a["version"] for a in mlflow.get("/api/v1/models/fraud/aliases").json()] == [strong]
    reviewer = make_token("reviewer")
    approved = mlflow.post(
        f"/api/v1/promotions/{request['id']}/approve", json={"comment": "looks right"},
        headers={"Authorization": f"Bearer {reviewer}"},
    )  # fmt: skip
    assert approved.status_code == 200, approved.text
    champion = mlflow.get(f"{API}/registered-models/alias",
                          params={"name": "fraud", "alias": "champion"})  # fmt: skip
    assert champion.status_code == 200, champion.text
    assert champion.json()["model_version"]["version"] == str(stronger)


def test_an_alias_points_only_at_a_ready_version(mlflow: TestClient) -> None:
    create(mlflow, "fraud")
    failed = mlflow.post(
        f"{API}/model-versions/create", json={"name": "fraud", "source": "/home/me/model"}
    ).json()["model_version"]
    assert failed["status"] == "FAILED_REGISTRATION"
    refused = mlflow.post(
        f"{API}/registered-models/alias",
        json={"name": "fraud", "alias": "champion", "version": failed["version"]},
    )
    assert refused.status_code == 400
    assert refused.json()["error_code"] == "INVALID_STATE"
    assert "FAILED_REGISTRATION" in refused.json()["message"]
    assert mlflow.get("/api/v1/models/fraud/aliases").json() == []
