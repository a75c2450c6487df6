"""The dispatcher's claim, lease and record steps, driven one at a time."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update

from app.db.base import utcnow
from app.events.dispatcher import Dispatcher, Outcome, event_body
from app.events.models import OutboxEvent, WebhookDelivery
from app.settings import Settings
from tests.events._helpers import create_webhook, deliveries
from tests.support.api import create_model, create_version
from tests.support.receiver import Receiver


def dispatcher(
    client: TestClient, settings: Settings, name: str, **overrides: object
) -> Dispatcher:
    state = client.app.state  # type: ignore[attr-defined]
    return Dispatcher(
        sessions=state.sessions,
        read_bind=state.read_bind,
        settings=settings.model_copy(update=overrides),
        worker_id=name,
    )


def test_claims_follow_model_order_and_leases(
    make_client: Callable[..., TestClient], receiver: Receiver, settings: Settings
) -> None:
    client = make_client(webhook_dispatcher_enabled=False)
    hook = create_webhook(client, receiver.url, event_types=["version.created"])
    for model in ("alpha", "beta"):
        create_model(client, model)
    create_version(client, "alpha")
    create_version(client, "alpha")
    create_version(client, "beta")
    first = dispatcher(client, settings, "first")
    second = dispatcher(client, settings, "second")
    try:
        claims = first.claim()
        # The oldest of each model only: alpha's second version waits for its first.
        assert len(claims) == 2
        log = {d["id"]: d for d in deliveries(client, hook["id"])}
        assert sorted(log[c.delivery_id]["model"] for c in claims) == ["alpha", "beta"]
        assert all(c.attempt == 1 for c in claims)
        assert claims[0].body == event_body_of(client, claims[0].delivery_id)
        assert second.claim() == []  # leased to the first dispatcher

        # The lease runs out, as if "first" had died mid-send.
        with client.app.state.sessions() as session, session.begin():  # type: ignore[attr-defined]
            session.execute(
                update(WebhookDelivery).values(claimed_until=utcnow() - timedelta(seconds=1))
            )
        retaken = second.claim()
        assert sorted(c.delivery_id for c in retaken) == sorted(c.delivery_id for c in claims)
        assert all(c.attempt == 2 for c in retaken)
        # The first dispatcher's late outcome is not recorded over the second's claim.
        first.record(claims[0], Outcome(ok=True, status_code=200, error=None, seconds=0.0))
        row = {d["id"]: d for d in deliveries(client, hook["id"])}[claims[0].delivery_id]
        assert row["status"] == "pending"
        assert row["attempts"] == 2
        for claim in retaken:
            second.record(claim, second.send(claim))
        log = {d["id"]: d for d in deliveries(client, hook["id"])}
        assert [log[c.delivery_id]["status"] for c in retaken] == ["delivered", "delivered"]
        assert len(receiver.requests) == 2
        # Now alpha's second version is the head of its queue.
        following = second.claim()
        assert len(following) == 1
        assert log.get(following[0].delivery_id) is not None
    finally:
        first.close()
        second.close()


def event_body_of(client: TestClient, delivery_id: int) -> bytes:
    with client.app.state.sessions() as session:  # type: ignore[attr-defined]
        row = session.get(WebhookDelivery, delivery_id)
        assert row is not None
        event = session.get(OutboxEvent, row.outbox_id)
        assert event is not None
        return event_body(event)


def test_failed_attempts_back_off_then_die(
    make_client: Callable[..., TestClient], receiver: Receiver, settings: Settings
) -> None:
    client = make_client(webhook_dispatcher_enabled=False)
    hook = create_webhook(client, receiver.url, event_types=["version.created"])
    create_model(client, "alpha")
    create_version(client, "alpha")
    receiver.answer(503)
    d = dispatcher(
        client, settings, "solo", webhook_max_attempts=2, webhook_backoff_base_seconds=30.0
    )
    try:
        assert d.run_once() == 1
        row = deliveries(client, hook["id"])[0]
        assert row["status"] == "failed"
        assert row["last_status_code"] == 503
        assert row["last_error"] == "HTTP 503: receiver says no"
        assert row["next_attempt_at"] is not None
        assert d.run_once() == 0  # backing off (up to 30 s)
    finally:
        d.close()
    hurried = dispatcher(client, settings, "hurried", webhook_max_attempts=2)
    try:
        with client.app.state.sessions() as session, session.begin():  # type: ignore[attr-defined]
            session.execute(update(WebhookDelivery).values(next_attempt_at=utcnow()))
        assert hurried.run_once() == 1
        row = deliveries(client, hook["id"])[0]
        assert row["status"] == "dead"
        assert row["attempts"] == 2
        assert row["next_attempt_at"] is None
        assert hurried.run_once() == 0
    finally:
        hurried.close()


def test_a_dispatcher_with_nothing_open_is_idle_and_a_retry_keeps_it_awake(
    make_client: Callable[..., TestClient], receiver: Receiver, settings: Settings
) -> None:
    client = make_client(webhook_dispatcher_enabled=False)
    probe = dispatcher(client, settings, "probe")
    try:
        assert probe.claim() == []
        assert probe._idle  # nothing open at all: its looks may slow down

        create_webhook(client, receiver.url, event_types=["version.created"])
        create_model(client, "m")
        create_version(client, "m")
        # The delivery is due later (a retry waiting out its backoff): not idle.
        with client.app.state.sessions() as session, session.begin():  # type: ignore[attr-defined]
            session.execute(
                update(WebhookDelivery).values(next_attempt_at=utcnow() + timedelta(hours=1))
            )
        assert probe.claim() == []
        assert not probe._idle
    finally:
        probe.close()


def test_an_idle_dispatcher_is_woken_by_a_commit_of_its_own_process(
    make_client: Callable[..., TestClient], receiver: Receiver
) -> None:
    # Looks every 5 s, slowing to one a minute while idle: only the wake-up after the
    # commit can deliver within 3 s.
    client = make_client(webhook_poll_interval_seconds=5, webhook_idle_poll_seconds=60)
    hook = create_webhook(client, receiver.url, event_types=["version.created"])
    create_model(client, "m")
    time.sleep(0.3)  # the dispatcher has looked, found nothing, and is waiting
    started = time.monotonic()
    create_version(client, "m")
    assert receiver.wait_for(lambda reqs: len(reqs) >= 1, timeout=10)
    assert time.monotonic() - started < 3
    # The receiver has the request; the dispatcher records the answer just after it.
    deadline = time.monotonic() + 10
    while (statuses := [d["status"] for d in deliveries(client, hook["id"])]) != ["delivered"]:
        assert statuses == ["pending"], statuses
        assert time.monotonic() < deadline, "the delivery was never recorded as delivered"
        time.sleep(0.05)
