"""Rules the API document states (issue #20, decisions 0025 and 0026), and bodies a
generator can draw from it.

A rule the server enforces but the document does not state is a request the document
calls valid and the server refuses: what schemathesis's ``positive_data_acceptance``
check finds. These tests read the document the application generates.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from schemathesis import GenerationMode

from app.openapi_export import render_openapi

VERSIONS = "/api/v1/models/{model}/versions"
METRICS = "/api/v1/models/{model}/versions/{version}/metrics"
ARTIFACT = "/api/v1/models/{model}/versions/{version}/artifact"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(render_openapi())
    return loaded


def valid(spec: dict[str, Any], component: str, instance: object) -> bool:
    schema = {"$ref": f"#/components/schemas/{component}", "components": spec["components"]}
    return bool(jsonschema_rs.validator_for(schema).is_valid(instance))


def test_a_confusion_matrix_of_zeros_is_invalid_in_the_document(spec: dict[str, Any]) -> None:
    body = {"dataset": "test", "matrix": [[0, 0], [0, 0]]}
    assert not valid(spec, "ConfusionMatrixIn", body)
    assert valid(spec, "ConfusionMatrixIn", {**body, "matrix": [[0, 0], [0, 1]]})


def test_confusion_matrix_labels_are_distinct_in_the_document(spec: dict[str, Any]) -> None:
    body = {"dataset": "test", "matrix": [[1, 0], [0, 1]]}
    assert not valid(spec, "ConfusionMatrixIn", {**body, "labels": ["cat", "cat"]})
    assert valid(spec, "ConfusionMatrixIn", {**body, "labels": ["cat", "dog"]})


def test_a_reproduction_states_an_artifact_or_metrics_in_the_document(
    spec: dict[str, Any],
) -> None:
    metric = {"name": "accuracy", "dataset": "test", "value": 0.9}
    assert not valid(spec, "ReproductionCreate", {})
    assert not valid(spec, "ReproductionCreate", {"metrics": [], "comment": "nothing"})
    assert not valid(spec, "ReproductionCreate", {"artifact_sha256": None})
    assert valid(spec, "ReproductionCreate", {"metrics": [metric]})
    assert valid(spec, "ReproductionCreate", {"artifact_sha256": "a" * 64})


def test_an_artifact_body_has_at_least_one_byte_in_the_document(spec: dict[str, Any]) -> None:
    body = spec["paths"][ARTIFACT]["put"]["requestBody"]
    assert body["content"]["application/octet-stream"]["schema"]["minLength"] == 1


@pytest.mark.parametrize(("path", "method"), [(VERSIONS, "POST"), (METRICS, "POST")])
def test_invalid_evaluation_bodies_can_be_generated(
    spec: dict[str, Any], path: str, method: str
) -> None:
    """Schemathesis's negative generator gave up on these bodies ("Cannot generate an
    array with 1 demanded elements") while the evidence items carried a ``discriminator``
    (decision 0026); every branch pins ``kind`` with a ``const``, which says the same."""
    items = spec["components"]["schemas"]["VersionCreate"]["properties"]["evidence"]["items"]
    assert "discriminator" not in items
    assert [branch["$ref"].rsplit("/", 1)[1] for branch in items["oneOf"]] == [
        "CorrectnessEvidence", "CountsEvidence", "LossesEvidence",
    ]  # fmt: skip
    operation = schemathesis.openapi.from_dict(spec)[path][method]
    drawn = []

    @hypothesis_seed(1)
    @settings(
        max_examples=300, database=None, deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    def draw(case: object) -> None:
        drawn.append(case)

    draw()
    assert len(drawn) >= 100
