"""The shared request base (app/schemas.py) keeps JSON's types apart as the document
states them, and the rules the schema states agree with what the models refuse."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from app.drift.schemas import ReferenceProfileCreate
from app.observations.schemas import LabelIn, Prediction
from app.promotion.schemas import GatePolicyDocument, RollbackCreate
from app.registry.schemas import MetricIn


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (GatePolicyDocument, {"staging": {"auto_promote": 0}}),
        (GatePolicyDocument, {"production": {"approvals_required": False}}),
        (
            GatePolicyDocument,
            {"production": {"rules": [{
                "name": "fair", "kind": "fairness", "metric": "accuracy", "dataset": "d",
                "max_gap": 0.1, "max_slice_regression": False,
            }]}},
        ),
        (MetricIn, {"name": "accuracy", "value": 0.9, "dataset": "d", "sample_count": False}),
        (MetricIn, {"name": "accuracy", "value": True, "dataset": "d"}),
        (RollbackCreate, {"reason": "bad", "deep_check": 1}),
    ],
)  # fmt: skip
def test_booleans_and_numbers_are_not_taken_for_each_other(
    model: type[Any], data: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(data)
    # the same document with the JSON type the schema names is fine
    assert model.model_json_schema()


def test_the_right_json_types_still_validate() -> None:
    policy = GatePolicyDocument.model_validate(
        {"staging": {"auto_promote": True, "approvals_required": 1}}
    )
    assert policy.staging.auto_promote is True
    assert MetricIn.model_validate(
        {"name": "a", "value": 1, "dataset": "d", "sample_count": 10}
    ).value == pytest.approx(1.0)


def _agree(model: type[Any], data: dict[str, Any]) -> bool:
    """Whether the model's JSON Schema and the model itself give the same verdict."""
    schema = model.model_json_schema(ref_template="#/$defs/{model}")
    by_schema = jsonschema.Draft202012Validator(schema).is_valid(data)
    try:
        model.model_validate(data)
        by_model = True
    except ValidationError:
        by_model = False
    return by_schema == by_model


@pytest.mark.parametrize(
    "data",
    [
        {"request_key": "k"},
        {"request_key": "k", "class": "a"},
        {"request_key": "k", "value": 1.5},
        {"request_key": "k", "class": "a", "value": 1.5},
        {"request_key": "k", "class": None, "value": 1.5},
        {"request_key": "k", "class": None, "value": None},
    ],
)
def test_a_label_has_exactly_one_of_class_or_value_in_the_schema_too(data: dict[str, Any]) -> None:
    assert _agree(LabelIn, data)


@pytest.mark.parametrize(
    "data",
    [{}, {"class": "a"}, {"score": 0.5, "value": 2.0}, {"class": "a", "score": None}],
)
def test_a_prediction_has_exactly_one_field_in_the_schema_too(data: dict[str, Any]) -> None:
    assert _agree(Prediction, data)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"features": {}, "sample": {}},
        {"sample": {}},
        {"sample": {"a": []}},
        {"sample": {"a": [1, 2]}},
        {"sample": {"a": [1, 2]}, "prediction": None, "predictions": [0, 1]},
        {"features": {"a": {"kind": "categorical", "frequencies": {"x": 3}}}},
        {"features": {"a": {"kind": "categorical", "frequencies": {"x": 3}}}, "predictions": [1]},
    ],
)
def test_a_profile_has_one_form_in_the_schema_too(data: dict[str, Any]) -> None:
    assert _agree(ReferenceProfileCreate, data)


def test_profile_counts_are_bounded_so_their_sums_stay_finite() -> None:
    """Two bins of 1e308 summed to an infinite row count: a 500 the fuzzer found."""
    huge = {"kind": "numeric", "edges": [0.0, 1.0, 2.0], "counts": [1e308, 1e308]}
    with pytest.raises(ValidationError):
        ReferenceProfileCreate.model_validate({"features": {"a": huge}})
    fine = {**huge, "counts": [1e15, 1e15]}
    assert ReferenceProfileCreate.model_validate({"features": {"a": fine}}).features
