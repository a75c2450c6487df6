"""The audit log: one event per write, hash-chained per stream, queryable, exportable, and
tamper-evident (PostgreSQL also refuses UPDATE, DELETE and TRUNCATE outright)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.exc import DBAPIError

from app.audit.hashing import GENESIS_HASH, event_hash
from app.audit.models import AuditEvent
from tests.support.api import (
    API,
    audit_events,
    auth,
    create_model,
    create_version,
    sha256_hex,
    version_payload,
)


def run_sql(database_url: str, *statements: str, bypass_triggers: bool = False) -> None:
    """Run SQL behind the service's back; ``bypass_triggers`` needs a superuser on PostgreSQL."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            if bypass_triggers and engine.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL session_replication_role = replica"))
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def populate(client: TestClient, make_token: Callable[..., str]) -> dict[str, Any]:
    """One of every kind of write, by two actors; returns the responses by name."""
    ci = make_token("submitter", name="ci-bot")
    ci_headers = auth(ci)
    r: dict[str, Any] = {}
    r["model_a"] = client.post(f"{API}/models", json={"name": "a", "owner": "x"})
    r["model_b"] = client.post(f"{API}/models", json={"name": "b"}, headers=ci_headers)
    r["patch_a"] = client.patch(f"{API}/models/a", json={"owner": "y"})
    r["version_a1"] = client.post(f"{API}/models/a/versions", json=version_payload())
    r["version_a2"] = client.post(
        f"{API}/models/a/versions", json=version_payload(0.93), headers=ci_headers
    )
    r["version_b1"] = client.post(f"{API}/models/b/versions", json={}, headers=ci_headers)
    r["metrics_a1"] = client.post(
        f"{API}/models/a/versions/1/metrics",
        json={"metrics": [{"name": "f1", "value": 0.7, "dataset": "holdout"}]},
    )
    r["artifact_a1"] = client.put(
        f"{API}/models/a/versions/1/artifact",
        content=b"model bytes",
        headers={"Content-Type": "application/octet-stream"},
    )
    r["token"] = client.post(f"{API}/tokens", json={"name": "temp", "role": "reader"})
    r["revoke"] = client.delete(f"{API}/tokens/{r['token'].json()['id']}")
    for name, response in r.items():
        assert response.status_code in (200, 201), (name, response.text)
    return r


EXPECTED = [
    # (response, action, model, version, actor)
    ("model_a", "model.created", "a", None, "bootstrap-admin"),
    ("model_b", "model.created", "b", None, "ci-bot"),
    ("patch_a", "model.updated", "a", None, "bootstrap-admin"),
    ("version_a1", "version.created", "a", 1, "bootstrap-admin"),
    ("version_a2", "version.created", "a", 2, "ci-bot"),
    ("version_b1", "version.created", "b", 1, "ci-bot"),
    ("metrics_a1", "metrics.added", "a", 1, "bootstrap-admin"),
    ("artifact_a1", "artifact.uploaded", "a", 1, "bootstrap-admin"),
    ("token", "token.created", None, None, "bootstrap-admin"),
    ("revoke", "token.revoked", None, None, "bootstrap-admin"),
]


def test_every_write_appends_one_event(client: TestClient, make_token: Callable[..., str]) -> None:
    responses = populate(client, make_token)
    events = audit_events(client)
    # The bootstrap admin token (created by the system at start) and the fixture's
    # ci-bot token come first.
    assert [e["action"] for e in events[:2]] == ["token.created", "token.created"]
    assert events[0]["actor"] == "system"
    assert events[0]["details"]["name"] == "bootstrap-admin"
    assert events[0]["request_id"] is None
    assert events[1]["details"]["name"] == "ci-bot"
    events = events[2:]
    assert len(events) == len(EXPECTED)
    for event, (name, action, model, version, actor) in zip(events, EXPECTED, strict=True):
        assert event["action"] == action, name
        assert event["model"] == model, name
        assert event["version"] == version, name
        assert event["actor"] == actor, name
        assert event["actor_role"] == ("submitter" if actor == "ci-bot" else "admin"), name
        assert event["token_id"], name
        assert event["request_id"] == responses[name].headers["x-request-id"], name
        assert event["stream"] == ("global" if model is None else f"model:{model}"), name
    assert events[3]["to_stage"] == "candidate"
    assert events[7]["details"]["sha256"] == sha256_hex(b"model bytes")
    # Reads write nothing.
    client.get(f"{API}/models")
    client.get(f"{API}/models/a/versions/1")
    client.get(f"{API}/models/a/versions/1/artifact")
    client.get(f"{API}/audit/verify")
    assert len(audit_events(client)) == len(EXPECTED) + 2


def test_refused_writes_append_nothing(client: TestClient) -> None:
    create_model(client, "m")
    before = len(audit_events(client))
    client.post(f"{API}/models", json={"name": "m"})  # 409
    client.post(f"{API}/models/m/versions", json={"metrics": "x"})  # 422
    client.post(f"{API}/models/nope/versions", json={})  # 404
    client.put(f"{API}/models/m/versions/1/artifact", content=b"x")  # 404
    client.patch(f"{API}/models/m", json={})  # nothing changes
    assert len(audit_events(client)) == before


def test_chains_are_per_stream_and_verify(
    client: TestClient, make_token: Callable[..., str]
) -> None:
    populate(client, make_token)
    events = audit_events(client)
    streams: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        streams.setdefault(event["stream"], []).append(event)
    assert set(streams) == {"global", "model:a", "model:b"}
    assert len(streams["model:a"]) == 6
    assert len(streams["model:b"]) == 2
    for chain in streams.values():
        assert [e["seq"] for e in chain] == list(range(1, len(chain) + 1))
        assert chain[0]["prev_hash"] == GENESIS_HASH
        for before, after in itertools.pairwise(chain):
            assert after["prev_hash"] == before["hash"]
        # Each hash can be recomputed offline from the event as the API shows it.
        for event in chain:
            fields = {**event, "occurred_at": datetime.fromisoformat(event["occurred_at"])}
            assert event_hash(fields, event["prev_hash"]) == event["hash"]

    report = client.get(f"{API}/audit/verify")
    assert report.status_code == 200
    body = report.json()
    assert body["ok"] is True
    assert body["events_checked"] == len(events)
    assert body["streams_checked"] == 3
    assert body["first_problem"] is None
    assert body["problems"] == []


def test_verify_on_an_empty_log(app_client: TestClient, database_url: str) -> None:
    # The bootstrap token's creation is the only event.
    app_client.headers.update(auth("mgt_test-admin-token-0123456789abcdef"))
    body = app_client.get(f"{API}/audit/verify").json()
    assert body["ok"] is True
    assert body["events_checked"] == 1


def test_query_filters(client: TestClient, make_token: Callable[..., str]) -> None:
    populate(client, make_token)
    everything = audit_events(client)

    def ids(**params: Any) -> list[int]:
        return [e["id"] for e in audit_events(client, **params)]

    assert ids(model="a") == [e["id"] for e in everything if e["model"] == "a"]
    assert len(ids(model="a")) == 6
    assert len(ids(model="b")) == 2
    assert ids(model="nope") == []
    assert len(ids(actor="ci-bot")) == 3
    assert ids(actor="ci-bot", model="b") == [
        e["id"] for e in everything if e["actor"] == "ci-bot" and e["model"] == "b"
    ]
    assert len(ids(action="version.created")) == 3
    assert len(ids(action="version.created", model="a")) == 2
    assert len(ids(action="token.created")) == 3

    times = [datetime.fromisoformat(e["occurred_at"]) for e in everything]
    assert times == sorted(times)
    middle = times[5]
    since = ids(since=middle.isoformat())
    assert since == [e["id"] for e, t in zip(everything, times, strict=True) if t >= middle]
    until = ids(until=middle.isoformat())
    assert until == [e["id"] for e, t in zip(everything, times, strict=True) if t < middle]
    assert ids(since=(times[-1] + timedelta(seconds=1)).isoformat()) == []
    window = ids(since=times[2].isoformat(), until=times[6].isoformat(), model="a")
    assert window == [
        e["id"]
        for e, t in zip(everything, times, strict=True)
        if times[2] <= t < times[6] and e["model"] == "a"
    ]
    # Times need an offset (a naive one would be a guess) and must fit once made UTC.
    for bad in ("2020-01-01T00:00:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"):
        for path in ("/audit", "/audit/export"):
            response = client.get(API + path, params={"since": bad})
            assert response.status_code == 422, (path, bad, response.text)
            assert ["query", "since"] in [e["loc"] for e in response.json()["errors"]]
    offset = (times[5] + timedelta(hours=2)).astimezone(timezone(timedelta(hours=2)))
    assert ids(since=offset.isoformat()) == ids(since=(times[5] + timedelta(hours=2)).isoformat())


def test_query_paginates_with_cursor(client: TestClient, make_token: Callable[..., str]) -> None:
    populate(client, make_token)
    everything = [e["id"] for e in audit_events(client)]
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get(f"{API}/audit", params=params).json()
        assert len(page["items"]) <= 3
        seen += [e["id"] for e in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything
    assert pages == -(-len(everything) // 3)
    # Filters hold across pages.
    first = client.get(f"{API}/audit", params={"model": "a", "limit": 4}).json()
    rest = client.get(
        f"{API}/audit", params={"model": "a", "limit": 4, "cursor": first["next_cursor"]}
    ).json()
    assert [e["model"] for e in first["items"] + rest["items"]] == ["a"] * 6
    assert rest["next_cursor"] is None


def test_export_streams_json_lines_matching_the_query(
    client: TestClient, make_token: Callable[..., str]
) -> None:
    populate(client, make_token)
    response = client.get(f"{API}/audit/export")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = response.text.splitlines()
    exported = [json.loads(line) for line in lines]
    assert exported == audit_events(client)
    assert response.text.endswith("\n")

    only_a = [json.loads(x) for x in client.get(f"{API}/audit/export?model=a").text.splitlines()]
    assert only_a == audit_events(client, model="a")
    since = exported[4]["occurred_at"]
    recent = client.get(f"{API}/audit/export", params={"since": since}).text.splitlines()
    assert [json.loads(x) for x in recent] == audit_events(client, since=since)


# Tampering ------------------------------------------------------------------------------


def first_problem(client: TestClient) -> dict[str, Any]:
    body = client.get(f"{API}/audit/verify").json()
    assert body["ok"] is False, body
    assert body["problems"]
    assert body["first_problem"] == body["problems"][0]
    problem: dict[str, Any] = body["first_problem"]
    return problem


def chain_of(client: TestClient, model: str) -> list[dict[str, Any]]:
    return [e for e in audit_events(client, model=model) if e["stream"] == f"model:{model}"]


def make_history(client: TestClient) -> list[dict[str, Any]]:
    create_model(client, "victim")
    for _ in range(4):
        create_version(client, "victim", {})
    create_model(client, "bystander")
    chain = chain_of(client, "victim")
    assert [e["seq"] for e in chain] == [1, 2, 3, 4, 5]
    assert client.get(f"{API}/audit/verify").json()["ok"] is True
    return chain


def test_altered_event_is_named(client: TestClient, database_url: str) -> None:
    chain = make_history(client)
    target = chain[2]
    run_sql(
        database_url,
        f'UPDATE audit_events SET details = \'{{"lineage": {{}}, "metrics": 99}}\' '
        f"WHERE id = {target['id']}",
        bypass_triggers=True,
    )
    problem = first_problem(client)
    assert problem["stream"] == "model:victim"
    assert problem["seq"] == 3
    assert problem["event_id"] == target["id"]
    assert problem["kind"] == "altered"
    assert problem["detail"]


@pytest.mark.parametrize(
    ("column", "value"),
    [("actor", "'someone-else'"), ("version", "42"), ("request_id", "'forged'"),
     ("action", "'model.created'"), ("occurred_at", None)],
)  # fmt: skip
def test_any_altered_column_is_detected(
    client: TestClient, database_url: str, column: str, value: str | None
) -> None:
    chain = make_history(client)
    target = chain[1]
    if value is None:  # shift the time by a second, through the column's own type
        engine = create_engine(database_url)
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL session_replication_role = replica"))
            where = AuditEvent.id == target["id"]
            stored = conn.execute(select(AuditEvent.occurred_at).where(where)).scalar_one()
            conn.execute(
                update(AuditEvent).where(where).values(occurred_at=stored + timedelta(seconds=1))
            )
        engine.dispose()
    else:
        run_sql(
            database_url,
            f"UPDATE audit_events SET {column} = {value} WHERE id = {target['id']}",
            bypass_triggers=True,
        )
    problem = first_problem(client)
    assert (problem["stream"], problem["seq"], problem["kind"]) == ("model:victim", 2, "altered")
    assert problem["event_id"] == target["id"]


def test_rehashed_forgery_breaks_the_next_link(client: TestClient, database_url: str) -> None:
    """An attacker who alters an event and recomputes its hash still breaks the chain."""
    chain = make_history(client)
    target = chain[1]
    forged = {
        **target,
        "actor": "mallory",
        "occurred_at": datetime.fromisoformat(target["occurred_at"]),
    }
    new_hash = event_hash(forged, target["prev_hash"])
    run_sql(
        database_url,
        f"UPDATE audit_events SET actor = 'mallory', hash = '{new_hash}' WHERE id = {target['id']}",
        bypass_triggers=True,
    )
    problem = first_problem(client)
    assert (problem["stream"], problem["seq"], problem["kind"]) == (
        "model:victim",
        3,
        "broken_link",
    )
    assert problem["event_id"] == chain[2]["id"]


def test_deleted_event_in_the_middle_is_named(client: TestClient, database_url: str) -> None:
    chain = make_history(client)
    run_sql(
        database_url, f"DELETE FROM audit_events WHERE id = {chain[2]['id']}", bypass_triggers=True
    )
    problem = first_problem(client)
    assert problem["stream"] == "model:victim"
    assert problem["seq"] == 3
    assert problem["kind"] == "missing"


def test_deleted_last_event_is_named(client: TestClient, database_url: str) -> None:
    chain = make_history(client)
    run_sql(
        database_url, f"DELETE FROM audit_events WHERE id = {chain[-1]['id']}", bypass_triggers=True
    )
    problem = first_problem(client)
    assert problem["stream"] == "model:victim"
    assert problem["seq"] == 5
    assert problem["kind"] == "truncated"


def test_whole_stream_deleted_is_named(client: TestClient, database_url: str) -> None:
    make_history(client)
    run_sql(
        database_url,
        "DELETE FROM audit_events WHERE stream = 'model:bystander'",
        bypass_triggers=True,
    )
    problem = first_problem(client)
    assert problem["stream"] == "model:bystander"
    assert problem["kind"] == "truncated"


def test_inserted_event_is_named(client: TestClient, database_url: str) -> None:
    chain = make_history(client)
    last = chain[-1]
    run_sql(
        database_url,
        "INSERT INTO audit_events (stream, seq, occurred_at, actor, actor_role, action, model,"
        " details, prev_hash, hash) VALUES ('model:victim', 6, "
        f"'{last['occurred_at']}', 'mallory', 'admin', 'version.created', 'victim', '{{}}', "
        f"'{last['hash']}', '{'f' * 64}')",
    )
    body = client.get(f"{API}/audit/verify").json()
    assert body["ok"] is False
    kinds = {(p["stream"], p["seq"], p["kind"]) for p in body["problems"]}
    assert ("model:victim", 6, "altered") in kinds
    assert ("model:victim", 6, "inserted") in kinds


@pytest.mark.postgres_only
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET actor = 'mallory'",
        "UPDATE audit_events SET details = '{}' WHERE seq = 1",
        "DELETE FROM audit_events",
        "DELETE FROM audit_events WHERE seq = 1",
        "TRUNCATE audit_events",
    ],
)
def test_postgres_refuses_update_delete_truncate(
    client: TestClient, database_url: str, statement: str
) -> None:
    create_model(client, "guarded")
    create_version(client, "guarded", {})
    before = audit_events(client)
    with pytest.raises(DBAPIError, match="append-only"):
        run_sql(database_url, statement)
    assert audit_events(client) == before
    assert client.get(f"{API}/audit/verify").json()["ok"] is True
