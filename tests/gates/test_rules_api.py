"""Every rule kind through the API: ``POST /models/{m}/versions/{v}/evaluate?target=...``.

Each test puts a production version in place (under a permissive policy), then the policy
under test, and reads the dry-run report of a candidate. Significance p-values are
compared with scipy run in the test on the same data.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy import stats

from tests.support.api import (
    API,
    assert_problem,
    audit_events,
    create_model,
    metric,
    version_payload,
)
from tests.support.flows import (
    Team,
    approve,
    delete_stored_artifact,
    evaluate,
    gate,
    history,
    new_version,
    permissive_policy,
    production_version,
    promote,
    put_policy,
    read_version,
    rule,
)

MODEL = "fraud"


def payload(metrics: list[dict[str, Any]] | None = None, **overrides: Any) -> dict[str, Any]:
    body = version_payload()
    if metrics is not None:
        body["metrics"] = metrics
    body.update(overrides)
    return body


def start(client: TestClient, production: dict[str, Any] | None) -> int | None:
    """The model, and (unless ``production`` is None) a production version made from that
    payload under a permissive policy. Returns the production version."""
    create_model(client, MODEL, primary_metric="accuracy", primary_dataset="holdout")
    if production is None:
        return None
    put_policy(client, MODEL, permissive_policy())
    number = new_version(client, MODEL, payload=production)
    promote(client, MODEL, number, "production", status="applied")
    return number


def production_policy(*rules: dict[str, Any]) -> dict[str, Any]:
    """A policy with these production rules, applied at once when they pass."""
    return permissive_policy(rules=list(rules))


# threshold --------------------------------------------------------------------------


def test_threshold_higher_and_lower_is_better(client: TestClient) -> None:
    start(client, None)
    put_policy(
        client,
        MODEL,
        production_policy(
            gate("threshold", "acc ok", metric="accuracy", dataset="holdout", value=0.9),
            gate("threshold", "acc high", metric="accuracy", dataset="holdout", value=0.95),
            gate("threshold", "rmse ok", metric="rmse", dataset="holdout", value=0.3),
            gate("threshold", "rmse low", metric="rmse", dataset="holdout", value=0.2),
            gate("threshold", "other set", metric="accuracy", dataset="other", value=0.5),
            gate("threshold", "latency", metric="latency_p99_ms", dataset="holdout", value=50),
        ),
    )
    v = new_version(
        client,
        MODEL,
        payload=payload(
            [metric("accuracy", 0.91), metric("rmse", 0.25), metric("latency_p99_ms", 42.0)]
        ),
    )
    report = evaluate(client, MODEL, v)
    assert report["passed"] is False
    assert report["failed"] == ["acc high", "rmse low", "other set"]

    ok = rule(report, "acc ok")
    assert ok["passed"] is True
    assert ok["kind"] == "threshold"
    assert ok["threshold"] == 0.9
    assert ok["observed"]["value"] == pytest.approx(0.91)
    assert ok["observed"]["direction"] == "higher"
    assert rule(report, "acc high")["reason"] == (
        "accuracy 0.91 < 0.95 on dataset 'holdout' (higher is better)"
    )
    rmse_ok = rule(report, "rmse ok")
    assert rmse_ok["passed"] is True
    assert rmse_ok["observed"]["direction"] == "lower"
    assert rule(report, "rmse low")["reason"] == (
        "rmse 0.25 > 0.2 on dataset 'holdout' (lower is better)"
    )
    assert rule(report, "latency")["passed"] is True
    assert rule(report, "other set")["reason"] == "accuracy missing on dataset 'other'"


def test_a_policy_direction_overrides_the_catalogue(client: TestClient) -> None:
    start(client, None)
    put_policy(
        client,
        MODEL,
        production_policy(
            gate(
                "threshold",
                "t",
                metric="accuracy",
                dataset="holdout",
                value=0.95,
                direction="lower",
            ),
        ),
    )
    v = new_version(client, MODEL, payload=payload([metric("accuracy", 0.91)]))
    row = rule(evaluate(client, MODEL, v), "t")
    assert row["passed"] is True
    assert row["observed"]["direction"] == "lower"


def test_undefined_metric_fails_the_threshold_with_the_reason(client: TestClient) -> None:
    start(client, None)
    put_policy(
        client,
        MODEL,
        production_policy(
            gate("threshold", "precision", metric="precision", dataset="holdout", value=0.5),
            gate("threshold", "recall", metric="recall", dataset="holdout", value=0.5),
        ),
    )
    # 100 negatives and 20 positives, and the model never predicts the positive class.
    body = payload([], confusion_matrices=[{"dataset": "holdout", "matrix": [[100, 0], [20, 0]]}])
    v = new_version(client, MODEL, payload=body)
    stored = {m["name"]: m for m in read_version(client, MODEL, v)["metrics"]}
    assert stored["precision"]["value"] is None
    assert "no positive predictions" in stored["precision"]["undefined_reason"]
    assert stored["recall"]["value"] == 0.0

    report = evaluate(client, MODEL, v)
    precision = rule(report, "precision")
    assert precision["passed"] is False
    assert precision["observed"]["value"] is None  # not 0, not NaN
    assert precision["observed"]["undefined_reason"].startswith("precision is undefined")
    assert "undefined" in precision["reason"]
    assert "no positive predictions" in precision["reason"]
    recall = rule(report, "recall")
    assert recall["passed"] is False
    assert recall["observed"]["value"] == 0.0
    assert "undefined" not in recall["reason"]


def test_undefined_metric_fails_no_regression_with_the_reason(client: TestClient) -> None:
    start(
        client,
        payload([], confusion_matrices=[{"dataset": "holdout", "matrix": [[80, 20], [10, 90]]}]),
    )
    put_policy(
        client,
        MODEL,
        production_policy(
            gate("no_regression", "precision", metric="precision", dataset="holdout", delta=-0.5),
        ),
    )
    body = payload([], confusion_matrices=[{"dataset": "holdout", "matrix": [[100, 0], [20, 0]]}])
    row = rule(evaluate(client, MODEL, new_version(client, MODEL, payload=body)), "precision")
    assert row["passed"] is False
    assert row["observed"]["candidate"] is None
    assert "undefined" in row["reason"]
    assert "no positive predictions" in row["reason"]


# no_regression ----------------------------------------------------------------------


def test_no_regression_delta_and_direction(client: TestClient) -> None:
    start(client, payload([metric("accuracy", 0.90), metric("rmse", 0.30)]))
    put_policy(
        client,
        MODEL,
        production_policy(
            gate("no_regression", "gain", delta=0.005),
            gate("no_regression", "big gain", delta=0.02),
            gate("no_regression", "rmse", metric="rmse", dataset="holdout", delta=0.02),
            gate("no_regression", "rmse strict", metric="rmse", dataset="holdout", delta=0.1),
        ),
    )
    v = new_version(
        client, MODEL, payload=payload([metric("accuracy", 0.91), metric("rmse", 0.25)])
    )
    report = evaluate(client, MODEL, v)
    assert report["evaluated_against"] == 1
    assert report["failed"] == ["big gain", "rmse strict"]
    gain = rule(report, "gain")
    assert gain["observed"]["candidate"] == pytest.approx(0.91)
    assert gain["observed"]["production"] == pytest.approx(0.90)
    assert gain["threshold"] == pytest.approx(0.905)
    assert gain["delta"] == 0.005
    big = rule(report, "big gain")
    assert big["threshold"] == pytest.approx(0.92)
    assert "0.91 < 0.92" in big["reason"]
    assert rule(report, "rmse")["threshold"] == pytest.approx(0.28)  # 0.25 <= 0.30 - 0.02
    assert rule(report, "rmse strict")["threshold"] == pytest.approx(0.20)


def test_no_regression_negative_delta_tolerates_a_loss(client: TestClient) -> None:
    start(client, payload([metric("accuracy", 0.90)]))
    put_policy(
        client,
        MODEL,
        production_policy(
            gate("no_regression", "tolerant", delta=-0.02),
            gate("no_regression", "strict", delta=0.0),
        ),
    )
    v = new_version(client, MODEL, payload=payload([metric("accuracy", 0.885)]))
    report = evaluate(client, MODEL, v)
    assert rule(report, "tolerant")["passed"] is True
    assert rule(report, "tolerant")["threshold"] == pytest.approx(0.88)
    assert rule(report, "strict")["passed"] is False
    worse = new_version(client, MODEL, payload=payload([metric("accuracy", 0.87)]))
    assert rule(evaluate(client, MODEL, worse), "tolerant")["passed"] is False


def test_no_regression_without_production_follows_the_policy(client: TestClient) -> None:
    start(client, None)
    put_policy(
        client,
        MODEL,
        production_policy(
            gate("no_regression", "lenient", when_no_production="pass"),
            gate("no_regression", "strict", when_no_production="fail"),
        ),
    )
    v = new_version(client, MODEL)
    report = evaluate(client, MODEL, v)
    assert report["evaluated_against"] is None
    assert rule(report, "lenient")["passed"] is True
    strict = rule(report, "strict")
    assert strict["passed"] is False
    assert "no production model" in strict["reason"]


def test_no_regression_compares_on_the_same_dataset_only(client: TestClient) -> None:
    start(client, payload([metric("accuracy", 0.90)]))
    put_policy(
        client,
        MODEL,
        production_policy(
            gate("no_regression", "holdout"),
            gate("no_regression", "fresh", metric="accuracy", dataset="fresh"),
        ),
    )
    # Better on another dataset, worse on the one production was measured on.
    v = new_version(
        client,
        MODEL,
        payload=payload([metric("accuracy", 0.85), metric("accuracy", 0.99, "fresh")]),
    )
    report = evaluate(client, MODEL, v)
    holdout = rule(report, "holdout")
    assert holdout["passed"] is False
    assert holdout["observed"]["candidate"] == pytest.approx(0.85)
    fresh = rule(report, "fresh")
    assert fresh["passed"] is False
    assert fresh["reason"] == "production accuracy missing on dataset 'fresh'"


def test_no_regression_on_a_primary_metric_of_unknown_direction_fails(
    client: TestClient, team: Team
) -> None:
    """The default policy compares the primary metric; when nothing says which way is
    better, the gate fails and says so rather than guess."""
    create_model(client, MODEL, primary_metric="team_score", primary_dataset="holdout")
    first = new_version(client, MODEL, payload=payload([metric("team_score", 5.0)]))
    promote(client, MODEL, first, "staging", headers=team.submitter, status="applied")
    refused = promote(client, MODEL, first, "production", headers=team.submitter, status="rejected")
    assert refused["report"]["policy_revision"] == 0
    row = rule(refused["report"], "no_regression")
    assert row["passed"] is False, row
    assert "direction of metric 'team_score' is unknown" in row["reason"]
    # A policy that compares it without a direction is refused on write, for the same reason.
    response = client.put(
        f"{API}/models/{MODEL}/policy", json=production_policy({"kind": "no_regression"})
    )
    assert "team_score" in assert_problem(response, 422, "invalid-policy")["detail"]
    # Saying which way is better fixes it: the default rules, with the direction.
    document = client.get(f"{API}/models/{MODEL}/policy").json()["policy"]
    document["metric_directions"] = {"team_score": "lower"}
    put_policy(client, MODEL, document)
    pending = promote(
        client, MODEL, first, "production", headers=team.submitter, status="pending_approval"
    )
    approve(client, pending["id"], headers=team.reviewer)
    better = new_version(client, MODEL, payload=payload([metric("team_score", 1.0)]))
    row = rule(evaluate(client, MODEL, better), "no_regression")
    assert row["passed"] is True, row
    assert row["observed"]["direction"] == "lower"


# significance -----------------------------------------------------------------------


def correctness(n: int, right: set[int]) -> list[bool]:
    return [i in right for i in range(n)]


def significance_data() -> dict[str, Any]:
    """Seeded evidence for production and a candidate that is truly better."""
    rng = np.random.default_rng(20261126)
    # holdout: 200 examples; production right on 0..159; the candidate also on 160..179
    # but wrong on 0..5 (b = 20, c = 6: the normal approximation).
    prod_big = correctness(200, set(range(160)))
    cand_big = correctness(200, set(range(6, 180)))
    # small: 40 examples, b = 8, c = 2 (exact binomial).
    prod_small = correctness(40, set(range(25)))
    cand_small = correctness(40, set(range(2, 33)))
    prod_loss = rng.gamma(2.0, 0.5, size=120)
    cand_loss = np.clip(prod_loss - 0.08 + rng.normal(0, 0.2, size=120), 0, None)
    return {
        "prod_big": prod_big,
        "cand_big": cand_big,
        "prod_small": prod_small,
        "cand_small": cand_small,
        "prod_loss": [float(x) for x in prod_loss],
        "cand_loss": [float(x) for x in cand_loss],
        "prod_counts": (166, 200),
        "cand_counts": (180, 200),
    }


def evidence(data: dict[str, Any], who: str) -> list[dict[str, Any]]:
    successes, total = data[f"{who}_counts"]
    return [
        {"kind": "correctness", "dataset": "holdout", "values": data[f"{who}_big"]},
        {"kind": "correctness", "dataset": "small", "values": data[f"{who}_small"]},
        {"kind": "counts", "dataset": "holdout", "successes": successes, "total": total},
        {"kind": "losses", "dataset": "holdout", "values": data[f"{who}_loss"]},
    ]


def mcnemar_wald_p(cand: list[bool], prod: list[bool], delta: float) -> float:
    c_arr, p_arr = np.asarray(cand), np.asarray(prod)
    n = c_arr.size
    b = int(np.sum(c_arr & ~p_arr))
    c = int(np.sum(~c_arr & p_arr))
    d = (b - c) / n
    se = math.sqrt(((b + c) / n - d * d) / n)
    return float(stats.norm.sf((d - delta) / se))


def test_significance_tests_match_scipy(client: TestClient) -> None:
    data = significance_data()
    start(client, payload([metric("accuracy", 0.83)], evidence=evidence(data, "prod")))
    put_policy(
        client,
        MODEL,
        production_policy(
            gate("significance", "mcnemar", test="mcnemar", dataset="holdout"),
            gate("significance", "mcnemar delta", test="mcnemar", dataset="holdout", delta=0.02),
            gate("significance", "mcnemar exact", test="mcnemar", dataset="small"),
            gate("significance", "two proportion", test="two_proportion", dataset="holdout"),
            gate("significance", "counts from correctness", test="two_proportion", dataset="small"),
            gate("significance", "paired t", test="paired_t", dataset="holdout", delta=0.01),
            gate("significance", "wilcoxon", test="wilcoxon", dataset="holdout"),
            gate("significance", "bootstrap", test="bootstrap", dataset="holdout", seed=7),
            gate("significance", "too few", test="mcnemar", dataset="small", min_samples=100),
            gate("significance", "no evidence", test="paired_t", dataset="small"),
        ),
    )
    v = new_version(
        client, MODEL, payload=payload([metric("accuracy", 0.9)], evidence=evidence(data, "cand"))
    )
    report = evaluate(client, MODEL, v)

    p = {r["rule"]: r["p_value"] for r in report["rules"]}
    big_p = mcnemar_wald_p(data["cand_big"], data["prod_big"], 0.0)
    assert p["mcnemar"] == pytest.approx(big_p, rel=1e-9)
    assert rule(report, "mcnemar")["observed"]["method"] == "normal_approximation"
    assert rule(report, "mcnemar")["observed"]["b"] == 20
    assert rule(report, "mcnemar")["observed"]["c"] == 6
    assert p["mcnemar delta"] == pytest.approx(
        mcnemar_wald_p(data["cand_big"], data["prod_big"], 0.02), rel=1e-9
    )
    assert p["mcnemar exact"] == pytest.approx(
        stats.binomtest(8, 10, 0.5, alternative="greater").pvalue, rel=1e-9
    )
    assert rule(report, "mcnemar exact")["observed"]["method"] == "exact_binomial"

    def pooled_p(s1: int, n1: int, s2: int, n2: int) -> float:
        rate = (s1 + s2) / (n1 + n2)
        se = math.sqrt(rate * (1 - rate) * (1 / n1 + 1 / n2))
        return float(stats.norm.sf((s1 / n1 - s2 / n2) / se))

    assert p["two proportion"] == pytest.approx(pooled_p(180, 200, 166, 200), rel=1e-9)
    # Without counts on "small", they follow from the correctness evidence: 31/40 vs 25/40.
    assert p["counts from correctness"] == pytest.approx(pooled_p(31, 40, 25, 40), rel=1e-9)

    d = np.asarray(data["prod_loss"]) - np.asarray(data["cand_loss"])
    t = stats.ttest_1samp(d - 0.01, 0.0, alternative="greater")
    assert p["paired t"] == pytest.approx(float(t.pvalue), rel=1e-9)
    assert rule(report, "paired t")["observed"]["statistic"] == pytest.approx(float(t.statistic))
    w = stats.wilcoxon(d, alternative="greater")
    assert p["wilcoxon"] == pytest.approx(float(w.pvalue), rel=1e-9)
    # The documented bootstrap: 9,999 resamples from default_rng(seed), p = (1 + #<=delta)/10,000.
    rng = np.random.default_rng(7)
    means = d[rng.integers(0, d.size, size=(9999, d.size))].mean(axis=1)
    assert p["bootstrap"] == pytest.approx((1 + int(np.sum(means <= 0.0))) / 10000, rel=1e-12)

    for name in ("mcnemar", "mcnemar exact", "two proportion", "paired t", "wilcoxon", "bootstrap"):
        row = rule(report, name)
        assert row["passed"] is (row["p_value"] < 0.05), row
        assert row["kind"] == "significance"
    assert rule(report, "mcnemar")["passed"] is True
    assert rule(report, "mcnemar exact")["passed"] is False  # p = 0.0547
    assert "p = 0.0547 >= alpha 0.05" in rule(report, "mcnemar exact")["reason"]
    too_few = rule(report, "too few")
    assert too_few["passed"] is False
    assert "40 examples" in too_few["reason"]
    assert "at least 100" in too_few["reason"]
    missing = rule(report, "no evidence")
    assert missing["passed"] is False
    assert "no evidence from candidate or production" in missing["reason"]


def test_significance_without_production_follows_the_policy(client: TestClient) -> None:
    start(client, None)
    put_policy(
        client,
        MODEL,
        production_policy(
            gate("significance", "pass", test="mcnemar", dataset="holdout"),
            gate(
                "significance", "fail", test="mcnemar", dataset="holdout", when_no_production="fail"
            ),
        ),
    )
    report = evaluate(client, MODEL, new_version(client, MODEL))
    assert rule(report, "pass")["passed"] is True
    assert rule(report, "fail")["passed"] is False
    assert "no production version" in rule(report, "fail")["reason"]


# fairness ---------------------------------------------------------------------------


def sliced(values: dict[str, float]) -> list[dict[str, Any]]:
    return [metric("accuracy", 0.9)] + [
        metric("accuracy", value, slice=name) for name, value in values.items()
    ]


def test_fairness_floor_gap_and_slice_regression(client: TestClient) -> None:
    start(client, payload(sliced({"DE": 0.90, "FR": 0.88, "US": 0.86})))
    put_policy(
        client,
        MODEL,
        production_policy(
            gate(
                "fairness",
                "fair",
                metric="accuracy",
                dataset="holdout",
                floor=0.8,
                max_gap=0.05,
                max_slice_regression=0.03,
            ),
        ),
    )
    good = new_version(client, MODEL, payload=payload(sliced({"DE": 0.91, "FR": 0.89, "US": 0.87})))
    row = rule(evaluate(client, MODEL, good), "fair")
    assert row["passed"] is True, row
    assert row["observed"]["gap"] == pytest.approx(0.04)
    assert row["observed"]["slices"] == {"DE": 0.91, "FR": 0.89, "US": 0.87}

    bad = new_version(client, MODEL, payload=payload(sliced({"DE": 0.95, "FR": 0.70, "US": 0.88})))
    row = rule(evaluate(client, MODEL, bad), "fair")
    assert row["passed"] is False
    assert row["observed"]["below_floor"] == ["FR"]
    assert row["observed"]["worst_slice"] == "FR"
    assert row["observed"]["regressed_slices"] == ["FR"]
    assert "slice 'FR' accuracy 0.7 is below the floor 0.8" in row["reason"]
    assert "gap 0.25" in row["reason"]
    assert "went from 0.88 (production) to 0.7" in row["reason"]

    dropped = new_version(client, MODEL, payload=payload(sliced({"DE": 0.91, "FR": 0.89})))
    row = rule(evaluate(client, MODEL, dropped), "fair")
    assert row["passed"] is False
    assert "'US'" in row["reason"]


# lineage, schema, artifact ----------------------------------------------------------


def test_lineage_complete(client: TestClient) -> None:
    start(client, None)
    put_policy(
        client,
        MODEL,
        production_policy(
            gate("lineage_complete", "lineage"),
            gate("lineage_complete", "ci", fields=["ci_run_url"]),
        ),
    )
    body = payload()
    del body["lineage"]["data_version"]
    body["lineage"]["environment"] = "   "
    del body["lineage"]["ci_run_url"]
    report = evaluate(client, MODEL, new_version(client, MODEL, payload=body))
    lineage = rule(report, "lineage")
    assert lineage["passed"] is False
    assert lineage["observed"]["missing"] == ["data_version", "environment"]
    assert lineage["reason"] == "lineage is missing 'data_version', 'environment'"
    assert rule(report, "ci")["passed"] is False
    assert rule(evaluate(client, MODEL, new_version(client, MODEL)), "lineage")["passed"] is True


def test_schema_compatible(client: TestClient) -> None:
    start(client, payload())  # amount, country in {DE, FR, US}, age (nullable)
    put_policy(client, MODEL, production_policy(gate("schema_compatible", "schema")))
    same = new_version(client, MODEL)
    assert rule(evaluate(client, MODEL, same), "schema")["passed"] is True

    widened = payload()
    widened["signature"]["inputs"][1]["categories"] = ["DE", "FR", "US", "IT"]
    widened["signature"]["inputs"].append({"name": "channel", "type": "string", "required": False})
    widened_version = new_version(client, MODEL, payload=widened)
    assert rule(evaluate(client, MODEL, widened_version), "schema")["passed"] is True

    broken = payload()
    broken["signature"]["inputs"] = [
        {"name": "amount", "type": "float"},
        {"name": "country", "type": "categorical", "categories": ["DE", "FR"]},
    ]
    row = rule(evaluate(client, MODEL, new_version(client, MODEL, payload=broken)), "schema")
    assert row["passed"] is False
    assert "input column 'age' was removed" in row["observed"]["problems"]
    narrowed = "input column 'country' no longer accepts categories ['US']"
    assert narrowed in row["observed"]["problems"]
    assert "'age' was removed" in row["reason"]
    assert "['US']" in row["reason"]


def test_artifact_intact_fails_when_the_stored_object_is_gone(
    client: TestClient, request: pytest.FixtureRequest
) -> None:
    start(client, None)
    put_policy(client, MODEL, production_policy(gate("artifact_intact", "artifact")))
    v = new_version(client, MODEL)
    assert rule(evaluate(client, MODEL, v), "artifact")["passed"] is True
    deep = production_policy(gate("artifact_intact", "artifact", deep=True))
    put_policy(client, MODEL, deep)
    row = rule(evaluate(client, MODEL, v), "artifact")
    assert row["passed"] is True
    sha = read_version(client, MODEL, v)["artifact"]["sha256"]
    assert row["observed"]["sha256_observed"] == sha

    delete_stored_artifact(request, sha)
    row = rule(evaluate(client, MODEL, v), "artifact")
    assert row["passed"] is False
    assert row["observed"]["present"] is False
    assert "missing from storage" in row["reason"]

    no_upload = new_version(client, MODEL, artifact=False)
    row = rule(evaluate(client, MODEL, no_upload), "artifact")
    assert row["passed"] is False
    assert "no artifact has been uploaded" in row["reason"]


# the dry run ------------------------------------------------------------------------


def test_dry_run_changes_nothing_but_is_audited(client: TestClient) -> None:
    first = start(client, payload([metric("accuracy", 0.90)]))
    put_policy(client, MODEL, production_policy(gate("no_regression", "nr")))
    v = new_version(client, MODEL, payload=payload([metric("accuracy", 0.95)]))
    before = read_version(client, MODEL, v)
    report = evaluate(client, MODEL, v)
    assert report["passed"] is True
    assert report["model"] == MODEL
    assert report["version"] == v
    assert report["target"] == "production"
    assert report["policy_revision"] == 2
    assert len(report["digest"]) == 64

    assert before["stage"] == "candidate"
    assert read_version(client, MODEL, v) == before
    assert production_version(client, MODEL) == first
    requests = client.get(f"{API}/promotions", params={"model": MODEL}).json()["items"]
    assert [p["version"] for p in requests] == [first]  # only the one start() made
    assert len(history(client, MODEL)) == 1
    events = audit_events(client, model=MODEL, action="gates.evaluated")
    assert len(events) == 1
    event = events[0]
    assert event["version"] == v
    assert event["to_stage"] == "production"
    assert event["details"]["report_digest"] == report["digest"]
    assert event["details"]["passed"] is True
    assert event["details"]["policy_revision"] == 2

    staging = evaluate(client, MODEL, v, target="staging")
    assert staging["target"] == "staging"
    bad = client.post(f"{API}/models/{MODEL}/versions/{v}/evaluate", params={"target": "archived"})
    assert_problem(bad, 422)
