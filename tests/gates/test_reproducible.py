"""The ``reproducible`` rule, pure and through the API, with the lineage fingerprint and
reproduction evidence it relies on (issue 14, item 13).

The rule has no statistics (it compares stated digests and metric values with stated
tolerances), so there is no Monte Carlo test: every decision is checked by hand.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.gates.facts import ReproductionFact
from app.gates.rules.reproducible import Tolerance, reproducible
from tests.support.api import (
    API,
    all_items,
    assert_problem,
    audit_events,
    create_model,
    full_lineage,
    version_payload,
)
from tests.support.flows import (
    evaluate,
    gate,
    new_version,
    permissive_policy,
    put_policy,
    read_version,
    rule,
    upload_artifact,
)

DIGEST = "ab" * 32
OTHER = "cd" * 32
ACC = ("accuracy", "holdout", "")


def repro(id_: int, sha: str | None = None, **metrics: float) -> ReproductionFact:
    return ReproductionFact(
        id=id_,
        artifact_sha256=sha,
        metrics={(name, "holdout", ""): value for name, value in metrics.items()},
    )


def check(
    reproductions: list[ReproductionFact],
    tolerances: list[Tolerance] | None = None,
    recorded: Mapping[tuple[str, str, str], float | None] | None = None,
    sha: str | None = DIGEST,
) -> Any:
    return reproducible(
        rule="r",
        recorded_sha256=sha,
        recorded_metrics=recorded if recorded is not None else {ACC: 0.91},
        tolerances=tolerances or [],
        reproductions=reproductions,
    )


def test_no_reproduction_fails() -> None:
    result = check([])
    assert not result.passed
    assert result.reason == "no reproduction of this version was submitted"
    assert result.observed["reproductions"] == 0


def test_an_identical_digest_passes_without_metrics() -> None:
    result = check([repro(7, DIGEST)])
    assert result.passed
    assert result.reason == "reproduction 7: artifact sha256 identical"
    assert result.observed["matched"] == 7
    assert result.observed["compared"][0]["artifact"] == {
        "recorded": DIGEST,
        "reproduced": DIGEST,
        "identical": True,
    }


def test_another_digest_fails_when_no_metric_is_named() -> None:
    result = check([repro(7, OTHER, accuracy=0.91)])
    assert not result.passed
    assert "artifact sha256 differs" in result.reason
    assert result.observed["compared"][0]["metrics_within"] is False


def test_metrics_within_tolerance_pass_and_the_difference_is_reported() -> None:
    tol = [Tolerance("accuracy", "holdout", "", 0.005)]
    result = check([repro(3, OTHER, accuracy=0.913)], tol)
    assert result.passed
    assert result.reason == "reproduction 3: all 1 named metric(s) within tolerance"
    row = result.observed["compared"][0]["metrics"][0]
    assert row["recorded"] == 0.91
    assert row["reproduced"] == 0.913
    assert row["difference"] == pytest.approx(0.003)
    assert row["within"] is True


def test_a_difference_equal_to_the_tolerance_passes_despite_rounding() -> None:
    # |0.92 - 0.91| is 0.010000000000000009 in floating point.
    tol = [Tolerance("accuracy", "holdout", "", 0.01)]
    assert check([repro(1, None, accuracy=0.92)], tol).passed


def test_any_metric_outside_or_missing_fails_that_reproduction() -> None:
    tol = [Tolerance("accuracy", "holdout", "", 0.005), Tolerance("f1", "holdout", "", 0.01)]
    recorded = {ACC: 0.91, ("f1", "holdout", ""): 0.5}
    outside = check([repro(1, None, accuracy=0.93, f1=0.5)], tol, recorded)
    assert not outside.passed
    assert "accuracy on 'holdout' differs by 0.02 > 0.005" in outside.reason
    missing = check([repro(2, None, accuracy=0.91)], tol, recorded)
    assert not missing.passed
    assert "f1 on 'holdout' missing from the reproduction" in missing.reason
    unrecorded = check([repro(3, None, accuracy=0.91, f1=0.5)], tol, {ACC: 0.91})
    assert "f1 on 'holdout' missing from the version" in unrecorded.reason


def test_the_newest_matching_reproduction_decides_and_every_one_is_reported() -> None:
    tol = [Tolerance("accuracy", "holdout", "", 0.001)]
    result = check([repro(9, OTHER, accuracy=0.95), repro(8, DIGEST), repro(7, DIGEST)], tol)
    assert result.passed
    assert result.observed["matched"] == 8
    assert [c["id"] for c in result.observed["compared"]] == [9, 8]


def test_a_version_without_a_recorded_digest_needs_metrics() -> None:
    result = check([repro(1, DIGEST)], sha=None)
    assert not result.passed
    assert "no recorded artifact digest" in result.reason


# Through the API ----------------------------------------------------------------------


MODEL = "fraud"


def fingerprint(lineage: dict[str, Any]) -> str:
    fields = ("code_commit", "data_version", "feature_pipeline_version", "environment")
    spec = {f: lineage.get(f) for f in (*fields, "hyperparameters", "seed")}
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def test_versions_show_their_fingerprint_and_are_found_by_it(client: TestClient) -> None:
    create_model(client, MODEL)
    same = full_lineage(ci_run_id="1")
    rerun = full_lineage(ci_run_id="2", training_run_id="run-456")
    other = full_lineage(seed=7)
    numbers = [
        new_version(client, MODEL, payload=version_payload(lineage=lineage), artifact=False)
        for lineage in (same, other, rerun)
    ]
    expected = fingerprint(same)
    assert read_version(client, MODEL, numbers[0])["lineage_fingerprint"] == expected
    assert read_version(client, MODEL, numbers[2])["lineage_fingerprint"] == expected
    assert read_version(client, MODEL, numbers[1])["lineage_fingerprint"] == fingerprint(other)

    found = all_items(client, f"/models/{MODEL}/versions", fingerprint=expected)
    assert [v["version"] for v in found] == [numbers[2], numbers[0]]
    by_metric = all_items(
        client,
        f"/models/{MODEL}/versions",
        fingerprint=expected,
        order_by="metric:accuracy",
        dataset="holdout",
    )
    assert sorted(v["version"] for v in by_metric) == [numbers[0], numbers[2]]
    assert all_items(client, f"/models/{MODEL}/versions", fingerprint="0" * 64) == []
    bad = client.get(f"{API}/models/{MODEL}/versions", params={"fingerprint": "nope"})
    assert_problem(bad, 422)


def reproduce(client: TestClient, version: int, **body: Any) -> Any:
    return client.post(f"{API}/models/{MODEL}/versions/{version}/reproductions", json=body)


def test_reproductions_feed_the_reproducible_gate(client: TestClient) -> None:
    create_model(client, MODEL)
    put_policy(
        client,
        MODEL,
        permissive_policy(
            rules=[
                gate("reproducible", "digest"),
                gate(
                    "reproducible",
                    "metrics",
                    metrics=[{"name": "accuracy", "dataset": "holdout", "tolerance": 0.005}],
                ),
            ]
        ),
    )
    version = new_version(client, MODEL, accuracy=0.91, artifact=False)
    digest = upload_artifact(client, MODEL, version, b"model bytes")
    report = evaluate(client, MODEL, version)
    assert rule(report, "digest")["reason"] == "no reproduction of this version was submitted"

    # A re-run with other bytes but close metrics.
    close = reproduce(
        client,
        version,
        artifact_sha256=hashlib.sha256(b"other bytes").hexdigest(),
        metrics=[{"name": "accuracy", "dataset": "holdout", "value": 0.912}],
        run_url="https://ci.example.com/runs/2",
    )
    assert close.status_code == 201, close.text
    assert close.json()["artifact_identical"] is False
    report = evaluate(client, MODEL, version)
    assert rule(report, "digest")["passed"] is False
    metrics_row = rule(report, "metrics")
    assert metrics_row["passed"] is True
    compared = metrics_row["observed"]["compared"][0]["metrics"][0]
    assert compared["recorded"] == pytest.approx(0.91)
    assert compared["reproduced"] == pytest.approx(0.912)
    assert compared["difference"] == pytest.approx(0.002)

    # A re-run that reproduced the bytes exactly.
    exact = reproduce(client, version, artifact_sha256=digest)
    assert exact.status_code == 201, exact.text
    assert exact.json()["artifact_identical"] is True
    report = evaluate(client, MODEL, version)
    assert report["passed"] is True
    assert rule(report, "digest")["observed"]["matched"] == exact.json()["id"]

    listed = all_items(client, f"/models/{MODEL}/versions/{version}/reproductions")
    assert [r["id"] for r in listed] == [exact.json()["id"], close.json()["id"]]
    events = audit_events(client, model=MODEL, action="reproduction.recorded")
    assert len(events) == 2
    assert (
        events[-1]["details"]["artifact_identical"] is True
        or events[0]["details"]["artifact_identical"] is True
    )


def test_a_far_rerun_fails_and_bad_reproductions_are_refused(client: TestClient) -> None:
    create_model(client, MODEL)
    put_policy(
        client,
        MODEL,
        permissive_policy(
            rules=[
                gate(
                    "reproducible",
                    "metrics",
                    metrics=[{"name": "accuracy", "dataset": "holdout", "tolerance": 0.005}],
                )
            ]
        ),
    )
    lineage = full_lineage()
    version = new_version(client, MODEL, payload=version_payload(0.91, lineage=lineage))
    far = reproduce(
        client,
        version,
        metrics=[{"name": "accuracy", "dataset": "holdout", "value": 0.85}],
        lineage=lineage,
    )
    assert far.status_code == 201, far.text
    assert far.json()["lineage_fingerprint"] == fingerprint(lineage)
    row = rule(evaluate(client, MODEL, version), "metrics")
    assert row["passed"] is False
    assert "differs by 0.06 > 0.005" in row["reason"]

    other_spec = reproduce(
        client,
        version,
        metrics=[{"name": "accuracy", "dataset": "holdout", "value": 0.91}],
        lineage=full_lineage(seed=43),
    )
    # another training specification: a mismatch with the stored version (409, decision 0025)
    assert_problem(other_spec, 409, "state-mismatch")
    assert_problem(reproduce(client, version), 422)
    assert_problem(reproduce(client, version, artifact_sha256="XYZ"), 422)
    twice = [{"name": "accuracy", "dataset": "holdout", "value": 0.9}] * 2
    assert_problem(reproduce(client, version, metrics=twice), 422)
    assert_problem(reproduce(client, 99, artifact_sha256=DIGEST), 404)
    bad_rule = client.put(
        f"{API}/models/{MODEL}/policy",
        json=permissive_policy(
            rules=[
                gate(
                    "reproducible",
                    "x",
                    metrics=[{"name": "accuracy", "dataset": "holdout", "tolerance": -1}],
                )
            ]
        ),
    )
    assert_problem(bad_rule, 422)
    assert len(all_items(client, f"/models/{MODEL}/versions/{version}/reproductions")) == 1
