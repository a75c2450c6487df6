"""After release: production against the previous version's baseline; a degradation raises
``production.degraded`` once per production period, and rolls back when the policy says so."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.settings import Settings
from tests.events._helpers import create_webhook, deliveries, wait_until
from tests.support.api import audit_events, create_model
from tests.support.flows import new_version, permissive_policy, promote, put_policy
from tests.support.receiver import Receiver
from tests.support.servers import running_servers

API = "/api/v1"
MODEL = "watched"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The tests run the checks themselves (app.state.monitor.run_once).
    return settings.model_copy(update={"monitoring_enabled": False})


def _policy(**monitoring: Any) -> dict[str, Any]:
    return {**permissive_policy(), "monitoring": {"interval_seconds": 1, **monitoring}}


def _observe(client: Any, version: int, n: int, errors: int, prefix: str) -> None:
    now = datetime.now(UTC).isoformat()
    rows = [
        {
            "request_key": f"{prefix}{i}",
            "version": version,
            "error": i < errors,
            "latency_ms": 20.0 + (i % 40) * 0.5,
            "time": now,
        }
        for i in range(n)
    ]
    for start in range(0, n, 5000):
        response = client.post(
            f"{API}/models/{MODEL}/observations", json={"observations": rows[start : start + 5000]}
        )
        assert response.status_code == 202, response.text


def _release(client: Any, **monitoring: Any) -> None:
    """Version 1 serves (1 % errors), then version 2 replaces it."""
    create_model(client, MODEL)
    new_version(client, MODEL)
    new_version(client, MODEL)
    put_policy(client, MODEL, _policy(**monitoring))
    promote(client, MODEL, 1, "production", status="applied")
    _observe(client, 1, 4000, 40, "one-")
    promote(client, MODEL, 2, "production", status="applied")


def _check(client: TestClient) -> None:
    client.app.state.monitor.run_once(force=True)  # type: ignore[attr-defined]


def _status(client: Any) -> dict[str, Any]:
    response = client.get(f"{API}/models/{MODEL}/monitoring")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _production(client: Any) -> int:
    versions = client.get(f"{API}/models/{MODEL}/versions").json()["items"]
    (serving,) = [v["version"] for v in versions if v["stage"] == "production"]
    return int(serving)


def test_a_degraded_release_raises_the_alert_once(client: TestClient) -> None:
    receiver = Receiver().start()
    try:
        hook = create_webhook(client, receiver.url, event_types=["production.degraded"])
        _release(client)
        status = _status(client)
        assert status["production_version"] == 2
        assert status["baseline_version"] == 1
        assert status["status"] == "pending"
        assert status["policy"]["on_degraded"] == "alert"

        _observe(client, 2, 2000, 200, "two-")  # 10 % errors
        _check(client)
        status = _status(client)
        assert status["status"] == "degraded"
        assert status["action"] == "alert"
        assert "errors" in status["reason"]
        results = {r["metric"]: r for r in status["last_look"]["metrics"]}
        assert results["errors"]["verdict"] == "fail"
        assert results["errors"]["samples"] == [2000, 4000]
        assert results["latency"]["verdict"] == "pass"
        assert _production(client) == 2  # alert only: production untouched

        for _ in range(3):
            _check(client)
        (event,) = audit_events(client, model=MODEL, action="production.degraded")
        assert event["version"] == 2
        assert event["actor"] == "system:monitoring"
        assert event["details"]["baseline_version"] == 1
        assert event["details"]["failed"] == ["errors"]
        assert event["details"]["action"] == "alert"
        assert audit_events(client, model=MODEL, action="model.rolled_back") == []
        wait_until(
            lambda: (
                {d["status"] for d in deliveries(client, hook["id"])} == {"delivered"}
                and len(receiver.accepted()) == 1
            ),
            what="the production.degraded webhook",
        )
        delivered = json.loads(receiver.accepted()[0].body)
        assert delivered["type"] == "production.degraded"
        assert delivered["data"]["details"]["baseline_version"] == 1
    finally:
        receiver.stop()


def test_a_degraded_release_is_rolled_back_when_the_policy_says_so(client: TestClient) -> None:
    _release(client, on_degraded="rollback")
    _observe(client, 2, 2000, 200, "two-")
    _check(client)
    assert _production(client) == 1
    (event,) = audit_events(client, model=MODEL, action="production.degraded")
    assert event["details"]["action"] == "rollback"
    (rolled,) = audit_events(client, model=MODEL, action="model.rolled_back")
    assert rolled["actor"] == "system:monitoring"
    assert rolled["reason"].startswith("automatic rollback: production version 2 degraded")
    assert rolled["details"]["from_version"] == 2
    status = _status(client)
    assert status["production_version"] == 1
    assert status["last_degradation"]["version"] == 2
    assert status["last_degradation"]["action"] == "rollback"
    assert status["last_degradation"]["action_detail"] == (
        "rolled back from version 2 to version 1"
    )
    # The period entered by the rollback has no baseline to be judged against.
    _check(client)
    assert _status(client)["status"] == "no_baseline"
    assert len(audit_events(client, model=MODEL, action="production.degraded")) == 1
    history = client.get(f"{API}/models/{MODEL}/history").json()["items"]
    assert history[0]["via"] == "rollback"


def test_a_sound_release_keeps_being_watched(client: TestClient) -> None:
    _release(client, on_degraded="rollback")
    _observe(client, 2, 3000, 30, "two-")
    for looks in (1, 2, 3):
        _check(client)
        status = _status(client)
        assert status["status"] == "watching"
        assert status["looks"] == looks
    assert audit_events(client, model=MODEL, action="production.degraded") == []
    assert _production(client) == 2


def test_too_few_observations_are_not_judged(client: TestClient) -> None:
    _release(client)
    _observe(client, 2, 100, 50, "two-")  # 50 % errors, but under min_sample (500)
    _check(client)
    status = _status(client)
    assert status["status"] == "watching"
    assert {r["verdict"] for r in status["last_look"]["metrics"]} == {"nodata"}


def test_monitoring_can_be_switched_off_and_old_policies_stay_valid(client: TestClient) -> None:
    create_model(client, MODEL)
    new_version(client, MODEL)
    before = put_policy(client, MODEL, permissive_policy())
    assert "monitoring" not in before["policy"]
    # Re-sending the same document mints no revision (its digest did not change).
    assert put_policy(client, MODEL, permissive_policy())["revision"] == before["revision"]
    status = _status(client)
    assert status["status"] == "no_production"
    assert status["policy"]["on_degraded"] == "alert"  # the default: alert only
    put_policy(client, MODEL, _policy(enabled=False))
    promote(client, MODEL, 1, "production", status="applied")
    _check(client)
    assert _status(client)["status"] == "disabled"


@pytest.mark.parametrize(
    "monitoring",
    [
        {"on_degraded": "page"},
        {"alpha": 0.7},
        {"metrics": []},
        {"metrics": [{"name": "e", "kind": "error_rate"}, {"name": "e", "kind": "latency"}]},
        {"metrics": [{"name": "e", "kind": "throughput"}]},
        {"surprise": 1},
        {"pass_score": 80, "marginal_score": 90},
        {"failure_limit": 0},
        {"pass_score": 101},
    ],
)
def test_bad_monitoring_sections_are_refused(client: TestClient, monitoring: Any) -> None:
    create_model(client, MODEL)
    response = client.put(
        f"{API}/models/{MODEL}/policy", json={**permissive_policy(), "monitoring": monitoring}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_degradation_waits_for_failure_limit_failed_checks_in_a_row(
    client: TestClient,
) -> None:
    _release(client, failure_limit=3)
    _observe(client, 2, 2000, 200, "two-")  # 10 % errors: every check fails
    for streak in (1, 2):
        _check(client)
        status = _status(client)
        assert status["status"] == "watching"
        assert status["last_look"]["status"] == "fail"
        assert status["failed_in_a_row"] == streak
        assert audit_events(client, model=MODEL, action="production.degraded") == []
    _check(client)
    status = _status(client)
    assert status["status"] == "degraded"
    assert status["failed_in_a_row"] == 3
    assert "3 failed check(s) in a row, failure_limit 3" in status["reason"]
    (event,) = audit_events(client, model=MODEL, action="production.degraded")
    assert event["details"]["failed_in_a_row"] == 3
    assert event["details"]["failure_limit"] == 3
    assert event["details"]["score"] == 50.0


def test_a_marginal_check_is_no_failure_and_ends_a_run(client: TestClient) -> None:
    # errors (weight 1) fails, latency (weight 3) passes: score 75, marginal between 50 and 90.
    metrics = [
        {"name": "errors", "kind": "error_rate", "weight": 1},
        {"name": "latency", "kind": "latency", "tolerance": 0.1, "weight": 3},
    ]
    _release(client, metrics=metrics, pass_score=90, marginal_score=50)
    _observe(client, 2, 2000, 200, "two-")
    for looks in (1, 2, 3):
        _check(client)
        status = _status(client)
        assert status["looks"] == looks
        assert status["status"] == "watching"
        assert status["last_look"]["status"] == "marginal"
        assert status["last_look"]["score"] == 75.0
        assert status["failed_in_a_row"] == 0
    assert audit_events(client, model=MODEL, action="production.degraded") == []
    assert _production(client) == 2


def test_the_classification_fields_at_their_defaults_keep_a_policys_digest(
    client: TestClient,
) -> None:
    create_model(client, MODEL)
    before = put_policy(client, MODEL, _policy())
    explicit = _policy(pass_score=100, marginal_score=100, failure_limit=1)
    after = put_policy(client, MODEL, explicit)
    assert (after["revision"], after["digest"]) == (before["revision"], before["digest"])
    changed = put_policy(client, MODEL, _policy(failure_limit=2))
    assert changed["digest"] != before["digest"]
    assert changed["policy"]["monitoring"]["failure_limit"] == 2


def test_monitoring_of_an_unknown_model_is_404(client: TestClient) -> None:
    assert client.get(f"{API}/models/nope/monitoring").status_code == 404


@pytest.fixture
def live(settings: Settings, tmp_path: Path) -> Iterator[list[Any]]:
    env = {
        "DATABASE_URL": settings.database_url,
        "ARTIFACT_STORE": settings.artifact_store,
        "AUTO_MIGRATE": "false",
        "LOG_LEVEL": "WARNING",
        "DB_POOL_SIZE": "3",
        "MONITORING_POLL_SECONDS": "0.1",
        "WEBHOOK_DISPATCHER_ENABLED": "false",
        "S3_REGION": "us-east-1",
    }
    if settings.s3_endpoint_url:
        env["S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    with running_servers(env, count=2, timeout=180) as servers:
        yield servers


def test_two_server_processes_raise_and_roll_back_once(client: TestClient, live: list[Any]) -> None:
    headers = dict(client.headers)
    first, second = (httpx.Client(base_url=s.base_url, headers=headers, timeout=30) for s in live)
    try:
        _release(first, on_degraded="rollback")
        _observe(second, 2, 2000, 200, "two-")
        wait_until(
            lambda: _status(first)["last_degradation"] is not None,
            timeout=60,
            what="the degradation",
        )
        # Both processes keep checking every 0.1 s (each model's interval: 1 s); give
        # them several rounds to raise or roll back a second time, which they must not.
        time.sleep(3)
        assert len(audit_events(first, model=MODEL, action="production.degraded")) == 1
        assert len(audit_events(second, model=MODEL, action="model.rolled_back")) == 1
        assert _production(second) == 1
        assert _status(second)["status"] == "no_baseline"
    finally:
        first.close()
        second.close()
