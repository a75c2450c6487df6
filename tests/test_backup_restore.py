"""Backup and restore, as docs/operations/backup-restore.md describes it.

State is built through the API (models, versions with artifacts, promotions with
approvals, a rollback, a frozen model, a token, a webhook); the database is dumped with
``pg_dump -Fc`` *first*, then the artifacts are copied (another bucket, or another
directory) while the registry keeps taking writes; the dump is restored with
``pg_restore`` into a fresh database and a new application is started on the restored
database and the copied artifacts. The restored registry must verify its audit chain,
verify every version's artifact byte for byte, show the same production versions,
history and audit log, and keep working (a new version, a deep-checked rollback).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from glob import glob
from pathlib import Path
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from app.main import create_app
from app.settings import Settings
from tests.support.api import ADMIN_TOKEN, API, create_model
from tests.support.flows import (
    approve,
    history,
    make_team,
    new_version,
    permissive_policy,
    promote,
    put_policy,
    rollback,
)
from tests.support.pg import create_pg_database, drop_pg_database

pytestmark = pytest.mark.postgres_only

MODELS = ("fraud", "churn")


def pg_tool(name: str) -> str:
    """``pg_dump`` or ``pg_restore``: from PATH, or the newest under /usr/lib/postgresql."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_major)
    if not candidates:
        pytest.fail(f"{name} not found on PATH or under /usr/lib/postgresql/*/bin")
    return candidates[-1]


def _major(path: str) -> int:
    part = Path(path).parts[4]
    return int(part) if part.isdigit() else 0


def libpq_url(sqlalchemy_url: str) -> str:
    """The URL pg_dump and pg_restore understand (no ``+driver``)."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def copy_artifacts(store_url: str, s3: Any) -> str:
    """A copy of every artifact in another bucket or directory (what bucket replication
    or a directory backup gives); returns the copy's store URL."""
    if store_url.startswith("s3://"):
        bucket, _, prefix = store_url.removeprefix("s3://").partition("/")
        target = f"mg-restore-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=target)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                s3.copy_object(
                    Bucket=target, Key=obj["Key"], CopySource={"Bucket": bucket, "Key": obj["Key"]}
                )
        return f"s3://{target}/{prefix}"
    copy = f"{store_url.rstrip('/')}-restored"
    shutil.copytree(store_url, copy)
    return copy


def snapshot(http: TestClient) -> dict[str, Any]:
    """What must survive a restore, read through the API."""
    state: dict[str, Any] = {}
    for model in MODELS:
        versions = http.get(f"{API}/models/{model}/versions", params={"limit": 200}).json()
        production = http.get(f"{API}/models/{model}/stages/production").json()["items"]
        state[model] = {
            "model": http.get(f"{API}/models/{model}").json(),
            "versions": versions["items"],
            "production": [v["version"] for v in production],
            "history": history(http, model),
            "policy": http.get(f"{API}/models/{model}/policy").json(),
        }
    state["promotions"] = http.get(f"{API}/promotions", params={"limit": 200}).json()["items"]
    state["tokens"] = http.get(f"{API}/tokens", params={"limit": 200}).json()["items"]
    state["webhooks"] = http.get(f"{API}/webhooks").json()["items"]
    state["audit"] = http.get(f"{API}/audit/export").text
    return state


def verify_every_artifact(http: TestClient, versions: list[dict[str, Any]], model: str) -> int:
    """Download each stored artifact and hash it (a deep check); returns how many."""
    checked = 0
    for version in versions:
        digest = version["artifact"]["sha256"]
        if digest is None:
            continue
        response = http.get(f"{API}/models/{model}/versions/{version['version']}/artifact")
        assert response.status_code == 200, response.text
        assert hashlib.sha256(response.content).hexdigest() == digest, (model, version)
        assert len(response.content) == version["artifact"]["size"]
        checked += 1
    return checked


@pytest.fixture
def restored_database() -> Iterator[tuple[str, str]]:
    name = f"modelgate_restored_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = create_pg_database(name)
    yield name, url
    drop_pg_database(name)


def test_dump_then_artifacts_restore_verifies(
    client: TestClient,
    settings: Settings,
    restored_database: tuple[str, str],
    tmp_path: Path,
    s3_client: Any,
) -> None:
    # 1. State, through the API.
    team = make_team(client)
    fraud, churn = MODELS
    create_model(client, fraud, primary_metric="accuracy", primary_dataset="holdout")
    create_model(client, churn)
    put_policy(client, fraud, permissive_policy(auto_promote=False, approvals=1))
    v1, v2, v3 = (new_version(client, fraud, accuracy=0.8 + i / 100) for i in range(3))
    for number in (v1, v2, v3):
        pending = promote(client, fraud, number, "production", headers=team.submitter)
        approve(client, pending["id"], headers=team.reviewer)
    back = rollback(client, fraud, reason="INC-7: error rate", headers=team.operator)
    assert back.status_code == 200, back.text
    new_version(client, fraud)  # a candidate
    new_version(client, churn)
    new_version(client, churn, artifact=False)  # a version still waiting for its artifact
    assert (
        client.post(
            f"{API}/models/{churn}/freeze", json={"reason": "audit"}, headers=team.operator
        ).status_code
        == 200
    )
    client.post(f"{API}/webhooks", json={"url": "http://127.0.0.1:9/h", "secret": "s" * 16})
    assert client.get(f"{API}/audit/verify").json()["ok"] is True
    before = snapshot(client)
    assert before[fraud]["production"] == [v2]

    # 2. The database first: pg_dump, custom format, one consistent snapshot.
    dump = tmp_path / "modelgate.dump"
    subprocess.run(
        [pg_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={dump}",
         f"--dbname={libpq_url(settings.database_url)}"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip

    # 3. Writes go on between the two backups: an artifact that only the copy has.
    late = new_version(client, churn)

    # 4. Then the artifacts.
    store_copy = copy_artifacts(settings.artifact_store, s3_client)

    # 5. Restore into a fresh database.
    _, restored_url = restored_database
    subprocess.run(
        [pg_tool("pg_restore"), "--no-owner", "--exit-on-error",
         f"--dbname={libpq_url(restored_url)}", str(dump)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip

    # 6. A new server on the restored database and the copied artifacts.
    restored = settings.model_copy(
        update={"database_url": restored_url, "artifact_store": store_copy}
    )
    with TestClient(create_app(restored), base_url="http://restored.test") as http:
        http.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        verified = http.get(f"{API}/audit/verify").json()
        assert verified["ok"] is True, verified
        after = snapshot(http)
        assert after == before, "the restored registry differs from the one dumped"
        checked = sum(verify_every_artifact(http, after[m]["versions"], m) for m in MODELS)
        assert checked == 5  # fraud v1-v4, churn v1 (churn v2 has no artifact)
        # The late version is not in the dump; its artifact in the copy is an orphan.
        assert http.get(f"{API}/models/{churn}/versions/{late}").status_code == 404

        # 7. The restored registry keeps working: sequences, locks and the chain go on.
        again = new_version(http, churn)
        assert again == late  # the number is free again in the restored database
        deep = http.post(
            f"{API}/models/{fraud}/rollback",
            json={"reason": "restore drill", "deep_check": True},
            headers=team.operator,
        )
        assert deep.status_code == 200, deep.text
        assert deep.json()["serving_version"] == v1
        verified = http.get(f"{API}/audit/verify").json()
        assert verified["ok"] is True, verified


@pytest.fixture
def s3_client(settings: Settings) -> Any:
    """The test S3 server's client, or None with the directory store (copied with shutil)."""
    if not settings.artifact_store.startswith("s3://"):
        return None
    return boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name="us-east-1")
