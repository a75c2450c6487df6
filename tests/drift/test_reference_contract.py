"""A reference profile must honour the version's signature: nulls in a non-nullable
column or categories outside the declared domain are refused with a 422 that names each
column and count (accepted, they would hide the very alerts the profile exists for)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.drift._data import reference_sample
from tests.drift.test_drift_api import serving
from tests.support.api import API, assert_problem, audit_events

MODEL = "fraud"


def test_reference_data_breaking_the_signature_is_refused(client: TestClient) -> None:
    number = serving(client, profile=False)
    body = reference_sample()
    body["sample"]["amount"][:3] = [None] * 3
    body["sample"]["country"][10:17] = ["XX"] * 5 + ["YY"] * 2
    url = f"{API}/models/{MODEL}/versions/{number}/reference-profile"

    problem = assert_problem(client.post(url, json=body), 422)

    errors = {tuple(e["loc"]): e for e in problem["errors"]}
    assert set(errors) == {("body", "sample", "amount"), ("body", "sample", "country")}
    assert errors["body", "sample", "amount"]["count"] == 3
    assert errors["body", "sample", "amount"]["type"] == "nulls_in_non_nullable"
    assert errors["body", "sample", "country"]["count"] == 7
    assert errors["body", "sample", "country"]["categories"] == ["XX", "YY"]
    assert "amount: 3 null(s)" in problem["detail"]
    assert "country: 7 value(s) outside" in problem["detail"]
    # Nothing was stored.
    assert client.get(url).status_code == 404
    assert audit_events(client, model=MODEL, action="reference_profile.created") == []

    # Nulls in a nullable column (age) are fine, and so is the clean sample.
    assert client.post(url, json=reference_sample()).status_code == 201
