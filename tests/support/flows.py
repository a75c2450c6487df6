"""Scenario helpers for the promotion and operations tests: a team of tokens, a model with
a primary metric, versions with uploaded artifacts, policies, promotions and approvals.

Every helper takes the client to talk through (the in-process ``TestClient`` or an
``httpx.Client`` pointed at a real server) and, where a role matters, the headers of the
token to act as; without headers the client's own (admin) token is used.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from app.settings import Settings
from tests.support.api import (
    ADMIN_TOKEN,
    API,
    SECRET_KEY,
    all_items,
    audit_events,
    auth,
    sha256_hex,
    version_payload,
)

Headers = dict[str, str]


@dataclass(frozen=True)
class Team:
    """One token per role, as a CI job, reviewers and on-call engineers would hold them."""

    submitter: Headers
    submitter2: Headers
    reviewer: Headers
    reviewer2: Headers
    operator: Headers
    reader: Headers
    names: dict[str, str]
    """Token name (the actor in audit events) by Authorization header."""

    def name(self, headers: Headers) -> str:
        return self.names[headers["Authorization"]]


def make_team(client: httpx.Client) -> Team:
    """Create the team's tokens through ``POST /tokens`` (the client must be an admin)."""
    names: dict[str, str] = {}

    def token(role: str) -> Headers:
        body = {"name": f"{role}-{uuid.uuid4().hex[:8]}", "role": role}
        response = client.post(f"{API}/tokens", json=body)
        assert response.status_code == 201, response.text
        headers = auth(response.json()["token"])
        names[headers["Authorization"]] = body["name"]
        return headers

    return Team(
        names=names,
        submitter=token("submitter"),
        submitter2=token("submitter"),
        reviewer=token("reviewer"),
        reviewer2=token("reviewer"),
        operator=token("operator"),
        reader=token("reader"),
    )


def permissive_policy(
    *,
    rules: list[dict[str, Any]] | None = None,
    approvals: int = 0,
    auto_promote: bool = True,
    require_staging: bool = False,
) -> dict[str, Any]:
    """No staging rules; ``rules`` for production. With the defaults a production request
    applies at once when its rules pass (auto-promote, no approval, no staging first)."""
    return {
        "staging": {"rules": [], "approvals_required": 0, "auto_promote": True},
        "production": {
            "rules": rules or [],
            "approvals_required": approvals,
            "auto_promote": auto_promote,
            "require_staging": require_staging,
        },
    }


def gate(kind: str, name: str, **fields: Any) -> dict[str, Any]:
    """One policy rule, named so that its report row can be found with :func:`rule`."""
    return {"kind": kind, "name": name, **fields}


def put_policy(client: httpx.Client, model: str, document: dict[str, Any]) -> dict[str, Any]:
    response = client.put(f"{API}/models/{model}/policy", json=document)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def upload_artifact(
    client: httpx.Client,
    model: str,
    version: int,
    data: bytes | None = None,
    *,
    headers: Headers | None = None,
) -> str:
    """Upload ``data`` (default: bytes unique to this version) and return its sha256."""
    data = data if data is not None else f"{model}/{version}/{uuid.uuid4()}".encode()
    digest = sha256_hex(data)
    response = client.put(
        f"{API}/models/{model}/versions/{version}/artifact",
        content=data,
        headers={
            **(headers or {}),
            "Content-Type": "application/octet-stream",
            "X-Artifact-SHA256": digest,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["artifact"]["sha256"] == digest
    return digest


def new_version(
    client: httpx.Client,
    model: str,
    *,
    accuracy: float = 0.9,
    payload: dict[str, Any] | None = None,
    artifact: bool = True,
    headers: Headers | None = None,
    **overrides: Any,
) -> int:
    """Create a candidate (``version_payload(accuracy, **overrides)`` unless ``payload`` is
    given) and, unless ``artifact`` is false, upload an artifact of its own."""
    body = payload if payload is not None else version_payload(accuracy, **overrides)
    response = client.post(f"{API}/models/{model}/versions", json=body, headers=headers or {})
    assert response.status_code == 201, response.text
    number: int = response.json()["version"]
    if artifact:
        upload_artifact(client, model, number, headers=headers)
    return number


def request_promotion(
    client: httpx.Client,
    model: str,
    version: int,
    target: str,
    *,
    headers: Headers | None = None,
    comment: str | None = None,
    extra_headers: Headers | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"version": version, "target": target}
    if comment is not None:
        body["comment"] = comment
    return client.post(
        f"{API}/models/{model}/promotions",
        json=body,
        headers={**(headers or {}), **(extra_headers or {})},
    )


def promote(
    client: httpx.Client,
    model: str,
    version: int,
    target: str,
    *,
    headers: Headers | None = None,
    comment: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """Request a promotion that must be accepted (201); ``status`` checks the outcome."""
    response = request_promotion(client, model, version, target, headers=headers, comment=comment)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    if status is not None:
        assert body["status"] == status, body
    return body


def decide(
    client: httpx.Client,
    request_id: int,
    action: str,
    *,
    headers: Headers | None = None,
    comment: str | None = None,
) -> httpx.Response:
    """``approve``, ``reject`` or ``cancel`` a promotion request."""
    body = {"comment": comment} if comment is not None else {}
    return client.post(f"{API}/promotions/{request_id}/{action}", json=body, headers=headers or {})


def approve(
    client: httpx.Client, request_id: int, *, headers: Headers, status: str | None = "applied"
) -> dict[str, Any]:
    response = decide(client, request_id, "approve", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    if status is not None:
        assert body["status"] == status, body
    return body


def to_production(
    client: httpx.Client, team: Team, model: str, version: int, *, comment: str | None = None
) -> dict[str, Any]:
    """Through staging to production under the default policy: the submitter asks, another
    reviewer approves. Returns the applied production request."""
    promote(client, model, version, "staging", headers=team.submitter, status="applied")
    pending = promote(
        client, model, version, "production", headers=team.submitter, comment=comment,
        status="pending_approval",
    )  # fmt: skip
    return approve(client, pending["id"], headers=team.reviewer)


def production_version(client: httpx.Client, model: str) -> int | None:
    """The version ``GET /stages/production`` names (None when there is none)."""
    response = client.get(f"{API}/models/{model}/stages/production")
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert len(items) <= 1, items
    return int(items[0]["version"]) if items else None


def read_version(client: httpx.Client, model: str, version: int) -> dict[str, Any]:
    response = client.get(f"{API}/models/{model}/versions/{version}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def history(client: httpx.Client, model: str) -> list[dict[str, Any]]:
    """The whole production timeline, newest first."""
    return all_items(client, f"/models/{model}/history", limit=200)


def rollback(
    client: httpx.Client,
    model: str,
    *,
    reason: str = "incident: error rate up",
    to_version: int | None = None,
    headers: Headers | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"reason": reason}
    if to_version is not None:
        body["to_version"] = to_version
    return client.post(f"{API}/models/{model}/rollback", json=body, headers=headers or {})


def evaluate(
    client: httpx.Client, model: str, version: int, target: str = "production"
) -> dict[str, Any]:
    response = client.post(
        f"{API}/models/{model}/versions/{version}/evaluate", params={"target": target}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def rule(report: dict[str, Any], name: str) -> dict[str, Any]:
    """The report row of the rule called ``name``."""
    rows = [r for r in report["rules"] if r["rule"] == name]
    assert len(rows) == 1, (name, [r["rule"] for r in report["rules"]])
    return rows[0]


def audit_verify(client: httpx.Client) -> dict[str, Any]:
    response = client.get(f"{API}/audit/verify")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["ok"] is True, body
    return body


def _stored_object(request: pytest.FixtureRequest, sha256: str) -> tuple[Any, str, str] | Path:
    """Where the store keeps an artifact: (s3 client, bucket, key), or the local file."""
    store_url: str = request.getfixturevalue("artifact_store_url")
    if store_url.startswith("s3://"):
        bucket, _, prefix = store_url[len("s3://") :].partition("/")
        key = "/".join(p for p in (prefix.strip("/"), "sha256", sha256) if p)
        return request.getfixturevalue("s3_client"), bucket, key
    found = [p for p in Path(store_url).rglob(sha256) if p.is_file()]
    assert len(found) == 1, found
    return found[0]


def delete_stored_artifact(request: pytest.FixtureRequest, sha256: str) -> None:
    """Remove an artifact's bytes behind the service's back: the object from the bucket
    (S3) or the file from the directory (local store)."""
    where = _stored_object(request, sha256)
    if isinstance(where, Path):
        # Published objects and their directories are read-only; make the directory writable.
        where.parent.chmod(0o755)
        where.unlink()
        return
    s3, bucket, key = where
    s3.head_object(Bucket=bucket, Key=key)  # it is there before we delete it
    s3.delete_object(Bucket=bucket, Key=key)


def corrupt_stored_artifact(request: pytest.FixtureRequest, sha256: str) -> None:
    """Replace an artifact's bytes with others of the same size, behind the service's back."""
    where = _stored_object(request, sha256)
    if isinstance(where, Path):
        size = where.stat().st_size
        where.chmod(0o644)
        where.write_bytes(b"x" * size)
        return
    s3, bucket, key = where
    size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
    s3.put_object(Bucket=bucket, Key=key, Body=b"x" * size)


@pytest.fixture
def team(client: httpx.Client) -> Team:
    """A token per role (import this fixture into a conftest to use it)."""
    return make_team(client)


# Races over real server processes ------------------------------------------------------


def server_settings(settings: Settings) -> dict[str, str]:
    """The test's settings as a server process reads them (tests.support.servers)."""
    env = {
        "DATABASE_URL": settings.database_url,
        "ARTIFACT_STORE": settings.artifact_store,
        "BOOTSTRAP_ADMIN_TOKEN": ADMIN_TOKEN,
        "SECRET_KEY": SECRET_KEY,
        "AUTO_MIGRATE": "false",
        "LOG_LEVEL": "WARNING",
        # Every racing request waits for the model lock holding a connection, and on a
        # loaded two-core CI machine the last of fifty can wait longer than the default
        # 30 s statement timeout (lock waits count): these tests are about correctness.
        "DB_POOL_SIZE": "30",
        "DB_STATEMENT_TIMEOUT_MS": "120000",
    }
    if settings.s3_endpoint_url:
        env["S3_ENDPOINT_URL"] = settings.s3_endpoint_url
        env["S3_REGION"] = settings.s3_region or "us-east-1"
    return env


def race(calls: Sequence[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run every call at once, one thread each, released together by a barrier."""
    barrier = threading.Barrier(len(calls))
    results: list[httpx.Response | BaseException | None] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except BaseException as exc:  # reported below, with the others
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failures = [r for r in results if not isinstance(r, httpx.Response)]
    assert not failures, failures
    return [r for r in results if isinstance(r, httpx.Response)]


def assert_clean(responses: list[httpx.Response], ok: tuple[int, ...]) -> None:
    """Every answer is one of ``ok`` or a 4xx problem, never a 5xx."""
    for response in responses:
        if response.status_code in ok:
            continue
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"], response.text


@dataclass
class ProductionWatcher:
    """Counts the model's production rows in the database, over and over, while a race
    runs (a context manager); ``counts`` holds every observation."""

    database_url: str
    model: str
    counts: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _error: BaseException | None = None

    def __enter__(self) -> ProductionWatcher:
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)
        if self._error is not None and exc is None:
            raise self._error

    def _watch(self) -> None:
        engine = create_engine(self.database_url, pool_size=1)
        query = text(
            "SELECT count(*) FROM model_versions WHERE stage = 'production' AND model_id = "
            "(SELECT id FROM registered_models WHERE name = :name)"
        )
        try:
            with engine.connect() as conn:
                while not self._stop.is_set():
                    self.counts.append(int(conn.execute(query, {"name": self.model}).scalar_one()))
                    conn.rollback()  # a fresh snapshot for the next poll
        except BaseException as exc:
            self._error = exc
        finally:
            engine.dispose()


def production_rows(database_url: str, model: str) -> list[int]:
    """The versions the database itself holds in production for ``model``."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT v.version FROM model_versions v JOIN registered_models m "
                    "ON m.id = v.model_id WHERE m.name = :name AND v.stage = 'production'"
                ),
                {"name": model},
            )
            return [int(r[0]) for r in rows]
    finally:
        engine.dispose()


def check_history_chain(entries: list[dict[str, Any]]) -> None:
    """Newest first: only the newest entry is open, each entry ended when the next one
    started (and by the way it started), and each replaced the version before it."""
    assert entries, "empty history"
    assert entries[0]["ended_at"] is None
    for newer, older in itertools.pairwise(entries):
        assert older["ended_at"] is not None, older
        assert datetime.fromisoformat(older["started_at"]) <= datetime.fromisoformat(
            older["ended_at"]
        ), older
        assert older["ended_at"] == newer["started_at"], (older, newer)
        assert older["ended_by"] == newer["via"], (older, newer)
        assert newer["replaced_version"] == older["version"], (older, newer)
    assert entries[-1]["replaced_version"] is None


def production_changes(client: httpx.Client, model: str) -> list[tuple[int, str]]:
    """The audit log's moves to production, oldest first: (version, via)."""
    return [
        (e["version"], e["details"]["via"])
        for e in audit_events(client, model=model, action="version.stage_changed")
        if e["to_stage"] == "production"
    ]


# Rollouts ---------------------------------------------------------------------------------

HELD_STEP: dict[str, Any] = {"weight": 50, "hold": {"min_observations": 10**9}}
"""A 50 % step no count of observations completes: only the analysis (or a person) ends it."""


def start_body(version: int = 2, **overrides: Any) -> dict[str, Any]:
    """A canary rollout's start body: three steps, looked at every 30 s (``overrides``
    replace fields)."""
    body: dict[str, Any] = {
        "version": version,
        "strategy": "canary",
        "steps": [
            {"weight": 10, "hold": {"min_observations": 100}},
            {"weight": 50, "hold": {"min_observations": 100}},
            {"weight": 100, "hold": {"duration_seconds": 0}},
        ],
        "analysis": {"interval_seconds": 30},
        "reason": "test rollout",
    }
    body.update(overrides)
    return body


def start_rollout(
    client: httpx.Client,
    model: str,
    steps: list[dict[str, Any]] | None = None,
    *,
    interval: float | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Start a rollout of ``start_body`` (with these ``steps`` and seconds between looks)
    and return it; anything but 201 fails the test."""
    if steps is not None:
        overrides["steps"] = steps
    if interval is not None:
        overrides["analysis"] = {"interval_seconds": interval}
    response = client.post(f"{API}/models/{model}/rollouts", json=start_body(**overrides))
    assert response.status_code == 201, response.text
    started: dict[str, Any] = response.json()
    return started
