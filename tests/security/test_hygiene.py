"""Security hygiene: store keys come only from digests, CORS is off unless configured,
webhooks never reach link-local or metadata addresses unless allowed."""

from __future__ import annotations

import hashlib
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

from app.events.dispatcher import Claim, Dispatcher
from app.main import create_app
from app.registry.models import ModelVersion
from app.settings import Settings, get_settings
from app.storage.base import digest_of_key, key_for
from app.storage.factory import open_store
from tests.support.api import ADMIN_TOKEN, API, assert_problem, auth

ADMIN = auth(ADMIN_TOKEN)
KEY = re.compile(r"^sha256/[0-9a-f]{64}$")
# Names that would make a path or an object name, if they ever reached one.
NAMES = ["a", "A.b_c-1", "x..y", "etc.passwd", "9", "dot.dot.dot", "z" * 128]


# Artifact keys -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def uploaded(module_app_client: TestClient) -> dict[str, str]:
    """An artifact per model (names chosen to look like paths), sent with hostile headers
    and query strings; returns digest by model name."""
    http = module_app_client
    digests: dict[str, str] = {}
    for name in NAMES:
        assert http.post(f"{API}/models", json={"name": name}, headers=ADMIN).status_code == 201
        assert http.post(f"{API}/models/{name}/versions", json={}, headers=ADMIN).status_code == 201
        data = f"bytes of {name}".encode()
        digest = hashlib.sha256(data).hexdigest()
        hostile_headers = {
            **ADMIN,
            "Content-Type": "../../../../tmp/evil",
            "Content-Disposition": 'attachment; filename="../../evil"',
            "X-Artifact-SHA256": digest.upper(),
            "X-Artifact-Key": "../../evil",
        }
        # Query parameters the route does not take are refused, naming them (nothing is
        # stored); the same upload without them goes through with the hostile headers.
        refused = http.put(
            f"{API}/models/{name}/versions/1/artifact",
            params={"key": "../../../etc/passwd", "path": f"/{name}", "filename": "../x"},
            content=data,
            headers=hostile_headers,
        )
        assert refused.status_code == 400, refused.text
        assert "unknown query parameter(s): filename, key, path" in refused.json()["detail"]
        response = http.put(
            f"{API}/models/{name}/versions/1/artifact", content=data, headers=hostile_headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["artifact"]["media_type"] == "application/octet-stream"
        digests[name] = digest
    return digests


def stored_keys(settings: Settings) -> list[str]:
    """Every object in the module's store, relative to its prefix or root."""
    url = settings.artifact_store
    if url.startswith("s3://"):
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        s3 = boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name="us-east-1")
        keys = [
            obj["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for obj in page.get("Contents", [])
        ]
        base = prefix.strip("/") + "/" if prefix.strip("/") else ""
        assert all(k.startswith(base) for k in keys), keys
        return [k.removeprefix(base) for k in keys]
    root = Path(url)
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]


def test_store_keys_are_digests_only(uploaded: dict[str, str], module_settings: Settings) -> None:
    keys = stored_keys(module_settings)
    if module_settings.artifact_store.startswith("s3://"):
        published = {k for k in keys if KEY.match(k)}
        assert set(keys) - published == set(), "objects other than sha256/<digest> remain"
    else:
        # The directory store fans out by the first two hex digits; uploads in progress
        # sit in .tmp under a random name (none are left once the uploads finished).
        fanned = re.compile(r"^sha256/([0-9a-f]{2})/(\1[0-9a-f]{62})$")
        assert all(fanned.match(k) for k in keys), keys
        published = {"sha256/" + k.rsplit("/", 1)[1] for k in keys}
    assert published >= {f"sha256/{d}" for d in uploaded.values()}
    for key in keys:
        for name in NAMES:
            assert name not in key.split("/"), (name, key)
        assert ".." not in key
        assert "evil" not in key


def test_every_recorded_key_is_the_digest_of_its_bytes(
    uploaded: dict[str, str], module_settings: Settings
) -> None:
    engine = create_engine(module_settings.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(ModelVersion.artifact_key, ModelVersion.artifact_sha256).where(
                    ModelVersion.artifact_key.is_not(None)
                )
            ).all()
    finally:
        engine.dispose()
    assert len(rows) >= len(uploaded)
    for key, digest in rows:
        assert key is not None
        assert KEY.match(key), key
        assert key == f"sha256/{digest}"
    store = open_store(
        module_settings.artifact_store,
        s3_endpoint_url=module_settings.s3_endpoint_url,
        s3_region=module_settings.s3_region,
    )
    for key, digest in rows:
        assert hashlib.sha256(b"".join(store.open(str(key)))).hexdigest() == digest


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "sha256/../../etc/passwd",
        "sha256/" + "A" * 64,
        "sha256/" + "a" * 63,
        "sha256/" + "a" * 64 + "/x",
        "uploads/" + "a" * 64,
        "sha256\\" + "a" * 64,
        "",
    ],
)
def test_stores_refuse_keys_that_are_not_digests(module_settings: Settings, key: str) -> None:
    store = open_store(
        module_settings.artifact_store,
        s3_endpoint_url=module_settings.s3_endpoint_url,
        s3_region=module_settings.s3_region,
    )
    with pytest.raises(ValueError, match=r"artifact key|sha256"):
        digest_of_key(key)
    for call in (store.exists, store.size, lambda k: next(iter(store.open(k)))):
        with pytest.raises(ValueError, match=r"artifact key|sha256"):
            call(key)
    with pytest.raises(ValueError, match="sha256"):
        key_for(key)


# CORS --------------------------------------------------------------------------------------

EVIL = "https://evil.example"
UI = "https://registry-ui.example"


def cors_requests(http: TestClient, origin: str) -> list[Any]:
    return [
        http.get(f"{API}/models", headers={**ADMIN, "Origin": origin}),
        http.get(f"{API}/healthz", headers={"Origin": origin}),
        http.options(
            f"{API}/models",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        ),
    ]


def test_cors_is_off_by_default(module_app_client: TestClient) -> None:
    assert Settings.model_construct().cors_allow_origins == []
    for origin in (EVIL, UI, "null"):
        for response in cors_requests(module_app_client, origin):
            assert response.status_code < 500
            for header in response.headers:
                assert not header.lower().startswith("access-control-"), (header, response)


@pytest.fixture(scope="module")
def cors_client(module_settings: Settings) -> Iterator[TestClient]:
    configured = module_settings.model_copy(update={"cors_allow_origins": [UI]})
    with TestClient(create_app(configured), base_url="http://modelgate.test") as client:
        yield client


def test_cors_allows_only_the_configured_origins(cors_client: TestClient) -> None:
    get, _, preflight = cors_requests(cors_client, UI)
    assert get.headers["access-control-allow-origin"] == UI
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == UI
    assert "access-control-allow-credentials" not in preflight.headers
    for response in cors_requests(cors_client, EVIL):
        assert "access-control-allow-origin" not in response.headers, response.headers


def test_cors_origins_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELGATE_CORS_ALLOW_ORIGINS", f'["{UI}"]')
    assert get_settings().cors_allow_origins == [UI]


# Webhook targets ---------------------------------------------------------------------------

SECRET = "0123456789abcdef"
REFUSED_URLS = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://169.254.170.2/v2/credentials",
    "http://169.254.1.1:8080/hook",
    "http://[fe80::1]/hook",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://100.100.100.200/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata/computeMetadata/v1/",
    "http://2852039166/",  # 169.254.169.254 as one decimal number
    "http://0xA9FEA9FE/",  # and in hex
    "http://0.0.0.0/",
    "http://[::]/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "http://user:pass@127.0.0.1/hook",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_webhooks_to_link_local_or_metadata_targets_are_refused(
    module_app_client: TestClient, url: str
) -> None:
    response = module_app_client.post(
        f"{API}/webhooks", json={"url": url, "secret": SECRET}, headers=ADMIN
    )
    problem = assert_problem(response, 422)
    assert "url" in str(problem.get("errors")), problem


@pytest.fixture
def rebinding(monkeypatch: pytest.MonkeyPatch) -> None:
    """``metadata-alias.test`` resolves to the metadata address (as an attacker's DNS
    name would); every other name resolves as usual."""
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "metadata-alias.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port or 80))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


@pytest.mark.usefixtures("rebinding")
def test_a_name_resolving_to_a_metadata_address_is_refused(module_app_client: TestClient) -> None:
    response = module_app_client.post(
        f"{API}/webhooks",
        json={"url": "https://metadata-alias.test/hook", "secret": SECRET},
        headers=ADMIN,
    )
    # What a name resolves to is the world's state, not the request's shape (decision 0025).
    problem = assert_problem(response, 409, "state-mismatch")
    assert "169.254.169.254" in problem["detail"]


@pytest.mark.usefixtures("rebinding")
def test_delivery_checks_the_target_again(
    module_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name that resolved elsewhere when the webhook was created is checked again when
    a delivery is sent, and nothing is sent to a metadata address."""
    dispatcher = Dispatcher(sessions=sessionmaker(), settings=module_settings)
    sent: list[str] = []
    monkeypatch.setattr(dispatcher._client, "post", lambda url, **kwargs: sent.append(url))
    claim = Claim(
        delivery_id=1,
        webhook_id=1,
        attempt=1,
        url="http://metadata-alias.test/hook",
        secret=SECRET,
        event_id="e",
        event_type="version.created",
        body=b"{}",
    )
    try:
        outcome = dispatcher.send(claim)
    finally:
        dispatcher.close()
    assert sent == []
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error.startswith("refused"), outcome.error


@pytest.fixture(scope="module")
def permissive_client(module_settings: Settings) -> Iterator[TestClient]:
    allowed = module_settings.model_copy(update={"webhook_allow_link_local": True})
    with TestClient(create_app(allowed), base_url="http://modelgate.test") as client:
        yield client


def test_link_local_targets_only_when_configured(permissive_client: TestClient) -> None:
    response = permissive_client.post(
        f"{API}/webhooks",
        json={"url": "http://169.254.169.254/hook", "secret": SECRET},
        headers=ADMIN,
    )
    assert response.status_code == 201, response.text
    # Never schemes other than http(s), whatever the configuration.
    response = permissive_client.post(
        f"{API}/webhooks", json={"url": "file:///etc/passwd", "secret": SECRET}, headers=ADMIN
    )
    assert_problem(response, 422)
