"""Reference profiles, drift reports, drift settings over HTTP; numbers checked by hand."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy import stats as scipy_stats
from scipy.spatial.distance import jensenshannon

from tests.drift._data import reference_sample, window
from tests.events._helpers import assert_signed, create_webhook, deliveries, wait_until
from tests.support.api import API, assert_problem, audit_events, auth, create_model
from tests.support.flows import new_version, permissive_policy, promote, put_policy
from tests.support.receiver import Receiver

MODEL = "fraud"
EPS = 1e-4
NUMERIC = {"kind": "numeric"}


def serving(client: TestClient, *, profile: bool = True) -> int:
    """A model with version 1 in production (and its reference profile)."""
    create_model(client, MODEL, primary_metric="accuracy", primary_dataset="holdout")
    put_policy(client, MODEL, permissive_policy())
    number = new_version(client, MODEL)
    promote(client, MODEL, number, "production", status="applied")
    if profile:
        response = client.post(
            f"{API}/models/{MODEL}/versions/{number}/reference-profile", json=reference_sample()
        )
        assert response.status_code == 201, response.text
    return number


def report(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"{API}/models/{MODEL}/drift-reports", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def feature(rep: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(f for f in rep["features"] if f["name"] == name)
    return found


# Reference profiles ----------------------------------------------------------------------------


def test_reference_profile_from_a_sample_is_immutable(client: TestClient) -> None:
    create_model(client, MODEL)
    number = new_version(client, MODEL, artifact=False)
    url = f"{API}/models/{MODEL}/versions/{number}/reference-profile"
    assert_problem(client.get(url), 404, "reference-profile-not-found")
    body = reference_sample()
    response = client.post(url, json=body)
    assert response.status_code == 201, response.text
    profile = response.json()
    assert profile["source"] == "sample"
    assert profile["rows"] == 3000
    assert profile["dataset"] == "transactions@2026-11-01"
    amount = profile["features"]["amount"]
    assert amount["kind"] == "numeric"
    assert len(amount["edges"]) == 11
    assert sum(amount["counts"]) == 3000
    assert amount["sample_size"] == 3000
    assert amount["sample"] is None
    country = profile["features"]["country"]
    assert country["frequencies"] == {
        c: float(body["sample"]["country"].count(c)) for c in ("DE", "FR", "US")
    }
    age = profile["features"]["age"]
    assert age["null_count"] == 60
    assert age["count"] == 2940
    assert profile["prediction"]["kind"] == "numeric"

    again = client.post(url, json=body)  # a retried CI step
    assert again.status_code == 200
    assert again.json()["digest"] == profile["digest"]
    other = reference_sample(seed=99)
    assert_problem(client.post(url, json=other), 409, "reference-profile-exists")

    full = client.get(url, params={"include_sample": True}).json()
    assert sorted(full["features"]["amount"]["sample"]) == sorted(body["sample"]["amount"])
    events = [e for e in audit_events(client, model=MODEL) if e["action"].startswith("reference")]
    assert len(events) == 1
    assert events[0]["details"]["digest"] == profile["digest"]


def test_samples_are_subsampled_for_the_ks_test(make_client: Callable[..., TestClient]) -> None:
    client = make_client(drift_reference_sample_size=500, webhook_dispatcher_enabled=False)
    create_model(client, MODEL)
    number = new_version(client, MODEL, artifact=False)
    url = f"{API}/models/{MODEL}/versions/{number}/reference-profile"
    body = reference_sample()
    assert client.post(url, json=body).status_code == 201
    kept = client.get(url, params={"include_sample": True}).json()["features"]["amount"]
    assert kept["sample_size"] == 500
    assert set(kept["sample"]) <= set(body["sample"]["amount"])
    assert sum(kept["counts"]) == 3000  # the bins still count every value


def test_reference_profile_from_profiles(client: TestClient) -> None:
    create_model(client, MODEL)
    number = new_version(client, MODEL, artifact=False)
    url = f"{API}/models/{MODEL}/versions/{number}/reference-profile"
    body = {
        "features": {
            "amount": {"kind": "numeric", "edges": [0, 50, 100, 150, 200], "counts": [1, 4, 4, 1]},
            "country": {"kind": "categorical", "frequencies": {"DE": 0.5, "FR": 0.3, "US": 0.2}},
        },
        "prediction": {"kind": "numeric", "edges": [0, 0.5, 1], "counts": [70, 30]},
    }
    response = client.post(url, json=body)
    assert response.status_code == 201, response.text
    profile = response.json()
    assert profile["source"] == "profile"
    assert profile["features"]["amount"]["counts"] == [1, 4, 4, 1]
    assert profile["features"]["amount"]["sample_size"] == 0
    assert profile["features"]["country"]["count"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"features": {"amount": {**NUMERIC, "edges": [0, 1], "counts": [1, 2]}}}, "amount"),
        ({"features": {"amount": {**NUMERIC, "edges": [0, 2, 1, 3], "counts": [1] * 3}}}, "amount"),
        ({"features": {"amount": {"kind": "categorical", "frequencies": {"a": 1}}}}, "kind"),
        ({"features": {"country": {"kind": "categorical", "frequencies": {"DE": 0}}}}, "country"),
        ({"sample": {"amount": [1.0, 2.0], "country": []}}, "country"),
        ({"sample": {"amount": [1.0, 2.0]}, "predictions": []}, "predictions"),
        ({"sample": {"amount": ["a", "b"]}}, "amount"),
        ({"sample": {"amount": [1.0]}, "features": {}}, "body"),
        ({}, "body"),
        ({"sample": {"amount": [float("nan")]}}, "amount"),
    ],
)  # fmt: skip
def test_invalid_profiles_are_422(client: TestClient, body: dict[str, Any], loc: str) -> None:
    create_model(client, MODEL)
    number = new_version(client, MODEL, artifact=False)
    response = client.post(
        f"{API}/models/{MODEL}/versions/{number}/reference-profile",
        content=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    problem = assert_problem(response, 422)
    assert any(loc in [str(p) for p in e["loc"]] for e in problem["errors"]), problem


def test_sample_columns_of_different_lengths_are_profiled_each_from_its_own_values(
    client: TestClient,
) -> None:
    """Every computation is per column, so a column is profiled from its own values and the
    row count is the longest column's, as for profiles (decision 0026; was a 422)."""
    create_model(client, MODEL)
    number = new_version(client, MODEL, artifact=False)
    body = {
        "sample": {"amount": [1.0, 2.0, 3.0, 4.0], "country": ["DE", "FR"]},
        "predictions": [0.1, 0.9, 0.4],
    }
    url = f"{API}/models/{MODEL}/versions/{number}/reference-profile"
    response = client.post(url, json=body)
    assert response.status_code == 201, response.text
    profile = response.json()
    assert profile["rows"] == 4
    assert sum(profile["features"]["amount"]["counts"]) == 4
    assert profile["features"]["country"]["frequencies"] == {"DE": 1.0, "FR": 1.0}
    assert profile["prediction"]["count"] == 3


# Drift reports ----------------------------------------------------------------------------


def test_a_report_needs_a_production_version_with_a_profile(client: TestClient) -> None:
    assert_problem(client.post(f"{API}/models/nope/drift-reports", json=window()), 404)
    create_model(client, MODEL)
    put_policy(client, MODEL, permissive_policy())
    problem = assert_problem(client.post(f"{API}/models/{MODEL}/drift-reports", json=window()), 409)
    assert problem["code"] == "no-drift-reference"
    number = new_version(client, MODEL)
    promote(client, MODEL, number, "production", status="applied")
    problem = assert_problem(client.post(f"{API}/models/{MODEL}/drift-reports", json=window()), 409)
    assert "reference-profile" in problem["detail"]


def test_report_numbers_match_numpy_and_scipy_by_hand(client: TestClient) -> None:
    number = serving(client)
    body = window(shift=10.0, mix=(0.4, 0.3, 0.3))
    body["sample"]["country"][:5] = ["XX"] * 5  # unseen: pooled into one cell
    rep = report(client, body)
    ref = client.get(
        f"{API}/models/{MODEL}/versions/{number}/reference-profile",
        params={"include_sample": True},
    ).json()
    assert rep["version"] == number
    assert rep["rows"] == 800
    assert rep["window_start"] == "2026-11-20T00:00:00Z"

    # amount: PSI over the reference's deciles, and KS against the kept sample.
    amount = feature(rep, "amount")
    edges = np.array(ref["features"]["amount"]["edges"])
    x = np.array(body["sample"]["amount"])
    win = np.bincount(np.searchsorted(edges[1:-1], x, side="right"), minlength=len(edges) - 1)
    refc = np.array(ref["features"]["amount"]["counts"])
    assert amount["window_counts"] == win.tolist()
    a = np.maximum(win / win.sum(), EPS)
    e = np.maximum(refc / refc.sum(), EPS)
    assert amount["psi"] == pytest.approx(float(np.sum((a - e) * np.log(a / e))), rel=1e-12)
    ks = scipy_stats.ks_2samp(x, np.array(ref["features"]["amount"]["sample"]), method="asymp")
    assert amount["ks"]["statistic"] == pytest.approx(ks.statistic, rel=1e-12)
    assert amount["ks"]["p_value"] == pytest.approx(ks.pvalue, rel=1e-9)
    assert amount["ks"]["significant"] is True

    # country: chi-square against scaled reference frequencies, JS distance base 2.
    country = feature(rep, "country")
    assert country["cells"] == ["DE", "FR", "US", "__unseen__"]
    freqs = ref["features"]["country"]["frequencies"]
    ref_counts = np.array([freqs["DE"], freqs["FR"], freqs["US"], 0.0])
    got = body["sample"]["country"]
    obs = np.array([got.count("DE"), got.count("FR"), got.count("US"), 5.0])
    assert country["window_counts"] == obs.tolist()
    p = np.maximum(ref_counts / ref_counts.sum(), EPS)
    expected = p / p.sum() * obs.sum()
    chi = scipy_stats.chisquare(obs, expected)
    assert country["chi_square"]["statistic"] == pytest.approx(chi.statistic, rel=1e-12)
    assert country["chi_square"]["p_value"] == pytest.approx(chi.pvalue, rel=1e-9, abs=1e-300)
    assert country["chi_square"]["dof"] == 3
    js = jensenshannon(obs / obs.sum(), ref_counts / ref_counts.sum(), base=2)
    assert country["js_distance"] == pytest.approx(float(js), rel=1e-12)
    pa = np.maximum(obs / obs.sum(), EPS)
    pe = np.maximum(ref_counts / ref_counts.sum(), EPS)
    assert country["psi"] == pytest.approx(float(np.sum((pa - pe) * np.log(pa / pe))), rel=1e-12)

    # Delta: the largest feature score; scores equal PSI at this window size.
    for f in [*rep["features"], rep["prediction"]]:
        assert f["psi_critical"] < rep["tau"]
        assert f["score"] == f["psi"]
    scores = {f["name"]: f["score"] for f in [*rep["features"], rep["prediction"]]}
    assert rep["score"] == max(scores.values())
    assert rep["top_feature"] == max(scores, key=lambda k: scores[k]) == "amount"
    assert rep["drifted"] is True
    assert rep["prediction"]["name"] == "__prediction__"
    assert rep["prediction"]["drifted"] is False
    assert feature(rep, "age")["drifted"] is False


def test_drift_writes_audit_events_and_webhook_deliveries(client: TestClient) -> None:
    receiver = Receiver().start()
    try:
        hook = create_webhook(
            client, receiver.url, event_types=["drift.detected", "retrain.requested"]
        )
        serving(client)
        calm = report(client, window())
        assert calm["drifted"] is False
        assert calm["score"] < calm["tau"]
        drifted = report(client, window(seed=9, shift=15.0))
        assert drifted["drifted"] is True
        actions = [e["action"] for e in audit_events(client, model=MODEL)]
        assert actions.count("drift.reported") == 2
        assert actions.count("drift.detected") == 1
        assert actions.count("retrain.requested") == 1
        detected = audit_events(client, model=MODEL, action="drift.detected")[0]
        assert detected["details"]["report_id"] == drifted["id"]
        assert detected["details"]["drifted_features"] == ["amount"]
        assert detected["version"] == 1
        retrain = audit_events(client, model=MODEL, action="retrain.requested")[0]
        assert retrain["details"]["lineage"]["data_version"] == "transactions@2026-11-01"

        wait_until(
            lambda: (
                len(receiver.accepted()) == 2
                and {d["status"] for d in deliveries(client, hook["id"])} == {"delivered"}
            ),
            what="drift webhooks",
        )
        bodies = [json.loads(r.body) for r in receiver.requests]
        assert [b["type"] for b in bodies] == ["drift.detected", "retrain.requested"]
        assert all(b["data"]["details"]["report_id"] == drifted["id"] for b in bodies)
        assert_signed(receiver.requests)
    finally:
        receiver.stop()


def test_schema_drift_is_reported(client: TestClient) -> None:
    serving(client)
    body = window(n=200)
    sample = body["sample"]
    del sample["age"]  # missing (nullable, required by default)
    sample["extra"] = [1] * 200  # new
    sample["country"][:30] = ["XX"] * 10 + ["YY"] * 20  # unseen categories
    sample["amount"][:20] = [None] * 20  # 10 % nulls in a non-nullable column
    rep = report(client, body)
    issues = {(i["kind"], i["column"]): i for i in rep["schema_drift"]["issues"]}
    assert rep["schema_drift"]["ok"] is False
    assert rep["schema_drift"]["checked_against"] == "signature"
    assert issues["missing_column", "age"]["required"] is True
    assert ("new_column", "extra") in issues
    assert issues["null_rate", "amount"]["rate"] == pytest.approx(0.1)
    assert issues["null_rate", "amount"]["bound"] == 0.05
    assert ("unexpected_nulls", "amount") in issues
    unseen = issues["unseen_categories", "country"]
    assert unseen["categories"] == ["XX", "YY"]
    assert unseen["rate"] == pytest.approx(30 / 200)
    assert feature(rep, "age")["skipped"] == "not in the window"
    assert feature(rep, "amount")["null_rate"] == pytest.approx(0.1)

    typed = window(n=200)
    typed["sample"]["amount"] = [str(v) for v in typed["sample"]["amount"]]
    typed["sample"]["age"] = [float(v) + 0.5 for v in typed["sample"]["age"]]
    rep = report(client, typed)
    kinds = {(i["kind"], i["column"]) for i in rep["schema_drift"]["issues"]}
    assert kinds == {("type_mismatch", "amount"), ("type_mismatch", "age")}
    assert feature(rep, "amount")["skipped"].startswith("type mismatch")
    assert feature(rep, "amount")["psi"] is None


def test_windows_sent_as_profiles(client: TestClient) -> None:
    number = serving(client)
    ref = client.get(f"{API}/models/{MODEL}/versions/{number}/reference-profile").json()
    edges = ref["features"]["amount"]["edges"]
    k = len(edges) - 1
    body = {
        "features": {
            "amount": {"kind": "numeric", "edges": edges, "counts": [10] * k, "null_count": 0},
            "country": {"kind": "categorical", "frequencies": {"DE": 50, "FR": 30, "US": 20}},
        }
    }
    rep = report(client, body)
    assert rep["rows"] == 10 * k
    assert feature(rep, "amount")["ks"] is None
    assert "KS skipped" in feature(rep, "amount")["notes"][0]
    assert rep["prediction"]["skipped"] == "not in the window"
    body["features"]["amount"]["edges"] = [e + 1 for e in edges]
    problem = assert_problem(client.post(f"{API}/models/{MODEL}/drift-reports", json=body), 422)
    assert "edges" in problem["errors"][0]["loc"]


def test_settings_defaults_update_and_effect(
    client: TestClient, make_token: Callable[..., str]
) -> None:
    serving(client)
    url = f"{API}/models/{MODEL}/drift-settings"
    default = client.get(url).json()
    assert default == {
        "model": MODEL, "tau": 0.2, "max_null_rate": 0.05, "alpha": 0.01, "is_default": True,
        "updated_by": None, "updated_at": None,
    }  # fmt: skip
    response = client.put(url, json={"tau": 50.0, "max_null_rate": 0.5, "alpha": 0.05})
    assert response.status_code == 200, response.text
    assert response.json()["is_default"] is False
    assert client.get(url).json()["tau"] == 50.0
    rep = report(client, window(shift=15.0))
    assert rep["drifted"] is False
    assert rep["tau"] == 50.0
    assert rep["settings"] == {"tau": 50.0, "max_null_rate": 0.5, "alpha": 0.05}
    assert [e["action"] for e in audit_events(client, action="drift_settings.updated")]
    assert_problem(client.put(url, json={"tau": 0}), 422)
    submitter = make_token("submitter")
    assert_problem(client.get(url, headers=auth(submitter)), 403, "forbidden")
    assert_problem(client.put(url, json={}, headers=auth(submitter)), 403, "forbidden")


def test_history_is_newest_first_with_cursor_and_filter(
    client: TestClient, make_token: Callable[..., str]
) -> None:
    serving(client)
    ids = [report(client, window(n=300, seed=s, shift=20.0 * (s % 2))) for s in range(4)]
    url = f"{API}/models/{MODEL}/drift-reports"
    reader = auth(make_token("reader"))
    first = client.get(url, params={"limit": 3}, headers=reader).json()
    assert [r["id"] for r in first["items"]] == [ids[3]["id"], ids[2]["id"], ids[1]["id"]]
    rest = client.get(url, params={"cursor": first["next_cursor"]}, headers=reader).json()
    assert [r["id"] for r in rest["items"]] == [ids[0]["id"]]
    assert rest["next_cursor"] is None
    drifted = client.get(url, params={"drifted": True}, headers=reader).json()["items"]
    assert [r["id"] for r in drifted] == [ids[3]["id"], ids[1]["id"]]
    one = client.get(f"{url}/{ids[2]['id']}", headers=reader)
    assert one.status_code == 200
    assert one.json() == ids[2]
    assert_problem(client.get(f"{url}/9999"), 404, "drift-report-not-found")
    assert_problem(
        client.post(url, json=window(), headers=reader), 403, "forbidden"
    )  # readers read only
    assert math.isfinite(ids[1]["score"])
