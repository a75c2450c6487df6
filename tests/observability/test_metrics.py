"""/metrics: Prometheus text with request latency, promotions, gate failures, rollbacks,
webhook deliveries and drift scores, moving as requests happen."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from app.api.uow import UnitOfWork
from app.audit import service as audit
from app.audit.actions import AuditAction
from app.auth.roles import SYSTEM
from app.settings import Settings
from tests.drift._data import reference_sample, window
from tests.events._helpers import all_delivered, create_webhook, wait_until
from tests.support.api import API, create_model
from tests.support.flows import new_version, permissive_policy, promote, put_policy, rollback
from tests.support.receiver import Receiver

MODEL = "metered"


def scrape(
    client: TestClient, path: str = "/metrics"
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_are_served_without_a_token(app_client: TestClient) -> None:
    for path in ("/metrics", f"{API}/metrics"):
        response = app_client.get(path)
        assert response.status_code == 200
        assert "modelgate_http_request_duration_seconds" in response.text
    assert "/metrics" not in app_client.get(f"{API}/openapi.json").json()["paths"]


def test_request_latency_histogram_by_route_template(client: TestClient) -> None:
    before = scrape(client)
    create_model(client, MODEL)
    for _ in range(3):
        assert client.get(f"{API}/models/{MODEL}").status_code == 200
    assert client.get(f"{API}/models/nope").status_code == 404
    after = scrape(client)
    labels = {"method": "GET", "route": "/api/v1/models/{model}"}
    count = "modelgate_http_request_duration_seconds_count"
    assert (
        value(after, count, **labels, status="2xx") - value(before, count, **labels, status="2xx")
        == 3
    )
    assert (
        value(after, count, **labels, status="4xx") - value(before, count, **labels, status="4xx")
        == 1
    )
    inf = value(
        after, "modelgate_http_request_duration_seconds_bucket", **labels, status="2xx", le="+Inf"
    )
    assert inf == value(after, count, **labels, status="2xx")
    # Unknown paths share one series instead of one per path.
    client.get("/no/such/path/1")
    client.get("/no/such/path/2")
    unmatched = scrape(client)
    assert value(unmatched, count, method="GET", route="<unmatched>", status="4xx") >= 2


def test_promotions_rollbacks_and_gate_failures_are_counted(client: TestClient) -> None:
    create_model(client, MODEL, primary_metric="accuracy", primary_dataset="holdout")
    threshold = {"kind": "threshold", "metric": "accuracy", "dataset": "holdout", "value": 0.95}
    put_policy(client, MODEL, permissive_policy())
    before = scrape(client)
    v1 = new_version(client, MODEL)
    promote(client, MODEL, v1, "production", status="applied")
    v2 = new_version(client, MODEL)
    promote(client, MODEL, v2, "production", status="applied")
    assert rollback(client, MODEL).status_code == 200
    put_policy(client, MODEL, permissive_policy(rules=[threshold]))
    v3 = new_version(client, MODEL, accuracy=0.5)
    promote(client, MODEL, v3, "production", status="rejected")
    assert rollback(client, "nope").status_code == 404  # nothing happened: nothing counted
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    promotions = "modelgate_promotions_total"
    assert delta(promotions, outcome="requested", target="production") == 3
    assert delta(promotions, outcome="applied", target="production") == 2
    assert delta(promotions, outcome="rejected", target="production") == 1
    assert delta("modelgate_rollbacks_total", model=MODEL) == 1
    assert delta("modelgate_gate_failures_total", rule_kind="threshold") == 1
    assert delta("modelgate_events_total", type="promotion.applied") == 2
    assert delta("modelgate_events_total", type="model.rolled_back") == 1


def test_rolled_back_work_is_not_counted(client: TestClient, settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        before = value(scrape(client), "modelgate_rollbacks_total", model="ghost")
        # The unit of work runs what waited for its commit, and drops it on a rollback.
        factory = sessionmaker(bind=engine)
        for finish in (UnitOfWork.abort, UnitOfWork.finish):
            uow = UnitOfWork(factory)
            action = AuditAction.MODEL_ROLLED_BACK
            audit.record(uow.session, actor=SYSTEM, action=action, model="ghost")
            finish(uow)
            if finish is UnitOfWork.abort:
                assert value(scrape(client), "modelgate_rollbacks_total", model="ghost") == before
        assert value(scrape(client), "modelgate_rollbacks_total", model="ghost") == before + 1
    finally:
        engine.dispose()


def test_webhook_deliveries_and_drift_scores(client: TestClient) -> None:
    receiver = Receiver().start()
    try:
        before = scrape(client)
        hook = create_webhook(client, receiver.url, event_types=["version.created"])
        create_model(client, MODEL)
        put_policy(client, MODEL, permissive_policy())
        number = new_version(client, MODEL)
        wait_until(all_delivered(client, hook["id"], 1), what="a delivery")
        promote(client, MODEL, number, "production", status="applied")
        response = client.post(
            f"{API}/models/{MODEL}/versions/{number}/reference-profile", json=reference_sample()
        )
        assert response.status_code == 201, response.text
        response = client.post(f"{API}/models/{MODEL}/drift-reports", json=window(shift=15.0))
        assert response.status_code == 201, response.text
        score = response.json()["score"]
        after = scrape(client)
    finally:
        receiver.stop()
    delivered = "modelgate_webhook_deliveries_total"
    assert (
        value(after, delivered, outcome="delivered") - value(before, delivered, outcome="delivered")
        == 1
    )
    assert value(after, "modelgate_webhook_delivery_duration_seconds_count") > value(
        before, "modelgate_webhook_delivery_duration_seconds_count"
    )
    assert value(after, "modelgate_drift_score", model=MODEL) == score
    reports = "modelgate_drift_reports_total"
    assert (
        value(after, reports, model=MODEL, drifted="true")
        - value(before, reports, model=MODEL, drifted="true")
        == 1
    )


def test_no_created_series_and_gauges_of_the_registry_state(client: TestClient) -> None:
    name = "gauged"
    create_model(client, name, primary_metric="accuracy", primary_dataset="holdout")
    put_policy(client, name, permissive_policy(approvals=1, auto_promote=False))
    v1 = new_version(client, name)
    v2 = new_version(client, name)
    put_policy(client, name, permissive_policy())
    promote(client, name, v1, "production", status="applied")
    put_policy(client, name, permissive_policy(approvals=1, auto_promote=False))
    promote(client, name, v2, "production", status="pending_approval")
    response = client.post(f"{API}/models/{name}/freeze", json={"reason": "incident"})
    assert response.status_code == 200, response.text

    text = client.get("/metrics").text
    assert "_created" not in text
    samples = scrape(client)
    assert value(samples, "modelgate_production_version", model=name) == v1
    assert value(samples, "modelgate_pending_promotions") >= 1
    assert value(samples, "modelgate_oldest_pending_promotion_age_seconds") >= 0
    assert value(samples, "modelgate_frozen_models") >= 1
    assert ("modelgate_webhook_outbox_backlog", frozenset()) in samples
    assert ("modelgate_webhook_oldest_undelivered_age_seconds", frozenset()) in samples
