"""Rules the API document states (issue #20, decisions 0025 and 0026), and bodies a
generator can draw from it.

A rule the server enforces but the document does not state is a request the document
calls valid and the server refuses: what schemathesis's ``positive_data_acceptance``
check finds. These tests read the document the application generates.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from schemathesis import GenerationMode

from app.events.schemas import IPV6_PATTERN
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


def test_no_header_parameter_offers_null(spec: dict[str, Any]) -> None:
    """A header is a string or absent: with a ``null`` branch a generator sent
    ``X-Artifact-SHA256: null``, a request the document called valid (decision 0026)."""
    headers = [
        (path, parameter["name"], parameter["schema"])
        for path, operations in spec["paths"].items()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "header"
    ]
    assert any(name == "X-Artifact-SHA256" for _, name, _ in headers)
    for path, name, schema in headers:
        assert schema.get("type") == "string", (path, name, schema)
        assert "anyOf" not in schema, (path, name, schema)


def test_a_bracketed_webhook_host_is_an_ipv6_address_in_the_document(
    spec: dict[str, Any],
) -> None:
    """The URL pattern took any run of hex digits, colons and dots in brackets, so
    ``https://[156]`` was valid in the document and refused by the server (decision 0026)."""
    for url in ("https://[156]", "https://[1:2:3:4:5:6:7:8:9]/", "http://[::ffff:01.2.3.4]"):
        assert not valid(
            spec, "WebhookCreate", {"url": url, "event_types": ["*"], "secret": "s" * 16}
        ), url
    for url in ("https://[2001:db8::1]:8443/hook", "http://[::ffff:1.2.3.4]/", "https://[::]"):
        assert valid(
            spec, "WebhookCreate", {"url": url, "event_types": ["*"], "secret": "s" * 16}
        ), url


@settings(max_examples=500, database=None, deadline=None)
@given(st.from_regex(f"^{IPV6_PATTERN}$", fullmatch=True))
def test_every_ipv6_literal_the_pattern_takes_is_an_address(literal: str) -> None:
    ipaddress.IPv6Address(literal)


def test_a_distribution_metric_tolerance_is_at_most_one_in_the_document(
    spec: dict[str, Any],
) -> None:
    """A rollout's prediction_distribution metric compares a Jensen-Shannon distance (at
    most 1): the server refused a larger tolerance the document allowed (decision 0026)."""
    metric = {"name": "drift", "kind": "prediction_distribution"}
    schema = "app__rollouts__schemas__MetricIn"
    assert not valid(spec, schema, {**metric, "tolerance": 1.5})
    assert valid(spec, schema, {**metric, "tolerance": 0.2})
    assert valid(spec, schema, {**metric, "kind": "latency", "tolerance": 1.5})
