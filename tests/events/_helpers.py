"""Helpers of the webhook tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from app.events import signing
from tests.support.api import API, all_items
from tests.support.receiver import Received

SECRET = "whsec_test_0123456789abcdef"


def create_webhook(client: Any, url: str, **fields: Any) -> dict[str, Any]:
    body = {"url": url, "secret": SECRET, **fields}
    response = client.post(f"{API}/webhooks", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def deliveries(client: Any, webhook_id: int, **params: Any) -> list[dict[str, Any]]:
    """The whole delivery log of a webhook, newest first."""
    return all_items(client, f"/webhooks/{webhook_id}/deliveries", **{**params, "limit": 500})


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    assert predicate(), f"timed out after {timeout} s waiting for {what or predicate}"


def all_delivered(client: TestClient, webhook_id: int, count: int) -> Callable[[], bool]:
    def check() -> bool:
        rows = deliveries(client, webhook_id)
        return len(rows) >= count and all(r["status"] == "delivered" for r in rows)

    return check


def assert_signed(requests: list[Received], secret: str = SECRET) -> None:
    """Every request carries a valid signature, checked as a receiver would (by hand)."""
    for r in requests:
        header = r.headers["modelgate-signature"]
        assert signing.verify(secret, header, r.body), header
        t, v1 = (part.split("=", 1)[1] for part in header.split(","))
        assert t == r.headers["modelgate-timestamp"]
        mac = hmac.new(secret.encode(), f"{t}.".encode() + r.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(mac, v1)
        body = json.loads(r.body)
        assert body["id"] == r.headers["modelgate-event-id"]
        assert body["type"] == r.headers["modelgate-event-type"]


def first_arrivals(requests: list[Received]) -> list[Received]:
    """Each event once, at its first arrival (receivers drop duplicates by event id)."""
    seen: set[str] = set()
    out: list[Received] = []
    for r in requests:
        if r.event_id not in seen:
            seen.add(r.event_id)
            out.append(r)
    return out


def assert_in_order_per_model(requests: list[Received]) -> None:
    """Per model, events arrive in the order of the model's audit chain (its seq)."""
    by_model: dict[str, list[int]] = defaultdict(list)
    for r in first_arrivals(requests):
        data = json.loads(r.body)["data"]
        by_model[str(data["model"])].append(int(data["audit"]["seq"]))
    for model, seqs in by_model.items():
        assert seqs == sorted(seqs), (model, seqs)
