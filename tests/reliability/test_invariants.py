"""The invariant checker itself: silent on a registry that keeps its promises, and naming
each promise broken when the database or the store is changed behind the service's back
(a checker that never fails would prove nothing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from app.settings import Settings
from app.storage.base import ArtifactStore
from app.storage.factory import open_store
from tests.support.flows import new_version, permissive_policy, promote, put_policy, read_version
from tests.support.invariants import InvariantViolation, check_invariants

MODEL = "checked"


def _store(settings: Settings) -> ArtifactStore:
    return open_store(
        settings.artifact_store,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
    )


@pytest.fixture
def registry(client: TestClient, settings: Settings) -> dict[str, Any]:
    """v1 and v2 served in turn (v2 in production), v3 pending to production, v4 a
    candidate without an artifact."""
    client.post("/api/v1/models", json={"name": MODEL}).raise_for_status()
    put_policy(client, MODEL, permissive_policy(rules=[{"kind": "artifact_intact"}], approvals=1))
    v1, v2, v3 = (new_version(client, MODEL) for _ in range(3))
    new_version(client, MODEL, artifact=False)
    for number in (v1, v2):
        request = promote(client, MODEL, number, "production", status="pending_approval")
        # The admin asked; a reviewer of its own approves.
        reviewer = client.post("/api/v1/tokens", json={"name": f"r{number}", "role": "reviewer"})
        headers = {"Authorization": f"Bearer {reviewer.json()['token']}"}
        approved = client.post(
            f"/api/v1/promotions/{request['id']}/approve", json={}, headers=headers
        )
        assert approved.json()["status"] == "applied", approved.text
    pending = promote(client, MODEL, v3, "production", status="pending_approval")
    return {"pending": pending["id"], "production": v2}


def _check(client: TestClient, settings: Settings) -> Any:
    return check_invariants(
        settings.database_url, store=_store(settings), client=client, models=[MODEL]
    )


def _sql(settings: Settings, statement: str, **params: Any) -> None:
    engine = create_engine(settings.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement), params)
    finally:
        engine.dispose()


def test_a_registry_that_keeps_its_promises_passes(
    client: TestClient, settings: Settings, registry: dict[str, Any]
) -> None:
    report = _check(client, settings)
    assert report.models == 1
    assert report.versions == 4
    assert report.models_with_production == 1
    assert report.history_entries == report.production_moves_in_audit == 2
    assert report.artifacts_verified_in_store == 2  # v1 (served) and v2 (production)
    assert report.promotion_requests == {"applied": 2, "pending_approval": 1}
    assert report.audit_events > 0


def _model_id(settings: Settings) -> int:
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT id FROM registered_models WHERE name = :n"), {"n": MODEL}
                ).scalar_one()
            )
    finally:
        engine.dispose()


Tamper = Callable[[TestClient, Settings, dict[str, Any]], None]


def _skip_a_version_number(client: TestClient, settings: Settings, r: dict[str, Any]) -> None:
    _sql(settings, "UPDATE registered_models SET last_version = 5 WHERE name = :n", n=MODEL)


def _stage_without_audit(client: TestClient, settings: Settings, r: dict[str, Any]) -> None:
    _sql(
        settings,
        "UPDATE model_versions SET stage = 'staging' WHERE version = 4 AND model_id = :m",
        m=_model_id(settings),
    )


def _metric_out_of_step(client: TestClient, settings: Settings, r: dict[str, Any]) -> None:
    _sql(
        settings,
        "UPDATE metrics SET stage = 'archived' WHERE version_id = "
        "(SELECT id FROM model_versions WHERE version = 4 AND model_id = :m)",
        m=_model_id(settings),
    )


def _lose_a_history_row(client: TestClient, settings: Settings, r: dict[str, Any]) -> None:
    _sql(
        settings,
        "DELETE FROM production_history WHERE id = (SELECT max(id) FROM production_history)",
    )


def _half_apply_a_request(client: TestClient, settings: Settings, r: dict[str, Any]) -> None:
    _sql(settings, "UPDATE promotion_requests SET status = 'applied' WHERE id = :i", i=r["pending"])


def _lose_the_production_artifact(
    client: TestClient, settings: Settings, r: dict[str, Any]
) -> None:
    sha = read_version(client, MODEL, r["production"])["artifact"]["sha256"]
    _store(settings).delete(f"sha256/{sha}")


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (_skip_a_version_number, "version numbers are not 1..5"),
        (_stage_without_audit, "v4: stage staging but the audit log last moved it to candidate"),
        (_stage_without_audit, "v4 (staging): no verified artifact"),
        (_metric_out_of_step, "v4: metric 'accuracy' says archived, the version is candidate"),
        (_lose_a_history_row, "!= audit log moves to production"),
        (_lose_a_history_row, "open history periods"),
        (_half_apply_a_request, "applied_at is None"),
        (_half_apply_a_request, "0 stage changes made by it"),
        (_lose_the_production_artifact, "not intact in the store: object missing"),
    ],
)
def test_each_broken_promise_is_named(
    client: TestClient,
    settings: Settings,
    registry: dict[str, Any],
    tamper: Tamper,
    expected: str,
) -> None:
    tamper(client, settings, registry)
    with pytest.raises(InvariantViolation) as caught:
        _check(client, settings)
    assert any(expected in line for line in caught.value.violations), caught.value.violations
