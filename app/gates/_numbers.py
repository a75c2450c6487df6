"""Runtime checks of numbers that arrive as plain (possibly numpy) values.

The type hints say ``float``, but gate inputs come from JSON, the database and
numpy, so the checks take ``object`` and accept exactly: Python and numpy
integers and floats, never booleans (``True`` is an ``int`` in Python, but a
boolean where a number belongs is a mistake worth reporting).
"""

from __future__ import annotations

import math

import numpy as np


def as_real(value: object) -> float | None:
    """``value`` as a float (±inf if too large), or None when it is not a real number."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, float | np.floating):
        return float(value)
    if isinstance(value, int | np.integer):
        try:
            return float(value)
        except OverflowError:
            return math.copysign(math.inf, int(value))
    return None


def as_finite(value: object) -> float | None:
    """``value`` as a finite float, or None when it is missing, not a number, NaN or infinite."""
    number = as_real(value)
    return number if number is not None and math.isfinite(number) else None


def as_count(value: object) -> int | None:
    """``value`` as a Python int when it is an integer (not a bool), else None."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    return None
