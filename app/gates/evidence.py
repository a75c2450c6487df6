"""Evaluation evidence for the significance gate.

A significance test needs more than one number per model: per-example
correctness (for McNemar's test), success counts (for a two-proportion test) or
per-example losses (for paired t, Wilcoxon and bootstrap tests). Each kind is a
frozen dataclass that validates itself on construction, so that malformed
evidence is refused when it is submitted (a 422), not when a gate runs weeks
later. Values are stored as tuples so that evidence is immutable and comparable.

Paired evidence (``Correctness``, ``Losses``) must list the same evaluation
examples in the same order for the candidate and for production; the gate can
check the lengths but not the order, so the evaluation job must keep it.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

import numpy as np
import numpy.typing as npt

# A list from JSON, or a NumPy array from code that computed it: both are read through
# np.asarray, so an array costs no copy.
Values: TypeAlias = "Sequence[object] | npt.NDArray[np.generic]"


def _as_1d(name: str, values: Values) -> np.ndarray:
    if isinstance(values, str | bytes):
        raise ValueError(f"{name} must be a list, not a string")
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a flat list")
    return array


@dataclass(frozen=True)
class Correctness:
    """Whether the model got each evaluation example right (paired across models)."""

    KIND: ClassVar[str] = "correctness"
    values: Sequence[bool] | npt.NDArray[np.bool_]

    def __post_init__(self) -> None:
        array = _as_1d("Correctness.values", self.values)
        # Refuse 0/1 integers and strings: "False" is truthy, and a column of
        # scores mistaken for correctness would be silently thresholded.
        if array.size and array.dtype != np.bool_:
            raise ValueError("Correctness.values must be booleans (true = correct)")
        object.__setattr__(self, "values", tuple(bool(v) for v in array.tolist()))


@dataclass(frozen=True)
class Counts:
    """How many evaluation examples the model got right out of how many (unpaired)."""

    KIND: ClassVar[str] = "counts"
    successes: int
    total: int

    def __post_init__(self) -> None:
        for name in ("successes", "total"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"Counts.{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.total <= 0:
            raise ValueError(f"Counts.total must be positive, got {self.total}")
        if not 0 <= self.successes <= self.total:
            raise ValueError(
                f"Counts.successes must be between 0 and total ({self.total}), got {self.successes}"
            )


@dataclass(frozen=True)
class Losses:
    """The model's loss on each evaluation example, lower is better (paired across models)."""

    KIND: ClassVar[str] = "losses"
    values: Sequence[float] | npt.NDArray[np.floating]

    def __post_init__(self) -> None:
        array = _as_1d("Losses.values", self.values)
        if array.size and array.dtype.kind not in "iuf":
            raise ValueError("Losses.values must be numbers")
        floats = array.astype(np.float64)
        if not np.all(np.isfinite(floats)):
            raise ValueError("Losses.values must all be finite")
        object.__setattr__(self, "values", tuple(floats.tolist()))


Evidence: TypeAlias = Correctness | Counts | Losses
"""Any kind of evidence a significance rule accepts."""
