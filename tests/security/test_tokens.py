"""API token secrets: compared in constant time, never logged, shown once, kept as sha256."""

from __future__ import annotations

import ast
import hashlib
import hmac
import inspect
import logging
import textwrap
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, create_engine, select

from app.auth import service as auth_service
from app.main import create_app
from app.settings import Settings
from tests.support.api import ADMIN_TOKEN, API, auth
from tests.support.flows import server_settings
from tests.support.servers import start_server


class Collect(logging.Handler):
    """Keeps every record, formatted and raw (extras included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))
        self.texts.append(repr(record.__dict__))


@pytest.fixture
def collected() -> Iterator[Collect]:
    handler = Collect()
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in ("modelgate", "uvicorn"))]
    levels = [lg.level for lg in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def token_lifecycle(http: Any) -> list[str]:
    """Create a token, use it, mistype it, list tokens, revoke it, use it revoked.
    Returns the secrets involved (the new token's and the mistyped one)."""
    created = http.post(f"{API}/tokens", json={"name": "ci-logs", "role": "submitter"})
    assert created.status_code == 201, created.text
    secret: str = created.json()["token"]
    assert http.get(f"{API}/models", headers=auth(secret)).status_code == 200
    assert http.post(
        f"{API}/models", json={"name": "logged"}, headers=auth(secret)
    ).status_code in (
        201,
        409,
    )
    mistyped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert http.get(f"{API}/models", headers=auth(mistyped)).status_code == 401
    assert http.get(f"{API}/tokens").status_code == 200
    assert http.delete(f"{API}/tokens/{created.json()['id']}").status_code == 200
    assert http.get(f"{API}/models", headers=auth(secret)).status_code == 401
    return [secret, mistyped]


def test_authentication_compares_with_compare_digest() -> None:
    """The stored hash and the presented one meet only in hmac.compare_digest."""
    source = textwrap.dedent(inspect.getsource(auth_service.authenticate))
    tree = ast.parse(source)
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "compare_digest"
    ]
    assert calls, "authenticate() no longer calls hmac.compare_digest"
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(
            isinstance(op, ast.Eq | ast.NotEq) for op in node.ops
        ):
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            attrs = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
            compared = ({"digest", "presented"} & names) | ({"secret_hash"} & attrs)
            assert not compared, f"a secret compared with ==: {ast.unparse(node)}"


def test_compare_digest_runs_on_every_authentication(
    module_app_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return bool(real(a, b))

    # app.auth.service calls hmac.compare_digest through the module: the spy sees it.
    monkeypatch.setattr(hmac, "compare_digest", spy)
    response = module_app_client.get(f"{API}/models", headers=auth(ADMIN_TOKEN))
    assert response.status_code == 200
    assert calls == [(hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest(),) * 2]


def test_secrets_never_reach_the_logs_in_process(
    module_settings: Settings, collected: Collect, capfd: pytest.CaptureFixture[str]
) -> None:
    for fmt in ("json", "text"):
        noisy = module_settings.model_copy(update={"log_level": "DEBUG", "log_format": fmt})
        with TestClient(create_app(noisy), base_url="http://modelgate.test") as http:
            http.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
            # The app configures its loggers when it is built: collect from them too.
            logging.getLogger("modelgate").addHandler(collected)
            secrets = [ADMIN_TOKEN, *token_lifecycle(http)]
            logging.getLogger("modelgate").removeHandler(collected)
        out, err = capfd.readouterr()
        logged = "\n".join([*collected.texts, out, err])
        # The access log of the requests made with the secret is there: the test looks
        # where a leak would be.
        assert "GET /api/v1/models 200" in logged, "no access log: the test would prove nothing"
        assert "GET /api/v1/models 401" in logged
        for secret in secrets:
            assert secret not in logged, f"a token secret was logged ({fmt} format)"
            assert secret.removeprefix("mgt_") not in logged


def test_secrets_never_reach_the_logs_of_a_live_server(settings: Settings) -> None:
    """uvicorn's own access log and error log included, at debug level."""
    env = {**server_settings(settings), "LOG_LEVEL": "DEBUG", "LOG_FORMAT": "json"}
    with start_server(env, log_level="debug", access_log=True) as server:
        server.wait_ready()
        with httpx.Client(base_url=server.base_url, headers=auth(ADMIN_TOKEN)) as http:
            secrets = [ADMIN_TOKEN, *token_lifecycle(http)]
        server.process.terminate()
        server.process.wait(timeout=15)
        logged = server.log()
    assert '"GET /api/v1/models HTTP/1.1" 200' in logged, logged[-2000:]  # the access log
    assert "modelgate.access" in logged, logged[-2000:]
    for secret in secrets:
        assert secret not in logged
        assert secret.removeprefix("mgt_") not in logged


def test_the_secret_is_shown_once_and_stored_as_sha256(
    module_app_client: TestClient, module_settings: Settings
) -> None:
    http = module_app_client
    admin = auth(ADMIN_TOKEN)
    created = http.post(
        f"{API}/tokens", json={"name": "shown-once", "role": "reviewer"}, headers=admin
    )
    assert created.status_code == 201
    secret = created.json()["token"]
    token_id = created.json()["id"]
    assert secret.startswith("mgt_")
    assert len(secret) >= 40

    # Never again through the API: not in the list, not when revoked, not in the audit log.
    answers = [http.get(f"{API}/tokens", params={"limit": 200}, headers=admin)]
    answers.append(http.delete(f"{API}/tokens/{token_id}", headers=admin))
    answers.append(http.get(f"{API}/tokens", params={"limit": 200}, headers=admin))
    answers.append(http.get(f"{API}/audit/export", headers=admin))
    answers.append(http.get(f"{API}/audit", params={"limit": 1000}, headers=admin))
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert secret not in answer.text
    for page in (answers[0], answers[2]):
        for item in page.json()["items"]:
            assert "token" not in item, item
            assert "secret_hash" not in item, item

    # The database keeps only the sha256 of the secret: no column of any table holds it.
    engine = create_engine(module_settings.database_url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as conn:
            dump = "\n".join(
                repr(tuple(row)) for table in metadata.sorted_tables for row in conn.execute(
                    select(table)
                )
            )  # fmt: skip
            hashes = conn.execute(
                select(metadata.tables["api_tokens"].c.secret_hash).where(
                    metadata.tables["api_tokens"].c.id == token_id
                )
            ).scalar_one()
    finally:
        engine.dispose()
    assert secret not in dump
    assert secret.removeprefix("mgt_") not in dump
    assert hashes == hashlib.sha256(secret.encode()).hexdigest()
