"""Helpers shared by the rule modules: policy and data numbers, tolerant bounds, wording.

Conventions shared by every rule:

* Arguments that come from the gate policy (limits, deltas, alpha, ...) are
  checked, and a bad one raises ``ValueError``: a policy with a NaN threshold is
  a bug to refuse when the policy is saved, not a gate that fails later.
* Arguments that come from the versions (metric values, evidence, lineage,
  signatures, checksums) never raise: missing, undefined or malformed data make
  the rule fail, and the reason says what is missing.
* Comparing a value with a constant from the policy is exact. Comparing it with
  a bound the rule computes (production + delta, a gap between two slices)
  tolerates a relative error of 1e-9, so that floating-point rounding
  (``0.2 + 0.1 == 0.30000000000000004``) does not fail a candidate that meets the
  bound exactly.
"""

from __future__ import annotations

import math

from app.gates._numbers import as_finite, as_real
from app.gates.catalogue import Direction

_REL_TOL = 1e-9
_ABS_TOL = 1e-12


def _num(value: float, digits: int = 6) -> str:
    return format(value, f".{digits}g")


def _num_pair(a: float, b: float, digits: int = 6) -> tuple[str, str]:
    """Format two numbers so that different values never print the same."""
    sa, sb = _num(a, digits), _num(b, digits)
    if sa == sb and a != b:
        return repr(a), repr(b)
    return sa, sb


def _policy_number(name: str, value: object) -> float:
    number = as_real(value)
    if number is None:
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number!r}")
    return number


def _data_number(value: object) -> float | None:
    """A finite float, or None for a missing or unusable value."""
    return as_finite(value)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _at_least(value: float, bound: float) -> bool:
    return value >= bound or math.isclose(value, bound, rel_tol=_REL_TOL, abs_tol=_ABS_TOL)


def _at_most(value: float, bound: float) -> bool:
    return value <= bound or math.isclose(value, bound, rel_tol=_REL_TOL, abs_tol=_ABS_TOL)


def _direction(direction: Direction | str) -> Direction:
    try:
        return Direction(direction)
    except ValueError:
        raise ValueError(f"direction must be 'higher' or 'lower', got {direction!r}") from None


def _better_word(direction: Direction) -> str:
    return "higher is better" if direction is Direction.HIGHER else "lower is better"


def _unusable(metric: str, dataset: str, value: object, who: str = "") -> str:
    prefix = f"{who} " if who else ""
    if value is None:
        return f"{prefix}{metric} missing on dataset {dataset!r}"
    return f"{prefix}{metric} on dataset {dataset!r} is not a finite number ({value!r})"
