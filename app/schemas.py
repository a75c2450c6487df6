"""Schema building blocks every feature shares: the strict request base, a page of a
list, and the spellings of model names, metric names and labels.

Pure pydantic (no database, no HTTP), so any package may import it, ``app.gates``
included.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, ClassVar, Generic, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, model_validator

ModelName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Letters, digits, '.', '_' and '-', starting with a letter or digit.",
        examples=["fraud-detector"],
    ),
]
MetricName = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:/@-]*$")
]
Label = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]
T = TypeVar("T")


def _bare(annotation: Any) -> Any:
    """``Annotated[float, ...]`` -> ``float``."""
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def _scalar_kind(annotation: Any) -> str | None:
    """ "bool" or "number" for a field typed ``bool`` or ``int``/``float`` (optionally
    ``| None``); None for anything else."""
    if get_origin(annotation) in (Union, types.UnionType):
        members = {_bare(a) for a in get_args(annotation) if a is not type(None)}
    else:
        members = {_bare(annotation)}
    if members == {bool}:
        return "bool"
    if members and members <= {int, float}:
        return "number"
    return None


class Strict(BaseModel):
    """Base of request bodies: unknown fields are refused, and JSON types are kept apart
    as the document states them. pydantic's lax mode would take ``0`` for ``false`` and
    ``false`` for ``0``; a field typed boolean takes only true or false here, and a
    numeric field no boolean (checked before validation, for every subclass; the error
    names the field)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)
    _scalar_fields: ClassVar[dict[str, str]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._scalar_fields = {
            field.alias or name: kind
            for name, field in cls.model_fields.items()
            if (kind := _scalar_kind(field.annotation)) is not None
        }

    @model_validator(mode="before")
    @classmethod
    def _json_types(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        # A value of the other JSON type is swapped for a text that the field's own
        # validation refuses, so that the error names the field (its loc), as any other.
        swapped = None
        for key, kind in cls._scalar_fields.items():
            value = data.get(key)
            if value is None:
                continue
            if (kind == "bool" and not isinstance(value, bool)) or (
                kind == "number" and isinstance(value, bool)
            ):
                swapped = swapped if swapped is not None else dict(data)
                wanted = "boolean" if kind == "bool" else "number"
                swapped[key] = f"{value!r} is not a JSON {wanted}"
        return data if swapped is None else swapped


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[T]
    next_cursor: str | None = None
