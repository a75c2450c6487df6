"""Model input and output signatures, as the schema-compatibility gate sees them.

A signature is a list of named, typed columns. Type names are free-form strings
(``integer``, ``float``, ``string``, ``boolean``, ...) compared case-insensitively;
the only relations between different names are the widenings in
:data:`TYPE_WIDENINGS`, because any other change of type can break a caller that
sends the old type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

TYPE_WIDENINGS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "integer": frozenset({"float", "number"}),
        "float": frozenset({"number"}),
    }
)
"""Input type changes a candidate may make: every value of the old type is a value of the new.

=========  =====================
old type   may become
=========  =====================
integer    float, number
float      number
=========  =====================

Widening is allowed for inputs only: an output that widens hands consumers values
they were not built for, so output types must stay the same.
"""


def normalise_type(type_name: str) -> str:
    """The canonical spelling of a column type (trimmed, lower case)."""
    return type_name.strip().lower()


def type_accepts(new: str, old: str) -> bool:
    """Whether an input column of type ``new`` accepts every value of type ``old``."""
    new, old = normalise_type(new), normalise_type(old)
    return new == old or new in TYPE_WIDENINGS.get(old, frozenset())


@dataclass(frozen=True)
class Column:
    """One named column of a signature.

    ``required`` says whether a caller must send the column; ``nullable`` whether
    it may send null; ``categories`` restricts the values to a closed set
    (``None`` means unrestricted).
    """

    name: str
    type: str
    nullable: bool = False
    required: bool = True
    categories: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("a column needs a non-empty name")
        if not isinstance(self.type, str) or not normalise_type(self.type):
            raise ValueError(f"column {self.name!r} needs a type")
        categories: object = self.categories
        if categories is not None:
            # Accept any sequence (a JSON list arrives as a list) but store a
            # tuple so that the column stays immutable and hashable.
            if not isinstance(categories, Sequence) or isinstance(categories, str | bytes):
                raise ValueError(f"column {self.name!r}: categories must be a list of strings")
            if not all(isinstance(value, str) for value in categories):
                raise ValueError(f"column {self.name!r}: categories must be strings")
            object.__setattr__(self, "categories", tuple(categories))


def _check_unique(columns: Sequence[Column], what: str) -> tuple[Column, ...]:
    seen: set[str] = set()
    for column in columns:
        if not isinstance(column, Column):
            raise TypeError(f"{what} must be Column objects, got {type(column).__name__}")
        if column.name in seen:
            raise ValueError(f"{what} name column {column.name!r} twice")
        seen.add(column.name)
    return tuple(columns)


@dataclass(frozen=True)
class Signature:
    """The columns a model takes and the columns it returns."""

    inputs: tuple[Column, ...]
    outputs: tuple[Column, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", _check_unique(self.inputs, "inputs"))
        object.__setattr__(self, "outputs", _check_unique(self.outputs, "outputs"))
