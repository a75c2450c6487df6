"""Schema breakage is drift: a window missing a column, with a retyped column or with
unseen categories raises ``drift.detected`` (kind ``schema``) and its webhook, even when
every distribution score stays under tau."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.drift._data import window
from tests.drift.test_drift_api import report, serving
from tests.events._helpers import create_webhook, deliveries, wait_until
from tests.support.api import audit_events
from tests.support.receiver import Receiver

MODEL = "fraud"


def missing_column(body: dict[str, Any]) -> None:
    del body["sample"]["age"]


def retyped_column(body: dict[str, Any]) -> None:
    body["sample"]["amount"] = [str(v) for v in body["sample"]["amount"]]


def unseen_categories(body: dict[str, Any]) -> None:
    body["sample"]["country"][:6] = ["XX"] * 6


@pytest.mark.parametrize(
    ("breakage", "kind", "column"),
    [
        (missing_column, "missing_column", "age"),
        (retyped_column, "type_mismatch", "amount"),
        (unseen_categories, "unseen_categories", "country"),
    ],
    ids=["missing", "retyped", "unseen"],
)
def test_schema_breakage_raises_drift_detected_and_the_webhook(
    client: TestClient, breakage: Any, kind: str, column: str
) -> None:
    receiver = Receiver().start()
    try:
        hook = create_webhook(client, receiver.url, event_types=["drift.detected"])
        serving(client)
        body = window(n=200)
        breakage(body)

        rep = report(client, body)

        assert rep["score"] <= rep["tau"], "the distributions alone do not drift"
        assert rep["drifted"] is True
        assert rep["kinds"] == ["schema"]
        detected = audit_events(client, model=MODEL, action="drift.detected")
        assert len(detected) == 1
        details = detected[0]["details"]
        assert details["kind"] == "schema"
        assert (kind, column) in {(i["kind"], i["column"]) for i in details["schema_breaking"]}
        assert column in detected[0]["reason"]
        # A broken feed is fixed upstream: no retraining is asked for.
        assert audit_events(client, model=MODEL, action="retrain.requested") == []

        wait_until(
            lambda: (
                {d["status"] for d in deliveries(client, hook["id"])} == {"delivered"}
                and len(receiver.accepted()) == 1
            ),
            what="the schema drift webhook",
        )
        delivered = json.loads(receiver.accepted()[0].body)
        assert delivered["type"] == "drift.detected"
        assert delivered["data"]["details"]["kind"] == "schema"
    finally:
        receiver.stop()


def test_a_clean_window_and_a_harmless_new_column_are_not_drift(client: TestClient) -> None:
    serving(client)
    clean = report(client, window(n=200))
    body = window(n=200)
    body["sample"]["extra"] = [1] * 200
    extra = report(client, body)

    for rep in (clean, extra):
        assert rep["drifted"] is False
        assert rep["kinds"] == []
    assert extra["schema_drift"]["issues"][0]["kind"] == "new_column"
    assert audit_events(client, model=MODEL, action="drift.detected") == []
