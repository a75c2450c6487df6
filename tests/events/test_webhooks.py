"""Webhooks end to end: subscriptions, signed deliveries to a real receiver on loopback,
retries while it is down, dead deliveries, redelivery, and the delivery log."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.roles import SYSTEM
from app.events.models import OutboxEvent, WebhookDelivery
from app.events.types import ACTION_TO_EVENT, EVENT_TYPES
from app.settings import Settings
from tests.events._helpers import (
    SECRET,
    all_delivered,
    assert_in_order_per_model,
    assert_signed,
    create_webhook,
    deliveries,
    first_arrivals,
    wait_until,
)
from tests.support.api import API, assert_problem, audit_events, auth, create_model, create_version
from tests.support.receiver import Receiver


def produce(client: TestClient, model: str, versions: int = 2) -> None:
    """A few events of a model: versions created, a dry run of the gates, a freeze."""
    create_model(client, model)
    for _ in range(versions):
        create_version(client, model)
    response = client.post(
        f"{API}/models/{model}/versions/1/evaluate", params={"target": "staging"}
    )
    assert response.status_code == 200, response.text
    for action in ("freeze", "unfreeze"):
        response = client.post(f"{API}/models/{model}/{action}", json={"reason": "drill"})
        assert response.status_code == 200, response.text


def expected_events(client: TestClient, model: str) -> list[str]:
    """The event types the model's audit log implies, in chain order."""
    events = sorted(audit_events(client, model=model), key=lambda e: e["seq"])
    return [ACTION_TO_EVENT[e["action"]] for e in events if e["action"] in ACTION_TO_EVENT]


# Subscriptions -----------------------------------------------------------------------------


def test_create_read_list_delete_and_the_secret_is_never_shown(
    client: TestClient, receiver: Receiver
) -> None:
    created = create_webhook(
        client, receiver.url, event_types=["version.created"], model="m1", description="ci"
    )
    assert "secret" not in created
    assert created["active"] is True
    assert created["event_types"] == ["version.created"]
    assert created["model"] == "m1"
    hook_id = created["id"]

    read = client.get(f"{API}/webhooks/{hook_id}")
    assert read.status_code == 200
    assert read.json() == created
    assert SECRET not in read.text
    listed = client.get(f"{API}/webhooks").json()
    assert [w["id"] for w in listed["items"]] == [hook_id]
    assert SECRET not in json.dumps(listed)

    deleted = client.delete(f"{API}/webhooks/{hook_id}")
    assert deleted.status_code == 200
    assert deleted.json()["active"] is False
    assert deleted.json()["deleted_by"] == "bootstrap-admin"
    again = client.delete(f"{API}/webhooks/{hook_id}")  # idempotent, audited once
    assert again.status_code == 200
    assert client.get(f"{API}/webhooks").json()["items"] == []
    everything = client.get(f"{API}/webhooks", params={"include_deleted": True}).json()
    assert [w["id"] for w in everything["items"]] == [hook_id]

    actions = [e["action"] for e in audit_events(client) if e["action"].startswith("webhook.")]
    assert actions == ["webhook.created", "webhook.deleted"]
    assert all(SECRET not in json.dumps(e) for e in audit_events(client))
    assert_problem(client.get(f"{API}/webhooks/999"), 404, "webhook-not-found")
    assert_problem(client.delete(f"{API}/webhooks/999"), 404, "webhook-not-found")


def test_subscriptions_are_validated_and_admin_only(
    client: TestClient, receiver: Receiver, make_token: Callable[..., str]
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"url": "ftp://127.0.0.1/x"}, "url"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "url"),
        ({"url": "http://[fe80::1]:80/"}, "url"),
        ({"url": receiver.url, "event_types": ["no.such.type"]}, "event_types"),
        ({"url": receiver.url, "event_types": ["*", "version.created"]}, "event_types"),
        ({"url": receiver.url, "event_types": []}, "event_types"),
        ({"url": receiver.url, "secret": "short"}, "secret"),
        ({"url": receiver.url, "unknown": 1}, "unknown"),
    ]
    for override, field in cases:
        body = {"url": receiver.url, "secret": SECRET, **override}
        problem = assert_problem(client.post(f"{API}/webhooks", json=body), 422)
        assert any(field in e["loc"] for e in problem["errors"]), (override, problem)
    operator = make_token("operator")
    response = client.post(
        f"{API}/webhooks", json={"url": receiver.url, "secret": SECRET}, headers=auth(operator)
    )
    assert_problem(response, 403, "forbidden")
    assert_problem(client.get(f"{API}/webhooks", headers=auth(operator)), 403, "forbidden")


def test_link_local_targets_need_the_setting(make_client: Callable[..., TestClient]) -> None:
    permissive = make_client(webhook_allow_link_local=True, webhook_dispatcher_enabled=False)
    response = permissive.post(
        f"{API}/webhooks", json={"url": "http://169.254.169.254/hook", "secret": SECRET}
    )
    assert response.status_code == 201, response.text
    strict = make_client(webhook_allow_private_networks=False, webhook_dispatcher_enabled=False)
    problem = assert_problem(
        strict.post(f"{API}/webhooks", json={"url": "http://127.0.0.1:9/h", "secret": SECRET}), 422
    )
    assert "private" in problem["detail"]


# Delivery ------------------------------------------------------------------------------------


def test_events_arrive_signed_once_each_and_in_order_per_model(
    client: TestClient, receiver: Receiver
) -> None:
    hook = create_webhook(client, receiver.url)
    for model in ("alpha", "beta"):
        produce(client, model, versions=3)
    expected = {m: expected_events(client, m) for m in ("alpha", "beta")}
    total = sum(len(v) for v in expected.values())
    assert total == 2 * (3 + 3)  # 3 versions, a dry run, freeze, unfreeze per model
    wait_until(all_delivered(client, hook["id"], total), what="every delivery delivered")

    requests = receiver.requests
    assert len(requests) == total  # a healthy receiver gets each event exactly once
    assert len({r.event_id for r in requests}) == total
    assert_signed(requests)
    assert_in_order_per_model(requests)
    for model, types in expected.items():
        got = [json.loads(r.body) for r in requests]
        assert [b["type"] for b in got if b["model"] == model] == types
    body = json.loads(requests[0].body)
    assert set(body) == {"id", "type", "occurred_at", "model", "version", "data"}
    assert body["data"]["request_id"]
    assert body["data"]["audit"]["stream"] == f"model:{body['model']}"
    assert requests[0].headers["content-type"] == "application/json"
    assert requests[0].headers["modelgate-delivery-attempt"] == "1"
    assert set(EVENT_TYPES) >= {b["type"] for b in map(json.loads, (r.body for r in requests))}

    log = deliveries(client, hook["id"])
    assert len(log) == total
    assert all(d["attempts"] == 1 and d["last_status_code"] == 200 for d in log)
    assert all(d["delivered_at"] and d["next_attempt_at"] is None for d in log)
    assert [d["id"] for d in log] == sorted((d["id"] for d in log), reverse=True)


def test_type_and_model_filters(client: TestClient, receiver: Receiver) -> None:
    frozen_only = create_webhook(client, receiver.url, event_types=["model.frozen"])
    beta_only = create_webhook(client, receiver.url + "?beta", model="beta")
    produce(client, "alpha", versions=1)
    produce(client, "beta", versions=1)
    wait_until(all_delivered(client, frozen_only["id"], 2), what="frozen events")
    wait_until(all_delivered(client, beta_only["id"], 4), what="beta events")
    frozen = [r for r in receiver.requests if r.path == "/hook"]
    assert sorted(json.loads(r.body)["model"] for r in frozen) == ["alpha", "beta"]
    assert {r.headers["modelgate-event-type"] for r in frozen} == {"model.frozen"}
    beta = [r for r in receiver.requests if r.path == "/hook?beta"]
    assert {json.loads(r.body)["model"] for r in beta} == {"beta"}
    assert len(beta) == 4


def test_receiver_down_then_back_everything_arrives(client: TestClient, receiver: Receiver) -> None:
    hook = create_webhook(client, receiver.url)
    receiver.stop()
    produce(client, "alpha", versions=2)
    produce(client, "beta", versions=2)
    expected = expected_events(client, "alpha") + expected_events(client, "beta")

    def retrying() -> bool:
        log = deliveries(client, hook["id"])
        return any(d["status"] == "failed" and d["attempts"] >= 2 for d in log)

    wait_until(retrying, what="failed attempts being retried")
    log = deliveries(client, hook["id"])
    failed = [d for d in log if d["status"] == "failed"]
    assert failed
    assert all(d["last_error"] and d["next_attempt_at"] for d in failed)
    assert all(d["last_status_code"] is None for d in failed)  # connection refused
    # In order per model: only the oldest event of each model has been attempted.
    for model in ("alpha", "beta"):
        queue = sorted((d for d in log if d["model"] == model), key=lambda d: d["id"])
        assert queue[0]["attempts"] > 0
        assert all(d["attempts"] == 0 and d["status"] == "pending" for d in queue[1:])

    receiver.start()  # same port
    wait_until(all_delivered(client, hook["id"], len(expected)), what="delivery after recovery")
    requests = receiver.requests
    assert {r.event_id for r in requests} == {d["event_id"] for d in deliveries(client, hook["id"])}
    assert len(first_arrivals(requests)) == len(expected)
    assert_signed(requests)
    assert_in_order_per_model(requests)
    attempts = {d["event_id"]: d["attempts"] for d in deliveries(client, hook["id"])}
    assert max(attempts.values()) >= 3


def test_dead_after_the_last_attempt_then_redelivered(
    make_client: Callable[..., TestClient], receiver: Receiver
) -> None:
    client = make_client(webhook_max_attempts=3)
    hook = create_webhook(client, receiver.url, event_types=["version.created"])
    receiver.answer(500)
    create_model(client, "alpha")
    create_version(client, "alpha")
    create_version(client, "alpha")

    def dead() -> bool:
        log = deliveries(client, hook["id"])
        return len(log) == 2 and all(d["status"] == "dead" for d in log)

    wait_until(dead, what="both deliveries dead")
    log = deliveries(client, hook["id"])
    for d in log:
        assert d["attempts"] == 3
        assert d["last_status_code"] == 500
        assert d["last_error"].startswith("HTTP 500")
        assert d["next_attempt_at"] is None
        assert d["delivered_at"] is None
    per_event = Counter(r.event_id for r in receiver.requests)
    assert sorted(per_event.values()) == [3, 3]  # exactly the recorded attempts
    for event_id in per_event:
        attempts = [
            r.headers["modelgate-delivery-attempt"]
            for r in receiver.requests
            if r.event_id == event_id
        ]
        assert attempts == ["1", "2", "3"]
    # A dead delivery does not block the model's later events: the second one was tried.
    older = max(log, key=lambda d: -d["id"])

    receiver.answer(200)
    response = client.post(f"{API}/webhooks/{hook['id']}/deliveries/{older['id']}/redeliver")
    assert response.status_code == 202, response.text
    again = response.json()
    assert again["redelivery_of"] == older["id"]
    assert again["event_id"] == older["event_id"]
    assert again["status"] == "pending"
    assert again["attempts"] == 0
    wait_until(
        lambda: any(
            d["id"] == again["id"] and d["status"] == "delivered"
            for d in deliveries(client, hook["id"])
        ),
        what="the redelivery",
    )
    accepted = [r for r in receiver.accepted() if r.event_id == older["event_id"]]
    assert len(accepted) == 1
    assert_signed(accepted)
    assert [e["action"] for e in audit_events(client, action="webhook.redelivery_requested")]
    assert_problem(
        client.post(f"{API}/webhooks/{hook['id']}/deliveries/99999/redeliver"),
        404,
        "webhook-delivery-not-found",
    )
    dead_only = deliveries(client, hook["id"], status="dead")
    assert {d["id"] for d in dead_only} == {d["id"] for d in log}


def test_deleting_a_webhook_cancels_its_open_deliveries(
    client: TestClient, receiver: Receiver
) -> None:
    hook = create_webhook(client, receiver.url)
    receiver.stop()
    produce(client, "alpha", versions=1)
    wait_until(
        lambda: any(d["attempts"] >= 1 for d in deliveries(client, hook["id"])),
        what="a first attempt",
    )
    before = deliveries(client, hook["id"])
    assert client.delete(f"{API}/webhooks/{hook['id']}").status_code == 200
    # Gone from the API after its DELETE (decision 0025): the webhook, its log, redelivery.
    path = f"{API}/webhooks/{hook['id']}"
    assert_problem(client.get(path), 404, "webhook-not-found")
    assert_problem(client.get(f"{path}/deliveries"), 404, "webhook-not-found")
    response = client.post(f"{path}/deliveries/{before[0]['id']}/redeliver")
    assert_problem(response, 404, "webhook-not-found")
    (deleted,) = [e for e in audit_events(client) if e["action"] == "webhook.deleted"]
    assert deleted["details"]["cancelled_deliveries"] == len(before)


def test_delivery_log_pages_and_filters(
    make_client: Callable[..., TestClient], receiver: Receiver
) -> None:
    client = make_client(webhook_dispatcher_enabled=False)
    hook = create_webhook(client, receiver.url, event_types=["version.created"])
    create_model(client, "alpha")
    for _ in range(5):
        create_version(client, "alpha")
    page = client.get(f"{API}/webhooks/{hook['id']}/deliveries", params={"limit": 2}).json()
    assert len(page["items"]) == 2
    assert page["next_cursor"]
    rest = deliveries(client, hook["id"])
    assert len(rest) == 5
    assert rest[0] == page["items"][0]
    assert {d["status"] for d in rest} == {"pending"}
    assert all(d["model"] == "alpha" and d["event_type"] == "version.created" for d in rest)
    assert deliveries(client, hook["id"], status="delivered") == []
    assert_problem(
        client.get(f"{API}/webhooks/{hook['id']}/deliveries", params={"status": "bogus"}), 422
    )
    assert_problem(
        client.get(f"{API}/webhooks/{hook['id']}/deliveries", params={"cursor": "!!"}), 400
    )
    assert receiver.requests == []  # no dispatcher in this app


def test_an_event_exists_exactly_when_its_change_committed(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        for commit in (False, True):
            with Session(engine) as session:
                audit.record(
                    session, actor=SYSTEM, action=AuditAction.MODEL_FROZEN, model="m", reason="x"
                )
                audit.record(session, actor=SYSTEM, action=AuditAction.MODEL_UPDATED, model="m")
                if commit:
                    session.commit()
                else:
                    session.rollback()
            with Session(engine) as session:
                count = session.scalar(select(func.count()).select_from(OutboxEvent))
                assert count == (1 if commit else 0)
                assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
        with Session(engine) as session:
            event = session.scalars(select(OutboxEvent)).one()
            assert event.type == "model.frozen"
            assert event.model == "m"
            assert event.payload["reason"] == "x"
            assert event.payload["audit"]["seq"] == 1
    finally:
        engine.dispose()
