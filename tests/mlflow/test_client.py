"""The unmodified MLflow 3 client against a live Modelgate (registry) and a real MLflow
tracking server: register from a run, search, a transition refused by a gate, one waiting
for approval, then allowed; load and download byte-identical files."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.mlflow.conftest import MlflowServer, modelgate_settings, run_client
from tests.support.api import ADMIN_TOKEN, auth
from tests.support.servers import start_server

# A real mlflow server and client processes: slow to start on a shared machine.
pytestmark = pytest.mark.timeout(1500)

CLIENT_SCRIPT = r"""
import hashlib, json, os, pathlib, re
import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return [2 * x for x in model_input]

def tree(root):
    root = pathlib.Path(root)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}

def refused(call):
    try:
        call()
    except MlflowException as exc:
        return {"code": exc.error_code, "message": exc.message}
    raise AssertionError("not refused")

out = {}
client = MlflowClient()
mlflow.set_experiment("fraud-training")
with mlflow.start_run() as run:
    mlflow.set_tags({
        "mlflow.source.git.commit": "3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39",
        "modelgate.data_version": "transactions@2026-11-01",
        "modelgate.feature_pipeline_version": "features-v12",
        "modelgate.environment": "python-3.11-sklearn-1.5",
    })
    mlflow.log_params({"max_depth": 6, "seed": 42})
    mlflow.log_metric("accuracy", 0.93)
    logged = mlflow.pyfunc.log_model(name="model", python_model=Doubler())
out["registered"] = mlflow.register_model(f"runs:/{run.info.run_id}/model", "fraud").version

with mlflow.start_run() as bare:
    bare_logged = mlflow.pyfunc.log_model(name="model", python_model=Doubler())
out["bare"] = mlflow.register_model(f"runs:/{bare.info.run_id}/model", "fraud").version

import requests
admin = {"Authorization": "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"]}
requests.patch(
    f"{os.environ['MODELGATE_URL']}/api/v1/models/fraud",
    headers=admin, json={"primary_metric": "accuracy", "primary_dataset": "mlflow"},
).raise_for_status()
mv = client.get_model_version("fraud", "1")
out["status"] = mv.status
out["run_id_matches"] = mv.run_id == run.info.run_id
found = client.search_registered_models(filter_string="name LIKE 'fra%'")
out["search_models"] = [m.name for m in found]
out["search_versions"] = sorted(v.version for v in client.search_model_versions("name='fraud'"))
stage = client.transition_model_version_stage
out["gate_refusal"] = refused(lambda: stage("fraud", "2", "Staging"))
out["staging"] = client.transition_model_version_stage("fraud", "1", "Staging").current_stage
out["pending"] = refused(lambda: client.transition_model_version_stage("fraud", "1", "Production"))
request_id = re.search(r"promotion request (\d+)", out["pending"]["message"]).group(1)
approved = requests.post(
    f"{os.environ['MODELGATE_URL']}/api/v1/promotions/{request_id}/approve",
    headers={"Authorization": "Bearer " + os.environ["REVIEWER_TOKEN"]}, json={},
)
out["approve_status"] = approved.status_code
out["production"] = [v.version for v in client.get_latest_versions("fraud", ["Production"])]
model = mlflow.pyfunc.load_model("models:/fraud/Production")
out["prediction"] = list(model.predict([1, 2, 3]))
from_registry = tree(mlflow.artifacts.download_artifacts("models:/fraud/1", dst_path="reg"))
from_tracking = tree(mlflow.artifacts.download_artifacts(logged.model_uri, dst_path="trk"))
out["files"] = sorted(from_registry)
out["tracking_files"] = sorted(from_tracking)
# The client writes registered_model_meta (name and version) into every models:/ download;
# every other file must be the very bytes logged on the tracking server.
for tree_ in (from_registry, from_tracking):
    tree_.pop("registered_model_meta", None)
out["same_files"] = sorted(from_registry) == sorted(from_tracking)
out["differ"] = sorted(p for p, h in from_tracking.items() if from_registry.get(p) != h)
client.set_model_version_tag("fraud", "1", "team", "risk")
client.update_registered_model("fraud", description="fraud scorer")
client.set_registered_model_tag("fraud", "owner", "risk")
out["tags"] = client.get_model_version("fraud", "1").tags
out["description"] = client.get_registered_model("fraud").description
client.set_registered_model_alias("fraud", "champion", "1")
client.set_registered_model_alias("fraud", "challenger", "2")
out["by_alias"] = client.get_model_version_by_alias("fraud", "champion").version
out["model_aliases"] = dict(client.get_registered_model("fraud").aliases)
out["version_aliases"] = list(client.get_model_version("fraud", "1").aliases)
out["searched_aliases"] = {
    v.version: list(v.aliases) for v in client.search_model_versions("name='fraud'")
}
champion = mlflow.pyfunc.load_model("models:/fraud@champion")
out["alias_prediction"] = list(champion.predict([5]))
by_alias = tree(mlflow.artifacts.download_artifacts("models:/fraud@champion", dst_path="als"))
by_alias.pop("registered_model_meta", None)
out["alias_same_files"] = by_alias == from_tracking
out["bad_alias"] = refused(lambda: client.set_registered_model_alias("fraud", "Champion", "1"))
out["no_version"] = refused(lambda: client.set_registered_model_alias("fraud", "best", "9"))
client.delete_registered_model_alias("fraud", "champion")
client.delete_registered_model_alias("fraud", "champion")  # not set any more: no error
out["deleted_alias"] = refused(lambda: client.get_model_version_by_alias("fraud", "champion"))
out["delete"] = refused(lambda: client.delete_model_version("fraud", "2"))
print(json.dumps(out))
"""


def test_unmodified_client_registers_transitions_and_loads(
    mlflow_server: MlflowServer,
    mlflow_python: Path,
    database_url: str,
    artifact_store_url: str,
    s3_endpoint: str,
    tmp_path: Path,
) -> None:
    settings = modelgate_settings(
        database_url, artifact_store_url, s3_endpoint, MLFLOW_TRACKING_URI=mlflow_server.uri
    )
    with start_server(settings) as modelgate:
        modelgate.wait_ready(timeout=180)
        reviewer = httpx.post(
            modelgate.base_url + "/api/v1/tokens",
            headers=auth(ADMIN_TOKEN),
            json={"name": "reviewer-1", "role": "reviewer"},
        ).json()["token"]
        out = run_client(
            mlflow_python,
            CLIENT_SCRIPT,
            {
                "MLFLOW_TRACKING_URI": mlflow_server.uri,
                "MLFLOW_REGISTRY_URI": modelgate.base_url,
                "MLFLOW_TRACKING_TOKEN": ADMIN_TOKEN,
                "MODELGATE_URL": modelgate.base_url,
                "REVIEWER_TOKEN": reviewer,
            },
            tmp_path,
        )
        assert out["registered"] == "1"
        assert out["bare"] == "2"
        assert out["status"] == "READY"
        assert out["run_id_matches"]
        assert out["search_models"] == ["fraud"]
        assert out["search_versions"] == ["1", "2"]
        refusal = out["gate_refusal"]
        assert refusal["code"] == "INVALID_STATE"
        assert "lineage_complete" in refusal["message"]
        assert "feature_pipeline_version" in refusal["message"]
        assert out["staging"] == "Staging"
        assert out["pending"]["code"] == "INVALID_STATE"
        assert "approve" in out["pending"]["message"]
        assert out["approve_status"] == 200
        assert out["production"] == ["1"]
        assert out["prediction"] == [2, 4, 6]
        assert "MLmodel" in out["files"]
        assert out["differ"] == []
        assert out["same_files"]
        assert out["tags"] == {"team": "risk"}
        assert out["description"] == "fraud scorer"
        assert out["by_alias"] == "1"
        assert out["model_aliases"] == {"champion": "1", "challenger": "2"}
        assert out["version_aliases"] == ["champion"]
        assert out["searched_aliases"] == {"1": ["champion"], "2": ["challenger"]}
        assert out["alias_prediction"] == [10]
        assert out["alias_same_files"]
        assert out["bad_alias"]["code"] == "INVALID_PARAMETER_VALUE"
        assert out["no_version"]["code"] == "RESOURCE_DOES_NOT_EXIST"
        assert out["deleted_alias"]["code"] == "INVALID_PARAMETER_VALUE"
        assert "Registered model alias champion not found." in out["deleted_alias"]["message"]
        assert out["delete"]["code"] == "INVALID_PARAMETER_VALUE"

        version = httpx.get(
            modelgate.base_url + "/api/v1/models/fraud/versions/1", headers=auth(ADMIN_TOKEN)
        ).json()
        assert version["stage"] == "production"
        assert version["lineage"]["code_commit"].startswith("3f2a9c1d")
        assert version["lineage"]["seed"] == 42
        assert version["lineage"]["hyperparameters"]["max_depth"] == 6
        assert version["artifact"]["status"] == "verified"
        assert {m["name"]: m["value"] for m in version["metrics"]} == {"accuracy": 0.93}
        events = httpx.get(
            modelgate.base_url + "/api/v1/audit",
            headers=auth(ADMIN_TOKEN),
            params={"model": "fraud", "limit": 200},
        ).json()["items"]
        actions = {e["action"] for e in events}
        assert {"model.created", "version.created", "artifact.uploaded"} <= actions
        assert "promotion.rejected" in actions
        assert "version.updated" in actions
        # The aliases set through MLflow are Modelgate's: listed, with their history.
        aliases = httpx.get(
            modelgate.base_url + "/api/v1/models/fraud/aliases", headers=auth(ADMIN_TOKEN)
        ).json()
        assert [(a["name"], a["version"]) for a in aliases] == [("challenger", 2)]
        moves = httpx.get(
            modelgate.base_url + "/api/v1/models/fraud/aliases/champion/history",
            headers=auth(ADMIN_TOKEN),
        ).json()["items"]
        assert [(m["from_version"], m["to_version"]) for m in moves] == [(1, None), (None, 1)]
        assert {"alias.moved", "alias.removed"} <= actions
