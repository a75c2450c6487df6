"""The client's response types agree with the server's spec (``openapi/openapi.json``):
the same fields, the same required ones, the same nullability, the same enum values."""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal, get_args, get_origin

import pytest

from modelgate_client import api_types
from tests.cli._server import REPO_ROOT

SPEC = json.loads((REPO_ROOT / "openapi" / "openapi.json").read_text(encoding="utf-8"))
SCHEMAS: dict[str, Any] = SPEC["components"]["schemas"]

# Client type -> the spec's schema, where the names differ.
RENAMED = {
    "GateReport": "GateReportRead",
    "PolicyRead": "GatePolicyRead",
    "AuditEvent": "AuditEventRead",
}
NOT_API_SHAPES = {"Download", "Page"}


def client_types() -> list[str]:
    return sorted(
        name
        for name, value in vars(api_types).items()
        if isinstance(value, type)
        and typing.is_typeddict(value)
        and value.__module__ == api_types.__name__
        and name not in NOT_API_SHAPES
    )


def _nullable(schema: dict[str, Any]) -> bool:
    options = schema.get("anyOf", [schema])
    return any(o.get("type") == "null" for o in options) or schema.get("default", 0) is None


def _admits_none(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is typing.NotRequired or origin is typing.Required:
        return _admits_none(get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return type(None) in get_args(annotation)
    return annotation is type(None) or annotation is Any


def _literal_values(annotation: Any) -> set[str] | None:
    if get_origin(annotation) is Literal:
        return {str(v) for v in get_args(annotation)}
    return None


def _enum_values(schema: dict[str, Any]) -> set[str] | None:
    ref = schema.get("$ref")
    if ref is None:
        return None
    target = SCHEMAS[ref.rsplit("/", 1)[-1]]
    return {str(v) for v in target["enum"]} if "enum" in target else None


def test_every_client_type_has_a_schema() -> None:
    missing = [n for n in client_types() if RENAMED.get(n, n) not in SCHEMAS]
    assert not missing, f"client types with no schema in openapi.json: {missing}"


@pytest.mark.parametrize("name", client_types())
def test_client_type_matches_the_spec(name: str) -> None:
    td = getattr(api_types, name)
    schema = SCHEMAS[RENAMED.get(name, name)]
    hints = typing.get_type_hints(td, include_extras=True)
    properties: dict[str, Any] = schema.get("properties", {})
    assert set(hints) == set(properties), (
        f"{name}: only in the client {sorted(set(hints) - set(properties))}, "
        f"only in the spec {sorted(set(properties) - set(hints))}"
    )
    required = set(schema.get("required", []))
    assert required <= td.__required_keys__, (name, sorted(required - td.__required_keys__))
    for field, annotation in hints.items():
        spec_field = properties[field]
        assert _admits_none(annotation) == _nullable(spec_field), (name, field, spec_field)
        literal = _literal_values(annotation)
        enum = _enum_values(spec_field)
        if literal is not None and enum is not None:
            assert literal == enum, (name, field, literal, enum)
