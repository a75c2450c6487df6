"""Webhook secrets are sealed at rest and still sign every delivery; a delivery connects
to the address its check resolved (one resolution), never to one a second lookup gives
(DNS rebinding), with the original name in ``Host`` and in TLS."""

from __future__ import annotations

import ipaddress
import ssl
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import create_engine, text

from app.events.dispatcher import Dispatcher
from app.events.secretbox import SecretBox
from app.events.urls import IPAddress
from app.settings import Settings
from tests.events._helpers import SECRET, assert_signed, create_webhook, deliveries
from tests.support.api import API, SECRET_KEY, assert_problem, create_model
from tests.support.receiver import Receiver

PUBLIC = ipaddress.ip_address("93.184.215.14")
LOOPBACK = ipaddress.ip_address("127.0.0.1")
OTHER_KEY = SecretStr("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=")


class ScriptedResolver:
    """Answers each lookup with the next list of addresses (the last one repeats), and
    counts the lookups."""

    def __init__(self, *answers: list[IPAddress]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append((host, port))
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


def _dispatcher(
    client: TestClient, settings: Settings, overrides: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Dispatcher:  # fmt: skip
    state = client.app.state  # type: ignore[attr-defined]
    return Dispatcher(sessions=state.sessions, read_bind=state.read_bind,
                      settings=settings.model_copy(update=overrides or {}), **kwargs)  # fmt: skip


def _row(settings: Settings, hook_id: int) -> dict[str, Any]:
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT * FROM webhooks WHERE id = :id"), {"id": hook_id})
            return dict(found.mappings().one())
    finally:
        engine.dispose()


def _set_url(settings: Settings, hook_id: int, url: str) -> None:
    """Point a webhook at a name the system resolver does not know (the API checks URLs
    with it); the tests' resolvers answer for that name."""
    engine = create_engine(settings.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE webhooks SET url = :u WHERE id = :id"),
                         {"u": url, "id": hook_id})  # fmt: skip
    finally:
        engine.dispose()


def _queue_one(client: TestClient, receiver_url: str, model: str = "fraud") -> dict[str, Any]:
    hook = create_webhook(client, receiver_url, event_types=["model.frozen"])
    create_model(client, model)
    frozen = client.post(f"{API}/models/{model}/freeze", json={"reason": "incident"})
    assert frozen.status_code == 200, frozen.text
    return hook


def _send_all(dispatcher: Dispatcher) -> list[Any]:
    outcomes = []
    for claim in dispatcher.claim():
        outcome = dispatcher.send(claim)
        dispatcher.record(claim, outcome)
        outcomes.append(outcome)
    return outcomes


# Secrets at rest --------------------------------------------------------------------------


def test_secret_is_sealed_at_rest_never_returned_and_still_signs(
    make_client: Callable[..., TestClient], receiver: Receiver, settings: Settings
) -> None:
    client = make_client(webhook_dispatcher_enabled=False)
    hook = _queue_one(client, receiver.url)
    row = _row(settings, hook["id"])
    assert "secret" not in row
    sealed = str(row["secret_sealed"])
    # No plaintext in any column, in any obvious encoding.
    everything = repr(row)
    for shown in (SECRET, SECRET.encode().hex(), SECRET[4:-4]):
        assert shown not in everything
    assert sealed.startswith("v1.")
    assert SecretBox.from_texts(SECRET_KEY).open(sealed) == SECRET
    # Two webhooks with one secret are sealed differently (a fresh nonce each time).
    twin = create_webhook(client, receiver.url, event_types=["model.frozen"])
    assert _row(settings, twin["id"])["secret_sealed"] != sealed
    # The API never shows it.
    for path in (f"/webhooks/{hook['id']}", "/webhooks"):
        shown = client.get(f"{API}{path}")
        assert shown.status_code == 200, shown.text
        assert SECRET not in shown.text
        assert "secret" not in shown.text
    assert SECRET not in client.get(f"{API}/audit").text

    # The twin came after the event: one delivery, signed with the opened secret.
    outcomes = _send_all(_dispatcher(client, settings))
    assert [o.ok for o in outcomes] == [True], outcomes
    assert len(receiver.requests) == 1
    assert_signed(receiver.requests, SECRET)


def test_without_the_key_nothing_is_created_or_sent(
    make_client: Callable[..., TestClient], receiver: Receiver, settings: Settings
) -> None:
    client = make_client(webhook_dispatcher_enabled=False)
    _queue_one(client, receiver.url)
    keyless = make_client(webhook_dispatcher_enabled=False, secret_key=None)
    refused = keyless.post(f"{API}/webhooks", json={"url": receiver.url, "secret": SECRET})
    assert_problem(refused, 503, "secret-key-missing")
    assert "MODELGATE_SECRET_KEY" in refused.json()["detail"]

    outcomes = _send_all(_dispatcher(client, settings, {"secret_key": None}))
    assert [o.ok for o in outcomes] == [False], outcomes
    assert "secret unavailable" in str(outcomes[0].error)
    assert receiver.requests == []


def test_rotation_old_key_opens_until_rekeyed(
    make_client: Callable[..., TestClient], receiver: Receiver, settings: Settings
) -> None:
    client = make_client(webhook_dispatcher_enabled=False)
    hook = _queue_one(client, receiver.url)
    # A server with only the new key cannot open the old secret, and says which key it needs.
    wrong = _send_all(_dispatcher(client, settings, {"secret_key": OTHER_KEY}))
    assert [o.ok for o in wrong] == [False], wrong
    assert "sealed under key" in str(wrong[0].error)
    assert receiver.requests == []
    rotated = {"secret_key": OTHER_KEY, "secret_keys_previous": [SecretStr(SECRET_KEY)]}
    from app.cli.main import rekey_secrets

    assert rekey_secrets(settings.model_copy(update=rotated)) == 1
    sealed = str(_row(settings, hook["id"])["secret_sealed"])
    assert SecretBox.from_texts(OTHER_KEY.get_secret_value()).open(sealed) == SECRET
    assert rekey_secrets(settings.model_copy(update=rotated)) == 0  # nothing left to do
    # The old key can go: the new one alone opens it, and deliveries sign as before.
    client.post(f"{API}/models/fraud/unfreeze", json={"reason": "over"})
    client.post(f"{API}/models/fraud/freeze", json={"reason": "again"})
    ok = _send_all(_dispatcher(client, settings, {"secret_key": OTHER_KEY}))
    assert [o.ok for o in ok] == [True], ok
    assert_signed(receiver.requests, SECRET)


# One resolution: the address checked is the address connected to ---------------------------


def test_rebinding_answer_never_reaches_loopback(
    make_client: Callable[..., TestClient], receiver: Receiver, settings: Settings
) -> None:
    """The name answers a public address to the check and loopback to any later lookup
    (the system resolver, too, answers loopback for ``localhost``). Loopback is refused
    (private networks off), and the listener on loopback sees no request: the connection
    goes to the public address that was checked, not to a second lookup's answer."""
    client = make_client(webhook_dispatcher_enabled=False)
    hook = _queue_one(client, receiver.url)
    _set_url(settings, hook["id"], f"http://localhost:{receiver.port}/hook")
    resolver = ScriptedResolver([PUBLIC], [LOOPBACK])
    dispatcher = _dispatcher(
        client, settings, resolver=resolver,
        overrides={"webhook_allow_private_networks": False, "webhook_timeout_seconds": 1.0},
    )  # fmt: skip
    outcomes = _send_all(dispatcher)
    assert [o.ok for o in outcomes] == [False], outcomes
    # It passed the check, then could not connect (to the public address, not loopback).
    assert not str(outcomes[0].error).startswith("refused:"), outcomes[0].error
    assert resolver.calls == [("localhost", receiver.port)]
    assert receiver.requests == []

    # The next attempt resolves again (once): now loopback, which the check refuses.
    _expire_retry(settings)
    again = _send_all(dispatcher)
    assert [o.ok for o in again] == [False], again
    assert str(again[0].error).startswith("refused:"), again
    assert len(resolver.calls) == 2
    assert receiver.requests == []
    log = deliveries(client, hook["id"])
    assert (log[0]["attempts"], log[0]["status"]) == (2, "failed")


def _expire_retry(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE webhook_deliveries SET next_attempt_at = :t"),
                         {"t": datetime.now(UTC) - timedelta(seconds=1)})  # fmt: skip
    finally:
        engine.dispose()


def test_connects_to_the_checked_address_with_the_name_as_host(
    make_client: Callable[..., TestClient], receiver: Receiver, settings: Settings
) -> None:
    client = make_client(webhook_dispatcher_enabled=False)
    hook = _queue_one(client, receiver.url)
    _set_url(settings, hook["id"], f"http://hooks.example.test:{receiver.port}/hook")
    resolver = ScriptedResolver([LOOPBACK])
    outcomes = _send_all(_dispatcher(client, settings, resolver=resolver))
    assert [o.ok for o in outcomes] == [True], outcomes
    assert resolver.calls == [("hooks.example.test", receiver.port)]
    (request,) = receiver.requests
    assert request.headers["host"] == f"hooks.example.test:{receiver.port}"
    assert_signed(receiver.requests, SECRET)


# TLS: the certificate is checked against the name, sent as SNI ------------------------------


def _certificate(tmp: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A CA and a server certificate for ``name``: (server context, client trust)."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelgate test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = tmp / "server.pem", tmp / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))  # fmt: skip
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    trust = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, trust


class _TlsReceiver:
    def __init__(self, context: ssl.SSLContext) -> None:
        self.server_names: list[str | None] = []
        self.paths: list[str] = []
        outer = self

        def sni(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
            outer.server_names.append(name)

        context.sni_callback = sni

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.paths.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[tuple[_TlsReceiver, ssl.SSLContext]]:
    server, trust = _certificate(tmp_path, "hooks.example.test")
    receiver = _TlsReceiver(server)
    try:
        yield receiver, trust
    finally:
        receiver.stop()


@pytest.mark.parametrize("name", ["hooks.example.test", "impostor.example.test"])
def test_tls_names_and_verifies_the_original_host(
    make_client: Callable[..., TestClient], receiver: Receiver, settings: Settings,
    tls_receiver: tuple[_TlsReceiver, ssl.SSLContext], name: str,
) -> None:  # fmt: skip
    """The certificate is for hooks.example.test, served on 127.0.0.1: a delivery to that
    name succeeds (the name was sent as SNI and checked against the certificate, though
    the connection went to an address); to another name on the same address it fails."""
    tls, trust = tls_receiver
    client = make_client(webhook_dispatcher_enabled=False)
    hook = _queue_one(client, receiver.url)
    _set_url(settings, hook["id"], f"https://{name}:{tls.port}/hook")
    resolver = ScriptedResolver([LOOPBACK])
    outcomes = _send_all(_dispatcher(client, settings, resolver=resolver, verify=trust))
    assert tls.server_names == [name]
    if name == "hooks.example.test":
        assert [o.ok for o in outcomes] == [True], outcomes
        assert tls.paths == ["/hook"]
    else:
        assert not outcomes[0].ok
        assert "certificate" in str(outcomes[0].error).lower(), outcomes[0].error
        assert tls.paths == []
