"""Artifact integrity end to end: bytes altered behind the server's back (a PUT to the S3
endpoint with boto3, or a write to the file of the directory store) are caught by the
download, rollback, the artifact_intact gate and the scrub, on both stores; the version
is marked corrupt and an ``artifact.corrupt`` event goes out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.settings import Settings
from tests.events._helpers import SECRET
from tests.support.api import (
    ADMIN_TOKEN,
    API,
    all_items,
    assert_problem,
    audit_events,
    auth,
    create_model,
    sha256_hex,
)
from tests.support.flows import (
    Team,
    corrupt_stored_artifact,
    delete_stored_artifact,
    evaluate,
    gate,
    make_team,
    new_version,
    permissive_policy,
    production_version,
    promote,
    put_policy,
    read_version,
    rollback,
    rule,
    server_settings,
    upload_artifact,
)
from tests.support.receiver import Receiver
from tests.support.servers import running_servers

MODEL = "fraud"


@pytest.fixture
def team(client: TestClient) -> Team:
    return make_team(client)


def promoted(client: TestClient, count: int) -> list[int]:
    create_model(client, MODEL, primary_metric="accuracy", primary_dataset="holdout")
    put_policy(client, MODEL, permissive_policy())
    versions = []
    for _ in range(count):
        number = new_version(client, MODEL)
        promote(client, MODEL, number, "production", status="applied")
        versions.append(number)
    return versions


def webhook_for_corruption(client: TestClient) -> tuple[Receiver, int]:
    receiver = Receiver().start()
    response = client.post(
        f"{API}/webhooks",
        json={"url": receiver.url, "secret": SECRET, "event_types": ["artifact.corrupt"]},
    )
    assert response.status_code == 201, response.text
    return receiver, int(response.json()["id"])


def event_types_delivered(client: TestClient, webhook_id: int) -> list[str]:
    rows = all_items(client, f"/webhooks/{webhook_id}/deliveries", limit=100)
    return [row["event_type"] for row in rows]


def test_rollback_refuses_altered_bytes_of_the_same_size_without_deep_check(
    client: TestClient, team: Team, request: pytest.FixtureRequest
) -> None:
    receiver, hook = webhook_for_corruption(client)
    try:
        v1, v2 = promoted(client, 2)
        digest = read_version(client, MODEL, v1)["artifact"]["sha256"]
        corrupt_stored_artifact(request, digest)

        response = rollback(client, MODEL, headers=team.operator, reason="incident")

        problem = assert_problem(response, 409, "rollback-not-possible")
        assert "sha256" in problem["artifact_check"]
        assert production_version(client, MODEL) == v2
        # The finding outlives the refused (rolled back) request.
        assert read_version(client, MODEL, v1)["artifact"]["status"] == "corrupt"
        events = audit_events(client, model=MODEL, action="artifact.corrupt")
        assert [e["version"] for e in events] == [v1]
        assert events[0]["details"]["method"] == "sha256 re-computed"
        assert events[0]["details"]["sha256_expected"] == digest
        assert events[0]["details"]["sha256_observed"] not in (None, digest)
        assert event_types_delivered(client, hook) == ["artifact.corrupt"]
    finally:
        receiver.stop()


def test_rollback_to_an_intact_version_says_how_it_was_verified(
    client: TestClient, team: Team, settings: Settings
) -> None:
    v1, _ = promoted(client, 2)
    response = rollback(client, MODEL, headers=team.operator, reason="incident")
    assert response.status_code == 200, response.text
    check = response.json()["artifact_check"]
    # Small artifacts carry their own sha256 in S3; the directory has none: re-hashed.
    if settings.artifact_store.startswith("s3://"):
        assert check == "store checksum matches"
    else:
        assert check == "sha256 re-computed, matches"
    assert production_version(client, MODEL) == v1


def test_gate_reports_only_a_digest_it_computed(
    client: TestClient, request: pytest.FixtureRequest
) -> None:
    create_model(client, MODEL, primary_metric="accuracy", primary_dataset="holdout")
    policy = permissive_policy()
    policy["production"]["rules"] = [gate("artifact_intact", "artifact")]
    put_policy(client, MODEL, policy)
    number = new_version(client, MODEL)
    digest = read_version(client, MODEL, number)["artifact"]["sha256"]

    intact = rule(evaluate(client, MODEL, number), "artifact")
    assert intact["passed"] is True
    assert intact["observed"]["sha256_observed"] == digest
    assert intact["observed"]["detail"].startswith(("store checksum:", "sha256 re-computed:"))

    corrupt_stored_artifact(request, digest)
    failed = rule(evaluate(client, MODEL, number), "artifact")

    assert failed["passed"] is False
    observed = failed["observed"]["sha256_observed"]
    assert observed is not None
    assert observed != digest
    assert failed["observed"]["detail"].startswith("sha256 re-computed:")

    delete_stored_artifact(request, digest)
    missing = rule(evaluate(client, MODEL, number), "artifact")
    assert missing["passed"] is False
    assert missing["observed"]["sha256_observed"] is None


def read_all_chunks(response: httpx.Response, into: bytearray) -> bytes:
    """Read a streamed body to its end, keeping what arrived in ``into`` if it breaks off."""
    for chunk in response.iter_bytes():
        into += chunk
    return b""


def test_download_of_altered_bytes_breaks_off_and_marks_the_version_corrupt(
    settings: Settings, client: TestClient, request: pytest.FixtureRequest
) -> None:
    create_model(client, MODEL)
    number = new_version(client, MODEL, artifact=False)
    data = bytes(range(256)) * 4096  # 1 MiB: several chunks
    digest = upload_artifact(client, MODEL, number, data)
    corrupt_stored_artifact(request, digest)
    url = f"{API}/models/{MODEL}/versions/{number}/artifact"

    with (
        running_servers(server_settings(settings)) as (server,),
        httpx.Client(base_url=server.base_url, headers=auth(ADMIN_TOKEN)) as http,
    ):
        received = bytearray()
        with http.stream("GET", url) as response:
            assert response.status_code == 200
            assert response.headers["content-length"] == str(len(data))
            with pytest.raises(httpx.RemoteProtocolError):
                received.extend(read_all_chunks(response, received))
        # Never a clean end: the body stops short of Content-Length.
        assert len(received) < len(data)

        again = http.get(url)

    problem = assert_problem(again, 409, "artifact-corrupt")
    assert "sha256" in problem["detail"]
    version = read_version(client, MODEL, number)
    assert version["artifact"]["status"] == "corrupt"
    events = audit_events(client, model=MODEL, action="artifact.corrupt")
    assert len(events) == 1
    assert events[0]["details"]["via"] == "download"
    assert events[0]["details"]["sha256_observed"] == sha256_hex(b"x" * len(data))


def test_intact_download_is_served_and_recorded_nowhere(
    settings: Settings, client: TestClient
) -> None:
    create_model(client, MODEL)
    number = new_version(client, MODEL, artifact=False)
    data = bytes(range(256)) * 4096
    upload_artifact(client, MODEL, number, data)

    response = client.get(f"{API}/models/{MODEL}/versions/{number}/artifact")

    assert response.status_code == 200
    assert response.content == data
    assert audit_events(client, model=MODEL, action="artifact.corrupt") == []


def test_presigned_redirect_is_refused_for_a_rewritten_object(
    settings: Settings, client: TestClient, request: pytest.FixtureRequest
) -> None:
    """The store cannot verify what it serves itself: a rewritten object (another ETag)
    streams through the server instead, which catches it."""
    if not settings.artifact_store.startswith("s3://"):
        pytest.skip("only S3 serves presigned URLs")
    create_model(client, MODEL)
    number = new_version(client, MODEL, artifact=False)
    data = bytes(range(256)) * 64
    digest = upload_artifact(client, MODEL, number, data)
    url = f"{API}/models/{MODEL}/versions/{number}/artifact"
    intact = client.get(url, params={"redirect": "true"}, follow_redirects=False)
    assert intact.status_code == 307

    corrupt_stored_artifact(request, digest)
    with pytest.raises(Exception, match="sha256"):
        client.get(url, params={"redirect": "true"}, follow_redirects=False)
    assert read_version(client, MODEL, number)["artifact"]["status"] == "corrupt"


def stray_object(request: pytest.FixtureRequest, data: bytes) -> str:
    """Write an object no version names, behind the service's back; returns its key."""
    digest = sha256_hex(data)
    store_url: str = request.getfixturevalue("artifact_store_url")
    if store_url.startswith("s3://"):
        bucket, _, prefix = store_url[len("s3://") :].partition("/")
        s3: Any = request.getfixturevalue("s3_client")
        s3.put_object(Bucket=bucket, Key=f"{prefix}/sha256/{digest}", Body=data)
    else:
        path = Path(store_url) / "sha256" / digest[:2] / digest
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return f"sha256/{digest}"


def scrub(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post(f"{API}/artifacts/scrub", json=body)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def test_scrub_finds_altered_and_missing_artifacts_and_stray_objects(
    client: TestClient, request: pytest.FixtureRequest, team: Team
) -> None:
    create_model(client, MODEL)
    numbers = [new_version(client, MODEL) for _ in range(3)]
    digests = [read_version(client, MODEL, n)["artifact"]["sha256"] for n in numbers]
    corrupt_stored_artifact(request, digests[0])
    delete_stored_artifact(request, digests[1])
    stray = stray_object(request, b"nobody's model")

    first = scrub(client, limit=2)
    second = scrub(client, limit=2, cursor=first["next_cursor"])

    assert first["total_artifacts"] == 3
    assert first["unreferenced"] is None
    assert second["next_cursor"] is None
    assert second["unreferenced"] == [stray]
    items = {item["sha256"]: item for item in first["items"] + second["items"]}
    assert set(items) == set(digests)
    altered = items[digests[0]]
    assert altered["intact"] is False
    assert altered["check"]["method"] == "sha256 re-computed"
    assert altered["check"]["sha256_observed"] not in (None, digests[0])
    assert altered["versions"] == [{"model": MODEL, "version": numbers[0]}]
    gone = items[digests[1]]
    assert (gone["intact"], gone["check"]["method"], gone["check"]["sha256_observed"]) == (
        False,
        "none",
        None,
    )
    fine = items[digests[2]]
    assert fine["intact"] is True
    assert fine["check"]["sha256_observed"] == digests[2]
    assert first["corrupt"] + second["corrupt"] == 2
    # Altered bytes mark the version corrupt; a missing object is reported only (a store
    # being restored or misconfigured must not turn every version corrupt).
    statuses = [read_version(client, MODEL, n)["artifact"]["status"] for n in numbers]
    assert statuses == ["corrupt", "verified", "verified"]
    corrupt_events = audit_events(client, model=MODEL, action="artifact.corrupt")
    assert [e["version"] for e in corrupt_events] == [numbers[0]]

    # A second scrub finds the same and announces nothing new.
    again = scrub(client, limit=10)
    assert again["corrupt"] == 2
    assert len(audit_events(client, model=MODEL, action="artifact.corrupt")) == 1

    refused = client.post(f"{API}/artifacts/scrub", json={}, headers=team.operator)
    assert_problem(refused, 403)


def test_scrub_clears_a_repaired_artifact(
    client: TestClient, request: pytest.FixtureRequest
) -> None:
    create_model(client, MODEL)
    number = new_version(client, MODEL, artifact=False)
    data = b"the real model bytes" * 100
    digest = upload_artifact(client, MODEL, number, data)
    corrupt_stored_artifact(request, digest)
    assert scrub(client)["corrupt"] == 1
    stray_object(request, data)  # the operator restores the object from a backup

    report = scrub(client)

    assert report["corrupt"] == 0
    assert read_version(client, MODEL, number)["artifact"]["status"] == "verified"
    assert [e["action"] for e in audit_events(client, model=MODEL)][-1] == "artifact.verified"


def test_cli_scrub_shows_progress_and_exits_1_on_a_corrupt_artifact(
    settings: Settings, client: TestClient, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    create_model(client, MODEL)
    numbers = [new_version(client, MODEL) for _ in range(3)]
    corrupt_stored_artifact(request, read_version(client, MODEL, numbers[1])["artifact"]["sha256"])
    stray = stray_object(request, b"left behind")

    with running_servers(server_settings(settings)) as (server,):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELGATE_", "AWS_"))}
        env.update(MODELGATE_URL=server.base_url, MODELGATE_TOKEN=ADMIN_TOKEN)
        done = subprocess.run(
            [sys.executable, "-m", "app.cli.main", "artifacts", "scrub", "--batch", "2"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert done.returncode == 1, done.stderr
    progress = done.stderr.splitlines()
    assert len(progress) == 2
    assert progress[0].startswith("scrubbing: 2/3 artifacts checked, ")
    assert progress[1] == "scrubbing: 3/3 artifacts checked, 1 corrupt or missing"
    assert f"{MODEL} v{numbers[1]}" in done.stdout
    assert "sha256 re-computed" in done.stdout
    assert stray in done.stdout
    assert read_version(client, MODEL, numbers[1])["artifact"]["status"] == "corrupt"
