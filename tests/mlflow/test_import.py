"""``modelgate import mlflow`` against a real ``mlflow server`` on SQLite: several models
and versions with tags, descriptions, run metrics, stages and aliases, imported twice."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.mlflow.conftest import MlflowServer, run_client
from tests.support.api import ADMIN_TOKEN, auth
from tests.support.servers import ServerProcess, server_env

# A real mlflow server and client processes: slow to start on a shared machine.
pytestmark = pytest.mark.timeout(1500)

SEED_SCRIPT = r"""
import json, os, pathlib
import mlflow
from mlflow import MlflowClient

client = MlflowClient()
mlflow.set_experiment("import-source")
layout = {"churn": 4, "fraud": 3, "ranker": 2}
files = {}
for name, count in layout.items():
    client.create_registered_model(name, tags={"team": "risk"}, description=f"{name} model")
    for i in range(1, count + 1):
        folder = pathlib.Path(f"m-{name}-{i}")
        (folder / "data").mkdir(parents=True)
        (folder / "MLmodel").write_text(f"flavors: {{}}\nname: {name}\nversion: {i}\n")
        (folder / "data" / "weights.bin").write_bytes(os.urandom(3000 + i))
        with mlflow.start_run() as run:
            mlflow.set_tag("mlflow.source.git.commit", f"{i:040d}")
            mlflow.log_param("max_depth", i)
            mlflow.log_metric("auc", 0.8 + i / 100)
            mlflow.log_artifacts(str(folder), "model")
        mv = client.create_model_version(
            name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id,
            tags={"fold": str(i)}, description=f"{name} v{i}",
        )
        files[f"{name}/{mv.version}"] = (folder / "data" / "weights.bin").read_bytes().hex()
client.transition_model_version_stage("churn", "1", "Archived")
client.set_registered_model_alias("fraud", "champion", "3")
client.set_registered_model_alias("churn", "challenger", "2")
client.set_registered_model_alias("ranker", "Best_Model", "1")
print(json.dumps({"weights": {k: v for k, v in files.items()}}))
"""


def run_import(env: dict[str, str], tracking: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", "import", "mlflow", "--tracking-uri", tracking,
         "--all"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip


def test_import_copies_a_registry_and_a_second_run_imports_nothing(
    mlflow_server: MlflowServer,
    mlflow_python: Path,
    live_modelgate: tuple[ServerProcess, dict[str, str]],
    tmp_path: Path,
) -> None:
    modelgate, settings = live_modelgate
    seeded = run_client(
        mlflow_python, SEED_SCRIPT, {"MLFLOW_TRACKING_URI": mlflow_server.uri}, tmp_path
    )
    env = server_env(settings)
    first = run_import(env, mlflow_server.uri)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "done: 9 imported, 0 resumed, 0 already imported (skipped), 0 failed" in first.stdout
    assert "[3/3] ranker: 2 version(s)" in first.stdout
    assert "fraud@champion (MLflow version 3): set to version 3, as in MLflow" in first.stdout
    assert "churn@challenger (MLflow version 2): set to version 2" in first.stdout
    assert "ranker@Best_Model (MLflow version 1): not set: Modelgate alias names" in first.stdout
    assert "2 alias(es) set" in first.stdout
    # An import interrupted while copying fraud v2 left it pending, without files.
    engine = create_engine(settings["DATABASE_URL"])
    with engine.begin() as conn:
        changed = conn.execute(
            text(
                "UPDATE mlflow_versions SET status = 'PENDING_REGISTRATION', files = NULL "
                "WHERE origin = :origin"
            ),
            {"origin": f"{mlflow_server.uri}#fraud/2"},
        ).rowcount
    engine.dispose()
    assert changed == 1
    second = run_import(env, mlflow_server.uri)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "done: 0 imported, 1 resumed, 8 already imported (skipped), 0 failed" in second.stdout
    assert "fraud v2 (2/3): resumed as version 2: READY" in second.stdout
    assert "fraud@champion (MLflow version 3): already set (version 3), left as" in second.stdout
    assert "0 alias(es) set" in second.stdout

    api = httpx.Client(base_url=modelgate.base_url, headers=auth(ADMIN_TOKEN), timeout=30)
    churn = api.get("/api/v1/models/churn").json()
    assert churn["latest_version"] == 4
    assert churn["tags"] == {"team": "risk"}
    assert churn["description"] == "churn model"
    v1 = api.get("/api/v1/models/churn/versions/1").json()
    assert v1["stage"] == "archived"
    v3 = api.get("/api/v1/models/churn/versions/3").json()
    assert v3["description"] == "churn v3"
    assert v3["tags"]["fold"] == "3"
    assert v3["lineage"]["code_commit"] == f"{3:040d}"
    assert v3["lineage"]["hyperparameters"] == {"max_depth": 3}
    assert [m["name"] for m in v3["metrics"]] == ["auc"]
    assert v3["metrics"][0]["value"] == pytest.approx(0.83)
    assert v3["artifact"]["status"] == "verified"
    # The files come back byte-identical through the MLflow artifact route.
    for key, hexdata in seeded["weights"].items():
        name, number = key.split("/")
        got = api.get(
            f"/api/2.0/mlflow-artifacts/artifacts/modelgate/{name}/{number}/data/weights.bin"
        )
        assert got.status_code == 200
        assert (
            hashlib.sha256(got.content).hexdigest()
            == hashlib.sha256(bytes.fromhex(hexdata)).hexdigest()
        )
    aliases = {m: api.get(f"/api/v1/models/{m}/aliases").json() for m in ("fraud", "churn")}
    assert [(a["name"], a["version"]) for a in aliases["fraud"]] == [("champion", 3)]
    assert [(a["name"], a["version"]) for a in aliases["churn"]] == [("challenger", 2)]
    assert api.get("/api/v1/models/ranker/aliases").json() == []
    moved = api.get("/api/v1/audit", params={"action": "alias.moved", "limit": 100}).json()
    assert sorted((e["model"], e["actor"]) for e in moved["items"]) == [
        ("churn", "import:mlflow"),
        ("fraud", "import:mlflow"),
    ]
    events = api.get("/api/v1/audit", params={"action": "version.imported", "limit": 100}).json()[
        "items"
    ]
    assert len(events) == 9
    first_event = next(e for e in events if e["model"] == "fraud" and e["version"] == 2)
    assert first_event["details"]["original_version"] == "2"
    assert first_event["details"]["original_created_at"]
    # MLflow without authentication records no user: the key is there, empty.
    assert "original_creator" in first_event["details"]
