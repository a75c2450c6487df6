"""Shadow and A/B reports over HTTP: numbers that match the data fed in exactly, and the
``shadow_agreement`` gate in a production policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy import stats

from app.gates.shadow import ShadowPairs, shadow_agreement
from tests.support.api import create_model
from tests.support.flows import gate, new_version, permissive_policy, promote, put_policy

API = "/api/v1"
MODEL = "delivery-model"


@pytest.fixture
def model(client: TestClient) -> str:
    create_model(client, MODEL)
    for number in (1, 2, 3):
        new_version(client, MODEL, artifact=False)
        # Observations are taken only for versions in the serving plan.
        response = client.put(
            f"{API}/models/{MODEL}/aliases/arm-{number}", json={"version": number}
        )
        assert response.status_code == 200, response.text
    return MODEL


def _at() -> str:
    return (datetime.now(UTC) - timedelta(seconds=5)).isoformat()


def _post(client: TestClient, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 5000):
        response = client.post(
            f"{API}/models/{MODEL}/observations", json={"observations": rows[start : start + 5000]}
        )
        assert response.status_code == 202, response.text


def _row(
    key: str, version: int, role: str, prediction: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "request_key": key,
        "version": version,
        "role": role,
        "prediction": prediction,
        "time": _at(),
        **extra,
    }


def test_the_shadow_report_pairs_classes_by_request_key(client: TestClient, model: str) -> None:
    primary = [
        _row(f"k{i}", 1, "primary", {"class": "fraud" if i % 3 == 0 else "ok"},
             error=i % 10 == 0, latency_ms=10.0 + i % 5)
        for i in range(100)
    ]  # fmt: skip
    # The shadow disagrees on every fifth request; it also scored 10 requests whose
    # primary row never arrived (unpaired), and errs more often.
    shadow = [
        _row(f"k{i}", 2, "shadow",
             {"class": ("ok" if i % 3 == 0 else "fraud") if i % 5 == 0 else
              ("fraud" if i % 3 == 0 else "ok")},
             error=i % 4 == 0, latency_ms=12.0 + i % 5)
        for i in range(110)
    ]  # fmt: skip
    # Order does not matter: half the shadow rows arrive before their primary rows.
    _post(client, shadow[:50])
    _post(client, primary)
    _post(client, shadow[50:])

    response = client.get(f"{API}/models/{MODEL}/versions/2/shadow-report")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["version"] == 2
    assert report["primary_version"] == 1
    assert report["pairs"] == {
        "pairs": 100,
        "class_pairs": 100,
        "agreeing": 80,
        "agreement": 0.8,
        "value_pairs": 0,
        "mean_absolute_difference": None,
        "primary_versions": {"1": 100},
    }
    assert report["shadow"]["requests"] == 110
    assert report["shadow"]["errors"] == sum(1 for i in range(110) if i % 4 == 0)
    assert report["primary"]["requests"] == 100
    assert report["primary"]["errors"] == 10
    errors = report["error_rate"]
    assert errors["rate_a"] == pytest.approx(0.1)
    assert errors["rate_b"] == pytest.approx(28 / 110)
    table = np.array([[10, 90], [28, 82]])
    z = (28 / 110 - 0.1) / np.sqrt(38 / 210 * (1 - 38 / 210) * (1 / 100 + 1 / 110))
    assert errors["p_value"] == pytest.approx(2 * stats.norm.sf(z))
    assert stats.chi2_contingency(table, correction=False).pvalue == pytest.approx(
        errors["p_value"]
    )
    latency = report["latency"]
    assert latency["median_a"] == pytest.approx(12.0)
    assert latency["median_b"] == pytest.approx(14.0)
    assert latency["p_value"] < 0.001
    hist_p = {"fraud": 34, "ok": 66}
    hist_s = dict(report["shadow"]["predictions"])
    assert report["primary"]["predictions"] == hist_p
    expected = stats.chi2_contingency(
        np.array([[hist_p["fraud"], hist_p["ok"]], [hist_s["fraud"], hist_s["ok"]]]),
        correction=False,
    )
    assert report["predictions"]["p_value"] == pytest.approx(expected.pvalue)
    assert report["predictions"]["samples"] == [100, 110]
    assert 0 < report["predictions"]["jensen_shannon"] < 1


def test_regression_and_score_pairs_give_the_exact_mean_absolute_difference(
    client: TestClient, model: str
) -> None:
    rows = []
    for i in range(30):
        rows.append(_row(f"v{i}", 1, "primary", {"value": float(i)}))
        rows.append(_row(f"v{i}", 3, "shadow", {"value": float(i) + (i % 3) * 0.5}))
    for i in range(20):
        rows.append(_row(f"s{i}", 1, "primary", {"score": 0.2 + i * 0.03}))
        rows.append(_row(f"s{i}", 3, "shadow", {"score": 0.25 + i * 0.03}))
    _post(client, rows)
    report = client.get(f"{API}/models/{MODEL}/versions/3/shadow-report").json()
    pairs = report["pairs"]
    assert pairs["pairs"] == 50
    # Scores agree when on the same side of 0.5: primary 0.2 + 0.03 i >= 0.5 from i = 10,
    # shadow 0.25 + 0.03 i from i = 9 (0.52): they disagree at i = 9 only.
    assert pairs["class_pairs"] == 20
    assert pairs["agreeing"] == 19
    assert pairs["value_pairs"] == 50
    value_diffs = [(i % 3) * 0.5 for i in range(30)]
    expected = (sum(value_diffs) + 20 * 0.05) / 50
    assert pairs["mean_absolute_difference"] == pytest.approx(expected)


def test_the_shadow_report_refuses_bad_input(client: TestClient, model: str) -> None:
    assert client.get(f"{API}/models/{MODEL}/versions/9/shadow-report").status_code == 404
    assert client.get(f"{API}/models/nope/versions/1/shadow-report").status_code == 404
    late = datetime.now(UTC).isoformat()
    early = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    # since at or after until: an empty range, answered with no data (decision 0025)
    response = client.get(
        f"{API}/models/{MODEL}/versions/2/shadow-report", params={"since": late, "until": early}
    )
    assert response.status_code == 200
    assert response.json()["windows"] == 0
    assert response.json()["pairs"]["pairs"] == 0
    assert (
        client.get(f"{API}/models/{MODEL}/versions/2/shadow-report", params={"x": 1}).status_code
        == 400
    )
    # Nothing observed: zero pairs, no numbers invented.
    report = client.get(f"{API}/models/{MODEL}/versions/2/shadow-report").json()
    assert report["pairs"]["pairs"] == 0
    assert report["pairs"]["agreement"] is None
    assert report["error_rate"]["p_value"] is None


def _pairs(client: TestClient, version: int, agree: int, total: int, prefix: str) -> None:
    rows = []
    for i in range(total):
        rows.append(_row(f"{prefix}{i}", 1, "primary", {"class": "a"}))
        rows.append(_row(f"{prefix}{i}", version, "shadow", {"class": "a" if i < agree else "b"}))
    _post(client, rows)


def test_the_shadow_agreement_gate_reads_the_pairs_before_promotion(
    client: TestClient, model: str
) -> None:
    put_policy(client, MODEL, permissive_policy())
    promote(client, MODEL, 1, "production", status="applied")
    rule = gate("shadow_agreement", "shadow", min_agreement=0.9, min_pairs=200, window_hours=1)
    put_policy(client, MODEL, permissive_policy(rules=[rule]))
    _pairs(client, 2, 290, 300, "good")  # 96.7 %
    _pairs(client, 3, 250, 300, "bad")  # 83.3 %

    applied = promote(client, MODEL, 2, "production", status="applied")
    (row,) = applied["report"]["rules"]
    expected = shadow_agreement(
        rule="shadow", pairs=ShadowPairs(pairs=300, class_pairs=300, agreeing=290),
        min_agreement=0.9, min_pairs=200, max_mae=None, alpha=0.05, shadow_version=2,
    )  # fmt: skip
    assert row["passed"] is True
    assert row["reason"] == expected.reason
    assert row["observed"]["agreeing"] == 290
    assert row["observed"]["class_pairs"] == 300
    assert row["observed"]["agreement_lower_bound"] == pytest.approx(stats.beta.ppf(0.05, 290, 11))

    # Version 3 was paired with version 1's answers; production is now version 2, which
    # never answered those requests: no pairs against production, the gate fails.
    rejected = promote(client, MODEL, 3, "production", status="rejected")
    (row,) = rejected["report"]["rules"]
    assert row["passed"] is False
    assert "no request was scored by version 3" in row["reason"]


def test_a_shadow_that_disagrees_fails_the_gate(client: TestClient, model: str) -> None:
    put_policy(client, MODEL, permissive_policy())
    promote(client, MODEL, 1, "production", status="applied")
    rule = gate("shadow_agreement", "shadow", min_agreement=0.9, min_pairs=200)
    put_policy(client, MODEL, permissive_policy(rules=[rule]))
    _pairs(client, 3, 250, 300, "bad")
    rejected = promote(client, MODEL, 3, "production", status="rejected")
    (row,) = rejected["report"]["rules"]
    assert row["passed"] is False
    assert "agreement 250/300 = 83.3333%" in row["reason"]
    # Too few pairs fail too, saying how many are needed.
    _pairs(client, 2, 100, 100, "few")
    rejected = promote(client, MODEL, 2, "production", status="rejected")
    assert (
        "100 paired class predictions; the rule needs at least 200"
        in (rejected["report"]["rules"][0]["reason"])
    )


def test_a_shadow_agreement_rule_needs_something_to_check(client: TestClient, model: str) -> None:
    response = client.put(
        f"{API}/models/{MODEL}/policy",
        json=permissive_policy(rules=[{"kind": "shadow_agreement", "min_pairs": 10}]),
    )
    assert response.status_code == 422
    assert "min_agreement" in response.text


def _arm(version: int, n: int, errors: int, prefix: str, latency: float) -> list[dict[str, Any]]:
    return [
        {
            "request_key": f"{prefix}{i}",
            "version": version,
            "error": i < errors,
            "latency_ms": latency + (i % 50) * 0.1,
            "time": _at(),
        }
        for i in range(n)
    ]


def test_the_ab_report_tests_each_metric_per_arm(client: TestClient, model: str) -> None:
    _post(client, _arm(1, 3000, 30, "a", 20.0) + _arm(2, 3000, 120, "b", 20.0))
    response = client.get(f"{API}/models/{MODEL}/ab-report", params={"a": 1, "b": 2})
    assert response.status_code == 200, response.text
    report = response.json()
    arms = {arm["version"]: arm for arm in report["arms"]}
    assert arms[1]["requests"] == 3000
    assert arms[1]["errors"] == 30
    assert arms[2]["errors"] == 120
    metrics = {m["metric"]: m for m in report["metrics"]}
    errors = metrics["error_rate"]
    assert errors["a"] == pytest.approx(0.01)
    assert errors["b"] == pytest.approx(0.04)
    assert errors["effect"] == pytest.approx(0.03)
    assert errors["significant"] is True
    assert errors["better"] == "a"
    low, high = errors["confidence_interval"]
    assert 0 < low < 0.03 < high
    fixed_low, fixed_high = errors["fixed_confidence_interval"]
    assert low < fixed_low < 0.03 < fixed_high < high  # always-valid is wider
    pooled = 150 / 6000
    z = 0.03 / np.sqrt(pooled * (1 - pooled) * 2 / 3000)
    assert errors["fixed_p_value"] == pytest.approx(2 * stats.norm.sf(z))
    assert errors["p_value"] >= errors["fixed_p_value"]
    latency = metrics["latency"]
    assert latency["significant"] is False
    # Latencies are a bounded random sample per window: near 1/2, not exactly.
    assert latency["effect"] == pytest.approx(0.5, abs=0.05)
    assert "accuracy" not in metrics  # no labels

    # A small difference is not declared.
    _post(client, _arm(3, 3000, 33, "c", 20.0))
    near = client.get(f"{API}/models/{MODEL}/ab-report", params={"a": 1, "b": 3}).json()
    errors = {m["metric"]: m for m in near["metrics"]}["error_rate"]
    assert errors["significant"] is False
    assert errors["better"] is None


def test_the_ab_report_refuses_bad_input(client: TestClient, model: str) -> None:
    url = f"{API}/models/{MODEL}/ab-report"
    # a version compared with itself: a trivial answer, no difference (decision 0025)
    same = client.get(url, params={"a": 1, "b": 1})
    assert same.status_code == 200
    assert all(m["significant"] is not True for m in same.json()["metrics"])
    assert client.get(url, params={"a": 1, "b": 9}).status_code == 404
    assert client.get(url, params={"a": 1}).status_code == 422
    assert client.get(url, params={"a": 1, "b": 2, "alpha": 0.7}).status_code == 422
    assert client.get(url, params={"a": 1, "b": 2, "c": 3}).status_code == 400
    empty = client.get(url, params={"a": 1, "b": 2}).json()
    assert all(m["significant"] is False for m in empty["metrics"])
    assert all(m["p_value"] is None for m in empty["metrics"])
