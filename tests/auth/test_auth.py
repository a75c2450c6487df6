"""Bearer tokens: 401 for missing, bad, revoked and expired ones; 403 by role and model scope."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import create_engine, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.auth.models import ApiToken, PrincipalRecord
from app.auth.service import ensure_bootstrap_admin
from app.db.base import utcnow
from app.main import create_app
from app.settings import Settings
from tests.support.api import (
    ADMIN_TOKEN,
    API,
    assert_problem,
    audit_events,
    auth,
    create_model,
    create_version,
    version_payload,
)

MakeToken = Callable[..., str]


def token_rows(database_url: str) -> list[ApiToken]:
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at)))
    finally:
        engine.dispose()


def test_missing_header_is_401_with_challenge(app_client: TestClient) -> None:
    for method, path in [
        ("GET", "/models"),
        ("POST", "/models"),
        ("GET", "/audit"),
        ("GET", "/tokens"),
        ("GET", "/models/x/versions/1/artifact"),
    ]:
        response = app_client.request(method, API + path, json={} if method == "POST" else None)
        problem = assert_problem(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "Authorization" in problem["detail"]


@pytest.mark.parametrize(
    "header",
    [
        "Bearer garbage",
        "Bearer " + ADMIN_TOKEN + "x",
        "Bearer " + ADMIN_TOKEN[:-1],
        "Basic " + ADMIN_TOKEN,
        "Bearer",
        "Bearer    ",
        ADMIN_TOKEN,
        "Bearer \u00e9\u00e9",
    ],
)
def test_bad_tokens_are_401(app_client: TestClient, header: str) -> None:
    response = app_client.get(f"{API}/models", headers={"Authorization": header.encode("utf-8")})
    assert_problem(response, 401, "unauthenticated")
    assert "www-authenticate" in response.headers


def test_admin_token_works(client: TestClient) -> None:
    assert client.get(f"{API}/models").status_code == 200


def test_revoked_token_is_401(client: TestClient) -> None:
    created = client.post(f"{API}/tokens", json={"name": "ci", "role": "submitter"}).json()
    secret = created["token"]
    assert client.get(f"{API}/models", headers=auth(secret)).status_code == 200

    revoked = client.delete(f"{API}/tokens/{created['id']}")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    problem = assert_problem(
        client.get(f"{API}/models", headers=auth(secret)), 401, "unauthenticated"
    )
    assert "revoked" in problem["detail"]
    # Revoking again is harmless and keeps the first revocation time.
    again = client.delete(f"{API}/tokens/{created['id']}")
    assert again.status_code == 200
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert_problem(client.delete(f"{API}/tokens/{'0' * 16}"), 404, "token-not-found")
    assert_problem(client.delete(f"{API}/tokens/not-hex!"), 422)


def expire_behind_the_server(database_url: str, token_id: str) -> None:
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            update(ApiToken)
            .where(ApiToken.id == token_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    engine.dispose()


def cached_client(settings: Settings, ttl: float) -> TestClient:
    app = create_app(settings.model_copy(update={"auth_cache_seconds": ttl}))
    return TestClient(app, base_url="http://modelgate.test")


def test_expired_token_is_401_without_the_cache(settings: Settings, database_url: str) -> None:
    with cached_client(settings, 0) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        created = client.post(
            f"{API}/tokens", json={"name": "short", "role": "reader", "expires_in_days": 1}
        ).json()
        assert created["expires_at"] is not None
        assert client.get(f"{API}/models", headers=auth(created["token"])).status_code == 200

        expire_behind_the_server(database_url, created["id"])
        problem = assert_problem(
            client.get(f"{API}/models", headers=auth(created["token"])), 401, "unauthenticated"
        )
        assert "expired" in problem["detail"]


def test_a_change_behind_the_server_reaches_it_within_the_cache_ttl(
    settings: Settings, database_url: str
) -> None:
    with cached_client(settings, 0.5) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        created = client.post(
            f"{API}/tokens", json={"name": "short", "role": "reader", "expires_in_days": 1}
        ).json()
        assert client.get(f"{API}/models", headers=auth(created["token"])).status_code == 200

        expire_behind_the_server(database_url, created["id"])
        time.sleep(0.6)
        problem = assert_problem(
            client.get(f"{API}/models", headers=auth(created["token"])), 401, "unauthenticated"
        )
        assert "expired" in problem["detail"]


def test_a_cached_token_still_expires_on_time(settings: Settings, database_url: str) -> None:
    """The cache keeps a token for a minute here; its expiry still applies to the second."""
    secret = "mgt_" + "e" * 43
    engine = create_engine(database_url)
    with engine.begin() as conn:
        owner = conn.execute(
            insert(PrincipalRecord).values(
                name="expiring", kind="person", created_by="test", created_at=utcnow()
            )
        ).inserted_primary_key
        assert owner is not None
        conn.execute(
            insert(ApiToken).values(
                id="e0e0e0e0e0e0e0e0",
                name="expiring",
                principal_id=owner[0],
                role="reader",
                secret_hash=hashlib.sha256(secret.encode()).hexdigest(),
                created_by="test",
                created_at=utcnow(),
                expires_at=utcnow() + timedelta(seconds=1.5),
            )
        )
    engine.dispose()
    with cached_client(settings, 60) as client:
        assert client.get(f"{API}/models", headers=auth(secret)).status_code == 200
        assert len(client.app.state.token_cache) >= 1  # type: ignore[attr-defined]
        time.sleep(1.6)
        problem = assert_problem(
            client.get(f"{API}/models", headers=auth(secret)), 401, "unauthenticated"
        )
        assert "expired" in problem["detail"]


def test_a_revocation_is_immediate_in_the_process_that_made_it(settings: Settings) -> None:
    with cached_client(settings, 60) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        created = client.post(f"{API}/tokens", json={"name": "r", "role": "reader"}).json()
        for _ in range(2):  # the second one is answered from the cache
            assert client.get(f"{API}/models", headers=auth(created["token"])).status_code == 200
        assert client.delete(f"{API}/tokens/{created['id']}").status_code == 200
        problem = assert_problem(
            client.get(f"{API}/models", headers=auth(created["token"])), 401, "unauthenticated"
        )
        assert "revoked" in problem["detail"]


def test_a_revocation_reaches_every_app_of_the_process(settings: Settings) -> None:
    """Two apps in one process (two caches): revoking through one drops it from both."""
    with cached_client(settings, 60) as first, cached_client(settings, 60) as second:
        first.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        created = first.post(f"{API}/tokens", json={"name": "r2", "role": "reader"}).json()
        assert second.get(f"{API}/models", headers=auth(created["token"])).status_code == 200
        assert first.delete(f"{API}/tokens/{created['id']}").status_code == 200
        assert_problem(
            second.get(f"{API}/models", headers=auth(created["token"])), 401, "unauthenticated"
        )


def test_reader_cannot_write(client: TestClient, make_token: MakeToken) -> None:
    reader = make_token("reader")
    create_model(client, "m")
    create_version(client, "m")
    assert client.get(f"{API}/models", headers=auth(reader)).status_code == 200
    assert client.get(f"{API}/models/m/versions/1", headers=auth(reader)).status_code == 200
    for method, path, body in [
        ("POST", "/models", {"name": "x"}),
        ("PATCH", "/models/m", {"owner": "x"}),
        ("POST", "/models/m/versions", version_payload()),
        ("POST", "/models/m/versions/1/metrics", {"metrics": []}),
        ("POST", "/tokens", {"name": "x", "role": "admin"}),
    ]:
        response = client.request(method, API + path, json=body, headers=auth(reader))
        problem = assert_problem(response, 403, "forbidden")
        assert "reader" in problem["detail"]
    assert client.get(f"{API}/models/m").json()["latest_version"] == 1


def test_auditor_reads_audit_but_cannot_write(client: TestClient, make_token: MakeToken) -> None:
    auditor = make_token("auditor")
    create_model(client, "m")
    assert client.get(f"{API}/audit", headers=auth(auditor)).status_code == 200
    assert client.get(f"{API}/audit/verify", headers=auth(auditor)).status_code == 200
    assert client.get(f"{API}/audit/export", headers=auth(auditor)).status_code == 200
    assert client.get(f"{API}/models/m", headers=auth(auditor)).status_code == 200
    assert_problem(
        client.post(f"{API}/models", json={"name": "x"}, headers=auth(auditor)), 403, "forbidden"
    )
    assert_problem(
        client.post(f"{API}/models/m/versions", json={}, headers=auth(auditor)), 403, "forbidden"
    )
    assert_problem(client.get(f"{API}/tokens", headers=auth(auditor)), 403, "forbidden")


@pytest.mark.parametrize("role", ["reader", "submitter", "reviewer", "operator"])
def test_only_auditors_and_admins_read_the_audit_log(
    client: TestClient, make_token: MakeToken, role: str
) -> None:
    token = make_token(role)
    for path in ("/audit", "/audit/verify", "/audit/export"):
        assert_problem(client.get(API + path, headers=auth(token)), 403, "forbidden")


@pytest.mark.parametrize("role", ["submitter", "reviewer", "operator", "admin"])
def test_submitter_and_above_create(client: TestClient, make_token: MakeToken, role: str) -> None:
    token = make_token(role)
    response = client.post(f"{API}/models", json={"name": f"by-{role}"}, headers=auth(token))
    assert response.status_code == 201, response.text
    response = client.post(
        f"{API}/models/by-{role}/versions", json=version_payload(), headers=auth(token)
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("role", ["submitter", "reviewer", "operator", "auditor", "reader"])
def test_only_admins_manage_tokens(client: TestClient, make_token: MakeToken, role: str) -> None:
    token = make_token(role)
    assert_problem(client.get(f"{API}/tokens", headers=auth(token)), 403, "forbidden")
    assert_problem(
        client.post(f"{API}/tokens", json={"name": "n", "role": "admin"}, headers=auth(token)),
        403,
        "forbidden",
    )
    some_id = client.get(f"{API}/tokens").json()["items"][0]["id"]
    assert_problem(client.delete(f"{API}/tokens/{some_id}", headers=auth(token)), 403, "forbidden")


def test_model_scoped_token(client: TestClient, make_token: MakeToken) -> None:
    create_model(client, "alpha")
    create_model(client, "beta")
    create_version(client, "beta")
    scoped = make_token("submitter", model_scope="alpha")

    listed = client.get(f"{API}/models", headers=auth(scoped))
    assert listed.status_code == 200
    assert [m["name"] for m in listed.json()["items"]] == ["alpha"]
    assert client.get(f"{API}/models/alpha", headers=auth(scoped)).status_code == 200
    response = client.post(
        f"{API}/models/alpha/versions", json=version_payload(), headers=auth(scoped)
    )
    assert response.status_code == 201, response.text

    calls: list[tuple[str, str, Any]] = [
        ("GET", "/models/beta", None),
        ("PATCH", "/models/beta", {"owner": "x"}),
        ("GET", "/models/beta/versions", None),
        ("GET", "/models/beta/versions/1", None),
        ("POST", "/models/beta/versions", version_payload()),
        ("POST", "/models/beta/versions/1/metrics", {"metrics": []}),
        ("GET", "/models/beta/stages/candidate", None),
        ("GET", "/models/beta/versions/1/artifact", None),
        ("PUT", "/models/beta/versions/1/artifact", None),
        ("POST", "/models", {"name": "gamma"}),
        ("GET", "/models/nonexistent", None),
    ]
    for method, path, body in calls:
        kwargs: dict[str, object] = {"headers": auth(scoped)}
        if method == "PUT":
            kwargs["content"] = b"bytes"
        elif body is not None:
            kwargs["json"] = body
        response = client.request(method, API + path, **kwargs)  # type: ignore[arg-type]
        problem = assert_problem(response, 403, "forbidden")
        assert "alpha" in problem["detail"], (method, path)
    assert client.get(f"{API}/models/beta").json()["latest_version"] == 1

    scoped_admin = make_token("admin", model_scope="alpha")
    assert_problem(client.get(f"{API}/audit", headers=auth(scoped_admin)), 403, "forbidden")
    assert_problem(client.get(f"{API}/tokens", headers=auth(scoped_admin)), 403, "forbidden")
    assert_problem(
        client.post(
            f"{API}/tokens", json={"name": "n", "role": "admin"}, headers=auth(scoped_admin)
        ),
        403,
        "forbidden",
    )


def test_scoped_token_may_register_its_own_model(client: TestClient, make_token: MakeToken) -> None:
    scoped = make_token("submitter", model_scope="future")
    response = client.post(f"{API}/models", json={"name": "future"}, headers=auth(scoped))
    assert response.status_code == 201, response.text


def test_secret_is_only_in_the_create_response(client: TestClient, database_url: str) -> None:
    response = client.post(
        f"{API}/tokens", json={"name": "deploy-bot", "role": "operator", "model_scope": "m"}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    secret = created["token"]
    assert secret.startswith("mgt_")
    assert len(secret) >= 40
    assert created["role"] == "operator"
    assert created["model_scope"] == "m"
    assert created["name"] == "deploy-bot"

    listed = client.get(f"{API}/tokens")
    assert listed.status_code == 200
    assert secret not in listed.text
    for item in listed.json()["items"]:
        assert "token" not in item
        assert "secret_hash" not in item
    assert {t["name"] for t in listed.json()["items"]} == {"bootstrap-admin", "deploy-bot"}
    assert secret not in client.delete(f"{API}/tokens/{created['id']}").text

    rows = {row.id: row for row in token_rows(database_url)}
    row = rows[created["id"]]
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    for column in ApiToken.__table__.columns:
        assert secret not in str(getattr(row, column.key)), column.key
    bootstrap = next(r for r in rows.values() if r.name == "bootstrap-admin")
    assert bootstrap.secret_hash == hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()

    export = client.get(f"{API}/audit/export")
    assert secret not in export.text
    assert ADMIN_TOKEN not in export.text


def test_token_create_and_revoke_are_audited(client: TestClient) -> None:
    response = client.post(f"{API}/tokens", json={"name": "ci", "role": "submitter"})
    created = response.json()
    revoke = client.delete(f"{API}/tokens/{created['id']}")
    events = audit_events(client, action="token.created")
    mine = [e for e in events if e["details"]["token_id"] == created["id"]]
    assert len(mine) == 1
    assert mine[0]["actor"] == "bootstrap-admin"
    assert mine[0]["actor_role"] == "admin"
    assert mine[0]["details"]["role"] == "submitter"
    assert mine[0]["request_id"] == response.headers["x-request-id"]
    assert mine[0]["stream"] == "global"
    revoked = audit_events(client, action="token.revoked")
    assert len(revoked) == 1
    assert revoked[0]["details"]["token_id"] == created["id"]
    assert revoked[0]["request_id"] == revoke.headers["x-request-id"]
    # Revoking an already revoked token writes nothing more.
    client.delete(f"{API}/tokens/{created['id']}")
    assert len(audit_events(client, action="token.revoked")) == 1


def _start(settings: Settings, token: str | None) -> TestClient:
    secret = SecretStr(token) if token is not None else None
    app = create_app(settings.model_copy(update={"bootstrap_admin_token": secret}))
    return TestClient(app, base_url="http://modelgate.test")


def test_bootstrap_admin_only_when_none_exists(settings: Settings, database_url: str) -> None:
    first, second = "mgt_first-bootstrap-secret-0001", "mgt_second-bootstrap-secret-0002"
    with _start(settings, first) as c:
        assert c.get(f"{API}/tokens", headers=auth(first)).status_code == 200
    # An admin exists now: another bootstrap value creates nothing.
    with _start(settings, second) as c:
        assert_problem(c.get(f"{API}/tokens", headers=auth(second)), 401, "unauthenticated")
        assert c.get(f"{API}/tokens", headers=auth(first)).status_code == 200
    # Restarting with the same value does not duplicate it.
    with _start(settings, first) as c:
        assert c.get(f"{API}/tokens", headers=auth(first)).status_code == 200
    rows = token_rows(database_url)
    assert [r.name for r in rows] == ["bootstrap-admin"]

    # The API refuses to revoke the last admin token (the last-admin rule)...
    token_id = rows[0].id
    with _start(settings, first) as c:
        assert_problem(c.delete(f"{API}/tokens/{token_id}", headers=auth(first)), 409, "last-admin")
    # ...but once no active admin is left (revoked behind the server's back here), the
    # bootstrap value creates one again...
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(update(ApiToken).where(ApiToken.id == token_id).values(revoked_at=utcnow()))
    engine.dispose()
    with _start(settings, second) as c:
        assert c.get(f"{API}/tokens", headers=auth(second)).status_code == 200
        # ...but a revoked secret is never brought back.
        assert_problem(c.get(f"{API}/tokens", headers=auth(first)), 401, "unauthenticated")
    with _start(settings, None) as c:
        assert c.get(f"{API}/tokens", headers=auth(second)).status_code == 200
    assert [r.role for r in token_rows(database_url)] == ["admin", "admin"]


def test_bootstrap_admin_not_created_when_other_admin_exists(
    settings: Settings, database_url: str
) -> None:
    with _start(settings, "mgt_original-admin-secret-000") as c:
        other = c.post(
            f"{API}/tokens",
            json={"name": "human-admin", "role": "admin"},
            headers=auth("mgt_original-admin-secret-000"),
        ).json()
        boot_id = next(
            t["id"]
            for t in c.get(f"{API}/tokens", headers=auth(other["token"])).json()["items"]
            if t["name"] == "bootstrap-admin"
        )
        c.delete(f"{API}/tokens/{boot_id}", headers=auth(other["token"]))
    with _start(settings, "mgt_new-bootstrap-secret-00000") as c:
        assert_problem(
            c.get(f"{API}/tokens", headers=auth("mgt_new-bootstrap-secret-00000")),
            401,
            "unauthenticated",
        )
    assert len(token_rows(database_url)) == 2


@pytest.mark.postgres_only
def test_concurrent_bootstrap_creates_one_admin(settings: Settings, database_url: str) -> None:
    """Several processes starting together on an empty database must all come up."""
    secret = "mgt_raced-bootstrap-secret-0000"
    barrier = threading.Barrier(4)
    engine = create_engine(database_url)
    sessions = sessionmaker(engine)

    def start(_: int) -> bool:
        with sessions() as session, session.begin():
            barrier.wait()
            return ensure_bootstrap_admin(session, secret=secret)

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            created = list(pool.map(start, range(4)))
    finally:
        engine.dispose()
    assert sorted(created) == [False, False, False, True]
    assert [r.name for r in token_rows(database_url)] == ["bootstrap-admin"]
