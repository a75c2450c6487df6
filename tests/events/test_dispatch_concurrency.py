"""Several dispatchers on one PostgreSQL database, and a server killed mid-delivery.

PostgreSQL only: the claim's ``FOR UPDATE SKIP LOCKED`` is what keeps dispatchers of
several processes off each other's deliveries (SQLite runs one process).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db.engine import build_engine, build_sessionmaker
from app.events.dispatcher import Claim, Dispatcher, Outcome
from app.events.models import WebhookDelivery
from app.settings import Settings
from tests.events._helpers import (
    all_delivered,
    assert_in_order_per_model,
    assert_signed,
    create_webhook,
    deliveries,
    first_arrivals,
    wait_until,
)
from tests.support.api import API, SECRET_KEY, create_model, create_version
from tests.support.receiver import Receiver
from tests.support.servers import running_servers, start_server

pytestmark = pytest.mark.postgres_only


class CountingDispatcher(Dispatcher):
    """A dispatcher that also notes which deliveries it sent, and checks that no other
    dispatcher is sending the same delivery at the same moment."""

    in_flight: dict[int, str] = {}
    lock = threading.Lock()
    overlaps: list[int] = []

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.sent: list[int] = []

    def send(self, claim: Claim) -> Outcome:
        with self.lock:
            if claim.delivery_id in self.in_flight:
                self.overlaps.append(claim.delivery_id)
            self.in_flight[claim.delivery_id] = self.worker_id
        try:
            return super().send(claim)
        finally:
            with self.lock:
                self.in_flight.pop(claim.delivery_id, None)
                self.sent.append(claim.delivery_id)


@pytest.mark.parametrize("failure_rate", [0.0, 0.3])
def test_several_dispatchers_never_send_one_delivery_twice_at_once(
    make_client: Callable[..., TestClient],
    receiver: Receiver,
    settings: Settings,
    failure_rate: float,
) -> None:
    client = make_client(webhook_dispatcher_enabled=False)
    hook = create_webhook(client, receiver.url, event_types=["version.created"])
    models = [f"m{i}" for i in range(6)]
    for model in models:
        create_model(client, model)
    for _ in range(5):
        for model in models:
            create_version(client, model)
    total = len(models) * 5
    receiver.hold(0.005)
    receiver.fail_randomly(failure_rate, seed=11)

    tuned = settings.model_copy(update={"webhook_batch_size": 2, "webhook_concurrency": 2})
    engines = [build_engine(tuned) for _ in range(3)]
    dispatchers = [
        CountingDispatcher(sessions=build_sessionmaker(e), settings=tuned, worker_id=f"w{i}")
        for i, e in enumerate(engines)
    ]
    CountingDispatcher.overlaps.clear()
    try:
        for d in dispatchers:
            d.start()
        wait_until(all_delivered(client, hook["id"], total), timeout=60, what="all delivered")
    finally:
        for d in dispatchers:
            d.stop()
        for e in engines:
            e.dispose()

    assert CountingDispatcher.overlaps == []
    assert sum(1 for d in dispatchers if d.sent) >= 2, [len(d.sent) for d in dispatchers]
    log = deliveries(client, hook["id"])
    per_event = Counter(r.event_id for r in receiver.requests)
    for row in log:
        # Every request the receiver saw is an attempt the log counted: none was sent
        # twice by racing dispatchers, and exactly one was accepted.
        assert per_event[row["event_id"]] == row["attempts"], row
        assert sum(1 for r in receiver.accepted() if r.event_id == row["event_id"]) == 1
    if failure_rate == 0:
        assert sorted(per_event.values()) == [1] * total
    else:
        assert max(per_event.values()) > 1  # the flaky receiver did force retries
    assert_signed(receiver.requests)
    assert_in_order_per_model(receiver.accepted())


def live_settings(settings: Settings, workdir: Path) -> dict[str, str]:
    """Settings of real server processes on the test database, retrying fast."""
    return {
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": SECRET_KEY,
        "ARTIFACT_STORE": str(workdir / "artifacts"),
        "AUTO_MIGRATE": "false",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
        "DB_POOL_SIZE": "3",
        "WEBHOOK_POLL_INTERVAL_SECONDS": "0.05",
        # Events here are written by another process (the test's app), which cannot wake
        # these dispatchers: keep them looking at the fast pace even while idle.
        "WEBHOOK_IDLE_POLL_SECONDS": "0.05",
        "WEBHOOK_TIMEOUT_SECONDS": "2",
        "WEBHOOK_LEASE_SECONDS": "3",
        "WEBHOOK_BACKOFF_BASE_SECONDS": "0.05",
        "WEBHOOK_BACKOFF_CAP_SECONDS": "0.2",
        "WEBHOOK_BATCH_SIZE": "2",
    }


def test_two_server_processes_deliver_each_event_once(
    make_client: Callable[..., TestClient],
    receiver: Receiver,
    settings: Settings,
    tmp_path: Path,
) -> None:
    client = make_client(webhook_dispatcher_enabled=False)
    models = [f"m{i}" for i in range(4)]
    total = len(models) * 5
    receiver.hold(0.05)
    env = {**live_settings(settings, tmp_path), "LOG_LEVEL": "INFO"}
    with running_servers(env, count=2) as servers:
        # Both dispatchers are polling before the first event exists.
        hook = create_webhook(client, receiver.url, event_types=["version.created"])
        for model in models:
            create_model(client, model)
        for _ in range(5):
            for model in models:
                create_version(client, model)
        wait_until(all_delivered(client, hook["id"], total), timeout=60, what="all delivered")
        delivered_by = [s.log().count('"outcome": "delivered"') for s in servers]
    assert sum(delivered_by) == total
    assert min(delivered_by) > 0, delivered_by  # both processes did deliver
    per_event = Counter(r.event_id for r in receiver.requests)
    assert sorted(per_event.values()) == [1] * total
    assert all(d["attempts"] == 1 for d in deliveries(client, hook["id"]))
    assert_signed(receiver.requests)
    assert_in_order_per_model(receiver.requests)


def test_server_killed_mid_delivery_loses_nothing(
    make_client: Callable[..., TestClient],
    receiver: Receiver,
    settings: Settings,
    tmp_path: Path,
) -> None:
    client = make_client(webhook_dispatcher_enabled=False)
    hook = create_webhook(client, receiver.url)
    for model in ("alpha", "beta"):
        create_model(client, model)
        for _ in range(3):
            create_version(client, model)
        response = client.post(f"{API}/models/{model}/freeze", json={"reason": "drill"})
        assert response.status_code == 200
    total = 2 * 4
    # The first server will be mid-request when it dies: the hold outlasts the gap between
    # the first arrival and the kill on a loaded machine (it is released just after).
    receiver.hold(8)

    env = live_settings(settings, tmp_path)
    first = start_server(env)
    try:
        first.wait_ready()
        assert receiver.wait_for(lambda reqs: len(reqs) >= 1, timeout=30), first.log()
    finally:
        first.kill()  # SIGKILL, no shutdown hooks: the claims stay behind with their leases
    in_flight = {r.event_id for r in receiver.requests}
    stuck = [d for d in deliveries(client, hook["id"]) if d["event_id"] in in_flight]
    assert stuck
    assert all(d["status"] == "pending" and d["attempts"] == 1 for d in stuck)
    assert sum(1 for d in deliveries(client, hook["id"]) if d["status"] == "delivered") < total

    receiver.hold(0)
    with running_servers(env):
        wait_until(all_delivered(client, hook["id"], total), timeout=60, what="all delivered")

    requests = receiver.requests
    assert {r.event_id for r in requests} == {d["event_id"] for d in deliveries(client, hook["id"])}
    assert len(first_arrivals(requests)) == total
    repeated = [e for e, n in Counter(r.event_id for r in requests).items() if n > 1]
    assert set(repeated) >= in_flight  # at least once: the interrupted ones were sent again
    assert_signed(requests)
    assert_in_order_per_model(requests)
    with client.app.state.sessions() as session:  # type: ignore[attr-defined]
        rows = session.scalars(select(WebhookDelivery)).all()
        assert all(r.claimed_until is None and r.claimed_by is None for r in rows)
