"""Data contracts (issue 14, item 12): a dataset checked against a version's signature and
reference profile, stored as a report, and the ``data_contract`` gate reading the latest
report of a dataset. No statistics are involved (counts and rates compared with bounds),
so the checks are verified by hand-counted cases, not Monte Carlo runs."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from app.datachecks.contract import Bounds, check
from app.drift.profiles import observe
from tests.support.api import API, all_items, assert_problem, audit_events, create_model
from tests.support.flows import evaluate, gate, new_version, permissive_policy, put_policy, rule

MODEL = "fraud"
SIGNATURE: list[dict[str, Any]] = [
    {"name": "amount", "type": "float"},
    {"name": "country", "type": "categorical", "categories": ["DE", "FR", "US"]},
    {"name": "age", "type": "integer", "nullable": True},
]
BOUNDS = Bounds(max_null_rate=0.25, min_row_ratio=0.5, max_row_ratio=2.0)


def clean(rows: int = 8) -> dict[str, list[Any]]:
    return {
        "amount": [float(i) + 0.5 for i in range(rows)],
        "country": (["DE", "FR", "US", "DE"] * rows)[:rows],
        "age": [30 + i if i % 4 else None for i in range(rows)],
    }


def run(sample: dict[str, list[Any]], reference_rows: float | None = 8) -> dict[str, Any]:
    columns = {name: observe(name, values) for name, values in sample.items()}
    checks = check(
        signature_inputs=SIGNATURE, columns=columns, reference_rows=reference_rows, bounds=BOUNDS
    )
    return {f"{c.check}:{c.column}": c for c in checks}


def test_a_clean_dataset_passes_every_check() -> None:
    found = run(clean())
    assert all(c.passed for c in found.values()), {k: c.reason for k, c in found.items()}
    assert found["nulls:age"].observed["null_rate"] == 0.25
    assert found["rows:None"].observed["accepted"] == [4.0, 16.0]


def test_each_broken_property_fails_its_own_check() -> None:
    sample = clean()
    del sample["amount"]
    sample["country"][0] = "XX"
    sample["country"][1] = "XX"
    sample["age"][1] = None  # 3 nulls of 8 > 0.25
    found = run(sample)
    assert found["required:amount"].passed is False
    assert found["categories:country"].passed is False
    assert found["categories:country"].observed["outside"] == {"XX": 2.0}
    assert found["nulls:age"].passed is False
    retyped = clean()
    retyped["age"] = ["thirty"] * 8
    assert run(retyped)["type:age"].passed is False
    nulls = clean()
    nulls["amount"][3] = None
    assert run(nulls)["nulls:amount"].passed is False  # not nullable: one null fails


def test_the_row_count_is_checked_against_the_reference_or_said_to_be_unchecked() -> None:
    assert run(clean(3), reference_rows=8)["rows:None"].passed is False
    assert run(clean(16), reference_rows=8)["rows:None"].passed is True
    assert run(clean(17), reference_rows=8)["rows:None"].passed is False
    unchecked = run(clean(3), reference_rows=None)["rows:None"]
    assert unchecked.passed is None
    assert "not checked" in unchecked.reason


def post_check(client: TestClient, version: int, **body: Any) -> Any:
    return client.post(f"{API}/models/{MODEL}/versions/{version}/data-checks", json=body)


def test_data_checks_are_stored_and_gate_on_the_latest_of_a_dataset(client: TestClient) -> None:
    create_model(client, MODEL)
    put_policy(
        client, MODEL, permissive_policy(rules=[gate("data_contract", "eval", dataset="eval")])
    )
    version = new_version(client, MODEL)
    reference = client.post(
        f"{API}/models/{MODEL}/versions/{version}/reference-profile", json={"sample": clean(8)}
    )
    assert reference.status_code in (200, 201), reference.text
    assert rule(evaluate(client, MODEL, version), "eval")["passed"] is False

    broken = clean(8)
    broken["country"][0] = "XX"
    bad = post_check(client, version, dataset="eval", sample=broken, max_null_rate=0.25)
    assert bad.status_code == 201, bad.text
    assert bad.json()["passed"] is False
    assert bad.json()["failed"] == ["categories:country"]
    row = rule(evaluate(client, MODEL, version), "eval")
    assert row["passed"] is False
    assert row["observed"]["failed"] == ["categories:country"]

    good = post_check(client, version, dataset="eval", sample=clean(8), max_null_rate=0.25)
    assert good.json()["passed"] is True
    other = post_check(client, version, dataset="other", sample=clean(2), max_null_rate=0.5)
    assert other.json()["failed"] == ["rows"]
    row = rule(evaluate(client, MODEL, version), "eval")
    assert row["passed"] is True
    assert row["observed"]["data_check"] == good.json()["id"]

    listed = all_items(client, f"/models/{MODEL}/versions/{version}/data-checks", dataset="eval")
    assert [c["id"] for c in listed] == [good.json()["id"], bad.json()["id"]]
    assert len(audit_events(client, model=MODEL, action="data_check.recorded")) == 3


def test_bad_data_check_requests_are_clear_4xx(client: TestClient) -> None:
    create_model(client, MODEL)
    version = new_version(client, MODEL)
    assert_problem(post_check(client, version, dataset="d"), 422)
    assert_problem(post_check(client, version, sample=clean()), 422)
    assert_problem(post_check(client, 99, dataset="d", sample=clean()), 404)
    bare = client.post(f"{API}/models/{MODEL}/versions", json={})
    assert bare.status_code == 201
    no_signature = post_check(client, bare.json()["version"], dataset="d", sample=clean())
    assert_problem(no_signature, 409)


def test_a_sample_with_columns_of_different_lengths_is_checked_column_by_column(
    client: TestClient,
) -> None:
    """Every check is per column: each column is read from its own values, and the row
    count is the longest column's (decision 0026; was a 422)."""
    create_model(client, MODEL)
    version = new_version(client, MODEL)
    reference = client.post(
        f"{API}/models/{MODEL}/versions/{version}/reference-profile", json={"sample": clean(8)}
    )
    assert reference.status_code in (200, 201), reference.text
    sample = clean(8)
    sample["country"] = sample["country"][:3]
    sample["age"] = [31, None, 33, 34, 35, 36]
    response = post_check(client, version, dataset="d", sample=sample, max_null_rate=0.25)
    assert response.status_code == 201, response.text
    assert response.json()["rows"] == 8
    assert response.json()["passed"] is True
