"""What a promotion and a rollback read from the database: each row once, and nothing
they do not use (docs/performance.md, "Statements per request").

The statements are recorded on the app's engine and grouped by the table a ``SELECT``
reads first; only the tables of this feature are checked, so that work elsewhere
(tokens, audit heads, webhooks) can change without touching these tests.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from app.promotion import policy as policy_service
from app.promotion.schemas import GatePolicyDocument
from app.registry import service as registry
from tests.support.api import create_model
from tests.support.flows import new_version, promote, put_policy, rollback

MODEL = "fraud"
POLICY: dict[str, Any] = {
    "staging": {
        "rules": [{"kind": "threshold", "metric": "accuracy", "dataset": "holdout", "value": 0.5}],
        "approvals_required": 0,
        "auto_promote": True,
    },
    "production": {
        "rules": [
            {"kind": "threshold", "metric": "accuracy", "dataset": "holdout", "value": 0.5},
            {"kind": "no_regression", "metric": "accuracy", "dataset": "holdout", "delta": -1},
        ],
        "approvals_required": 0,
        "auto_promote": True,
        "require_staging": True,
    },
}


def _kind(statement: str) -> tuple[str, str]:
    verb = statement.split(None, 1)[0].upper()
    if verb == "SELECT":
        found = re.search(r"\bFROM\s+(\w+)", statement)
        return "select", found.group(1) if found else ""
    if verb == "INSERT":
        return "insert", statement.split()[2]
    if verb == "UPDATE":
        return "update", statement.split()[1]
    return verb.lower(), ""


def _kinds(statement: str) -> list[str]:
    """A statement as counted: ``"select model_versions"`` and so on; a ``WITH``
    statement counts once as ``"with "`` and once per write it holds, as
    ``"in with: update metrics"`` (its CTEs' and its own)."""
    kind = " ".join(_kind(statement))
    if kind != "with ":
        return [kind]
    found = re.findall(r"\b(INSERT INTO|UPDATE)\s+(\w+)", statement)
    return [kind, *(f"in with: {verb.split()[0].lower()} {table}" for verb, table in found)]


def writes(counts: Counter[str], kind: str) -> int:
    """How many times a write (``"update model_versions"``) was made, alone or inside a
    ``WITH`` statement."""
    return counts[kind] + counts[f"in with: {kind}"]


@pytest.fixture
def recorded(client: TestClient) -> Iterator[Callable[[Callable[[], object]], Counter[str]]]:
    """Run a call and count its statements as ``"select model_versions"`` and so on."""
    engine = client.app.state.engine  # type: ignore[attr-defined]
    seen: list[str] = []
    on = [False]

    def listener(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if on[0]:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", listener)

    def record(call: Callable[[], object]) -> Counter[str]:
        seen.clear()
        on[0] = True
        try:
            call()
        finally:
            on[0] = False
        return Counter(kind for s in seen for kind in _kinds(s))

    yield record
    event.remove(engine, "before_cursor_execute", listener)


def _model(client: TestClient) -> None:
    create_model(client, MODEL, primary_metric="accuracy", primary_dataset="holdout")
    put_policy(client, MODEL, POLICY)


def test_a_promotion_reads_each_row_once(
    client: TestClient, recorded: Callable[[Callable[[], object]], Counter[str]]
) -> None:
    _model(client)
    first = new_version(client, MODEL, accuracy=0.8)
    promote(client, MODEL, first, "staging", status="applied")
    promote(client, MODEL, first, "production", status="applied")
    number = new_version(client, MODEL, accuracy=0.9)

    staging = recorded(lambda: promote(client, MODEL, number, "staging", status="applied"))
    # The version (locked) and production (for the report's evaluated_against): no
    # evidence, one read of the metrics of both, one of the policy and pending requests.
    assert staging["select model_versions"] == 2, staging
    assert staging["select metrics"] == 1, staging
    assert staging["select evaluation_evidence"] == 0, staging
    assert staging["select gate_policies"] == 1, staging
    assert staging["select promotion_requests"] == 1, staging
    assert staging["select promotion_approvals"] == 0, staging
    # Written once, with its outcome.
    assert staging["insert promotion_requests"] == 1, staging
    assert staging["update promotion_requests"] == 0, staging

    production = recorded(lambda: promote(client, MODEL, number, "production", status="applied"))
    # The version and the production it replaces, locked in one statement and not read again.
    assert production["select model_versions"] == 1, production
    assert production["select metrics"] == 1, production
    assert production["select evaluation_evidence"] == 0, production
    assert production["select gate_policies"] == 1, production
    assert production["select promotion_requests"] == 1, production
    assert production["select promotion_approvals"] == 0, production
    assert production["select production_history"] == 0, production
    # Stage changes and the production period's hand-over are written once each.
    assert writes(production, "update production_history") == 1, production
    assert writes(production, "insert production_history") == 1, production
    assert writes(production, "update model_versions") == 2, production
    assert writes(production, "update metrics") == 2, production
    assert production["update promotion_requests"] == 0, production
    # Running rollouts are looked for once, before the request is written.
    assert production["select rollouts"] == 1, production


def test_a_move_to_production_writes_each_change_in_one_statement(
    client: TestClient,
    recorded: Callable[[Callable[[], object]], Counter[str]],
    database_url: str,
) -> None:
    """On PostgreSQL a stage change and its metrics' copy are one statement, the
    production period's close and open one, the serving revision and its notification
    one; SQLite (no writes in a ``WITH``) makes them separately."""
    _model(client)
    first = new_version(client, MODEL, accuracy=0.8)
    promote(client, MODEL, first, "staging", status="applied")
    promote(client, MODEL, first, "production", status="applied")
    number = new_version(client, MODEL, accuracy=0.9)
    promote(client, MODEL, number, "staging", status="applied")

    counts = recorded(lambda: promote(client, MODEL, number, "production", status="applied"))
    packed = {
        "update model_versions": 2,  # the replaced version leaves, the new one arrives
        "update metrics": 2,
        "update production_history": 1,
        "insert production_history": 1,
        "update serving_revisions": 1,
    }
    for kind, times in packed.items():
        assert writes(counts, kind) == times, (kind, counts)
    if database_url.startswith("postgresql"):
        for kind in packed:
            assert counts[kind] == 0, (kind, counts)  # none of them alone
        assert counts["select "] == 0, counts  # pg_notify rides on the revision's UPDATE
    else:
        for kind, times in packed.items():
            assert counts[kind] == times, (kind, counts)


def test_a_version_creation_reads_its_model_in_the_numbering_statement(
    client: TestClient, recorded: Callable[[Callable[[], object]], Counter[str]]
) -> None:
    _model(client)
    new_version(client, MODEL, accuracy=0.8)

    counts = recorded(lambda: new_version(client, MODEL, accuracy=0.9, artifact=False))
    # UPDATE ... RETURNING numbers the version, locks the model row and reads it.
    assert counts["select registered_models"] == 0, counts
    assert counts["update registered_models"] == 1, counts
    assert counts["insert model_versions"] == 1, counts
    # All the version's metrics in one statement.
    assert counts["insert metrics"] == 1, counts


def test_a_rollback_reads_no_metrics_or_evidence(
    client: TestClient, recorded: Callable[[Callable[[], object]], Counter[str]]
) -> None:
    _model(client)
    for accuracy in (0.8, 0.9):
        number = new_version(client, MODEL, accuracy=accuracy)
        promote(client, MODEL, number, "staging", status="applied")
        promote(client, MODEL, number, "production", status="applied")

    def back() -> None:
        response = rollback(client, MODEL)
        assert response.status_code == 200, response.text

    counts = recorded(back)
    # Production (locked) and the previous stable version found in one statement.
    assert counts["select model_versions"] == 2, counts
    assert counts["select metrics"] == 0, counts
    assert counts["select evaluation_evidence"] == 0, counts
    assert counts["select production_history"] == 0, counts
    # The version rolled back from is written once (archived and flagged together), the
    # target once for its stage and once for the verification of its artifact
    # (artifact_checked_at: what was checked, how, and when).
    assert writes(counts, "update model_versions") == 3, counts


def test_the_policy_in_force_is_validated_once_per_revision(client: TestClient) -> None:
    _model(client)
    sessions = client.app.state.sessions  # type: ignore[attr-defined]
    with sessions() as session:
        model = registry.get_model(session, MODEL)
        one = policy_service.in_force(session, model)
        again = policy_service.in_force(session, model)
    assert again.document is one.document
    assert one.document == GatePolicyDocument.model_validate(POLICY)

    changed = {**POLICY, "staging": {**POLICY["staging"], "approvals_required": 1}}
    put_policy(client, MODEL, changed)
    with sessions() as session:
        now = policy_service.in_force(session, registry.get_model(session, MODEL))
    assert now.revision == one.revision + 1
    assert now.document is not one.document
    assert now.document.staging.approvals_required == 1


def test_an_event_is_appended_and_published_without_reading_the_webhooks(
    client: TestClient,
    recorded: Callable[[Callable[[], object]], Counter[str]],
    database_url: str,
) -> None:
    """The event's row, its chain head and its outbox row are written without a read of
    the webhook table (the subscribers are chosen in the outbox ``INSERT ... SELECT``); on
    PostgreSQL the event, its head move, the outbox row and its deliveries are one
    statement."""
    _model(client)
    new_version(client, MODEL, accuracy=0.8)

    counts = recorded(lambda: new_version(client, MODEL, accuracy=0.9, artifact=False))
    assert counts["select webhooks"] == 0, counts
    assert counts["select audit_streams"] == 1, counts  # the head, locked
    written = ("insert audit_events", "update audit_streams", "insert event_outbox",
               "insert webhook_deliveries")  # fmt: skip
    for kind in written:
        assert writes(counts, kind) == 1, (kind, counts)
    if database_url.startswith("postgresql"):
        assert counts["with "] == 1, counts
        for kind in written:
            assert counts[kind] == 0, (kind, counts)  # none of them alone
    else:
        for kind in written:
            assert counts[kind] == 1, (kind, counts)
