"""The outcome of one gate rule, in a form that can be stored and hashed as JSON.

Gate reports are stored with each promotion request and hashed for the audit
log, so a result must serialise to the same JSON every time and must contain
nothing JSON cannot hold. ``RuleResult`` normalises ``observed`` when it is
built (tuples become lists, numpy scalars become Python numbers) and refuses
NaN and infinities: JSON has no spelling for them (PostgreSQL's ``jsonb``
rejects them), and a gate that produced one has a bug worth seeing at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.gates._numbers import as_count, as_real


def to_json_value(value: Any, *, where: str = "value") -> Any:
    """Return ``value`` as plain JSON data (dict, list, str, int, float, bool, None).

    Raises ``TypeError`` for anything JSON cannot represent and ``ValueError``
    for non-finite floats; ``where`` names the offending path in the message.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        # str() turns a StrEnum member into its plain value.
        return str(value)
    if isinstance(value, np.bool_):
        return bool(value)
    count = as_count(value)
    if count is not None:
        return count
    number = as_real(value)
    if number is not None:
        if not math.isfinite(number):
            raise ValueError(f"{where} is not a finite number ({number!r})")
        return number
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has a non-string key {key!r}")
            out[str(key)] = to_json_value(item, where=f"{where}.{key}")
        return out
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [to_json_value(item, where=f"{where}[{i}]") for i, item in enumerate(value)]
    raise TypeError(f"{where} is not JSON-serialisable: {type(value).__name__}")


def _optional_finite(name: str, value: object) -> float | None:
    if value is None:
        return None
    number = as_real(value)
    if number is None:
        raise TypeError(f"RuleResult.{name} must be a number or None, got {value!r}")
    if not math.isfinite(number):
        raise ValueError(f"RuleResult.{name} must be finite, got {number!r}")
    return number


@dataclass(frozen=True)
class RuleResult:
    """What one rule decided, why, and the numbers it decided on.

    ``reason`` is for people (reviewers, CI logs); ``observed`` is for machines
    and dashboards. ``threshold``, ``delta`` and ``p_value`` are set by the rules
    where they apply so that reports can be compared without parsing reasons.
    """

    rule: str
    kind: str
    passed: bool
    reason: str
    # Excluded from the hash (a dict is unhashable) but still compared.
    observed: Mapping[str, Any] = field(default_factory=dict, hash=False)
    threshold: float | None = None
    delta: float | None = None
    p_value: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.passed, bool | np.bool_):
            raise TypeError(f"RuleResult.passed must be a bool, got {self.passed!r}")
        object.__setattr__(self, "passed", bool(self.passed))
        object.__setattr__(self, "observed", to_json_value(self.observed, where="observed"))
        if not isinstance(self.observed, dict):
            raise TypeError("RuleResult.observed must be a mapping")
        for name in ("threshold", "delta", "p_value"):
            object.__setattr__(self, name, _optional_finite(name, getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (mutating it does not change the result)."""
        return {
            "rule": self.rule,
            "kind": self.kind,
            "passed": self.passed,
            "reason": self.reason,
            "observed": to_json_value(self.observed),
            "threshold": self.threshold,
            "delta": self.delta,
            "p_value": self.p_value,
        }
