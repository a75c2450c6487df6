"""Principals and the last-admin rule.

Tokens belong to a principal (a person or a service account, unique by name); approvals,
self-approval refusal and the audit log use the principal, so one person with two tokens
is one approver. No revocation may leave the deployment without an administrator.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import sessionmaker

from app.auth import service as auth_service
from app.auth.roles import Principal, Role
from app.db import migrate
from app.errors import LastAdmin
from tests.support.api import API, assert_problem, audit_events, auth, create_model
from tests.support.flows import new_version, promote
from tests.support.pg import create_pg_database, drop_pg_database


def token(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post(f"{API}/tokens", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def admin_tokens(client: TestClient) -> list[dict[str, Any]]:
    items = client.get(f"{API}/tokens", params={"limit": 200}).json()["items"]
    return [t for t in items if t["role"] == "admin" and t["revoked_at"] is None]


# principals -------------------------------------------------------------------------


def test_one_person_with_two_tokens_cannot_approve_their_own_request(
    client: TestClient,
) -> None:
    create_model(client, "fraud", primary_metric="accuracy", primary_dataset="holdout")
    version = new_version(client, "fraud")
    ci = auth(token(client, name="alice-ci", role="submitter", principal="alice")["token"])
    laptop = auth(token(client, name="alice-laptop", role="reviewer", principal="alice")["token"])
    bob = auth(token(client, name="bob", role="reviewer")["token"])
    promote(client, "fraud", version, "staging", headers=ci, status="applied")
    pending = promote(client, "fraud", version, "production", headers=ci)
    assert pending["status"] == "pending_approval", pending
    assert pending["requested_by"] == "alice"

    own = client.post(f"{API}/promotions/{pending['id']}/approve", json={}, headers=laptop)
    assert "requested" in assert_problem(own, 403, "forbidden")["detail"]
    approved = client.post(f"{API}/promotions/{pending['id']}/approve", json={}, headers=bob)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "applied"

    events = audit_events(client, model="fraud")
    promotion_actors = {e["actor"] for e in events if e["action"].startswith("promotion.")}
    assert promotion_actors == {"alice", "bob"}, promotion_actors


def test_a_token_names_its_principal_and_kinds_do_not_clash(client: TestClient) -> None:
    created = token(
        client, name="nightly", role="submitter", principal="ci-bot", principal_kind="service"
    )
    assert (created["principal"], created["principal_kind"]) == ("ci-bot", "service")
    # The kind may be left out for an existing principal; it stays what it is.
    again = token(client, name="weekly", role="reader", principal="ci-bot")
    assert again["principal_kind"] == "service"
    clash = client.post(
        f"{API}/tokens",
        json={"name": "x", "role": "reader", "principal": "ci-bot", "principal_kind": "person"},
    )
    assert "service" in assert_problem(clash, 409, "principal-kind-conflict")["detail"]
    # Without a principal, the token's name names it (a person when new).
    plain = token(client, name="carol", role="reviewer")
    assert (plain["principal"], plain["principal_kind"]) == ("carol", "person")
    bad = client.post(
        f"{API}/tokens", json={"name": "x", "role": "reader", "principal_kind": "robot"}
    )
    assert_problem(bad, 422)

    events = audit_events(client, action="token.created")
    mine = next(e for e in events if e["details"]["token_id"] == created["id"])
    assert mine["details"]["principal"] == "ci-bot"
    assert mine["details"]["principal_kind"] == "service"


def test_admins_list_principals_with_their_active_roles(
    client: TestClient, make_token: Any
) -> None:
    first = token(client, name="dave-1", role="reader", principal="dave")
    token(client, name="dave-2", role="operator", principal="dave")
    assert client.delete(f"{API}/tokens/{first['id']}").status_code == 200
    token(client, name="svc", role="submitter", principal="deployer", principal_kind="service")

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = client.get(f"{API}/principals", params=params)
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    by_name = {p["name"]: p for p in seen}
    assert [p["name"] for p in seen] == sorted(by_name)
    assert by_name["dave"]["active_roles"] == ["operator"]
    assert by_name["dave"]["kind"] == "person"
    assert by_name["deployer"]["kind"] == "service"
    assert by_name["bootstrap-admin"]["active_roles"] == ["admin"]

    reviewer = make_token("reviewer")
    assert_problem(client.get(f"{API}/principals", headers=auth(reviewer)), 403, "forbidden")


# the last-admin rule ----------------------------------------------------------------


def test_the_last_admin_token_cannot_be_revoked(client: TestClient) -> None:
    (only,) = admin_tokens(client)
    problem = assert_problem(client.delete(f"{API}/tokens/{only['id']}"), 409, "last-admin")
    assert "last active admin" in problem["detail"]
    assert "bootstrap" in problem["detail"]
    assert client.get(f"{API}/tokens").status_code == 200  # still works

    second = token(client, name="erin", role="admin")
    revoked = client.delete(f"{API}/tokens/{only['id']}", headers=auth(second["token"]))
    assert revoked.status_code == 200, revoked.text
    # Now erin's token is the last one, including for revoking itself.
    erin = auth(second["token"])
    assert_problem(client.delete(f"{API}/tokens/{second['id']}", headers=erin), 409, "last-admin")
    assert client.get(f"{API}/tokens", headers=erin).status_code == 200


def test_two_tokens_of_one_admin_still_count_as_one_principal(client: TestClient) -> None:
    """Revoking one of two admin tokens of the same principal leaves an admin: allowed."""
    (boot,) = admin_tokens(client)
    extra = token(client, name="boot-2", role="admin", principal="bootstrap-admin")
    assert client.delete(f"{API}/tokens/{extra['id']}").status_code == 200
    assert_problem(client.delete(f"{API}/tokens/{boot['id']}"), 409, "last-admin")


def test_only_expiring_admin_tokens_may_not_be_left(client: TestClient) -> None:
    """Letting every admin token expire is guarded where it can be: the last admin token
    that does not expire cannot be revoked while the others all expire."""
    (boot,) = admin_tokens(client)
    temp = token(client, name="frank", role="admin", expires_in_days=30)
    problem = assert_problem(client.delete(f"{API}/tokens/{boot['id']}"), 409, "last-admin")
    assert "does not expire" in problem["detail"]
    assert "expires by" in problem["detail"]
    # An expiring admin token itself may go: the lasting one stays.
    assert client.delete(f"{API}/tokens/{temp['id']}").status_code == 200
    # With a lasting admin beside it, the bootstrap token may go.
    lasting = token(client, name="grace", role="admin")
    assert client.delete(f"{API}/tokens/{boot['id']}").status_code == 200
    assert client.get(f"{API}/tokens", headers=auth(lasting["token"])).status_code == 200


def test_non_admin_tokens_are_revoked_freely(client: TestClient, make_token: Any) -> None:
    created = token(client, name="reader-x", role="reader")
    assert client.delete(f"{API}/tokens/{created['id']}").status_code == 200


@pytest.mark.postgres_only
def test_two_admins_revoking_each_other_at_once_leave_one(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = sessionmaker(engine)
    system = Principal(name="test", role=Role.ADMIN)
    with sessions() as session, session.begin():
        a, _ = auth_service.create_token(session, actor=system, name="a", role=Role.ADMIN)
        b, _ = auth_service.create_token(session, actor=system, name="b", role=Role.ADMIN)
        ids = [a.id, b.id]
        for t in auth_service.list_tokens(session, after_id=None, limit=100):
            if t[0].id not in ids:  # the bootstrap admin: out of the way first
                auth_service.revoke_token(session, actor=system, token_id=t[0].id)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def revoke(token_id: str) -> None:
        with sessions() as session:
            try:
                with session.begin():
                    barrier.wait()
                    auth_service.revoke_token(session, actor=system, token_id=token_id)
                outcomes.append("revoked")
            except LastAdmin:
                outcomes.append("refused")

    threads = [threading.Thread(target=revoke, args=(i,)) for i in reversed(ids)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(outcomes) == ["refused", "revoked"]
        with engine.connect() as conn:
            left = conn.execute(
                text("SELECT count(*) FROM api_tokens WHERE role = 'admin' AND revoked_at IS NULL")
            ).scalar_one()
        assert left == 1
    finally:
        engine.dispose()


# the migration ----------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres_only)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
        try:
            yield engine
        finally:
            engine.dispose()
        return
    name = f"modelgate_migr5_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    engine = create_engine(create_pg_database(name))
    try:
        yield engine
    finally:
        engine.dispose()
        drop_pg_database(name)


def test_migration_gives_each_token_name_one_principal_and_back(engine: Engine) -> None:
    migrate.upgrade(engine, "0004")
    now = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [("t1", "alice", "reader"), ("t2", "alice", "admin"), ("t3", "ci", "submitter")]
    with engine.begin() as conn:
        for token_id, name, role in rows:
            conn.execute(
                text(
                    "INSERT INTO api_tokens (id, name, role, secret_hash, created_by, "
                    "created_at) VALUES (:id, :name, :role, :hash, 'test', :at)"
                ),
                {"id": token_id, "name": name, "role": role, "hash": token_id * 10, "at": now},
            )
    migrate.upgrade(engine)
    with engine.connect() as conn:
        principals = conn.execute(text("SELECT name, kind FROM principals ORDER BY name")).all()
        owners = conn.execute(
            text(
                "SELECT api_tokens.id, principals.name FROM api_tokens "
                "JOIN principals ON principals.id = api_tokens.principal_id ORDER BY api_tokens.id"
            )
        ).all()
    assert [tuple(p) for p in principals] == [("alice", "person"), ("ci", "person")]
    assert [tuple(o) for o in owners] == [("t1", "alice"), ("t2", "alice"), ("t3", "ci")]

    with engine.begin() as conn:  # a token labelled apart from its principal
        conn.execute(text("UPDATE api_tokens SET name = 'alice-laptop' WHERE id = 't1'"))
    migrate.downgrade(engine, "0004")
    with engine.connect() as conn:
        names = conn.execute(text("SELECT id, name FROM api_tokens ORDER BY id")).all()
    assert [tuple(n) for n in names] == [("t1", "alice"), ("t2", "alice"), ("t3", "ci")]
    migrate.upgrade(engine)
