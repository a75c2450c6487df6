"""Rollout steps in a short form, for the command line and for scripts.

A step is ``WEIGHT:HOLD[+HOLD...]``, steps are separated by commas::

    5:5m+500obs,25:2000obs+approval,100:60s

- ``WEIGHT`` is the candidate's share of requests in percent (``5`` or ``5%``; for the
  ``shadow`` strategy, the share of requests the candidate also scores), greater than 0,
  at most 100, increasing from step to step;
- a ``HOLD`` says what must happen before the next step: ``300s``, ``5m`` or ``1h``
  (at least this long at the step), ``2000obs`` (at least this many observations of
  the candidate at the step) or ``approval`` (a reviewer approves the step). Every step
  has at least one.

:func:`parse_steps` turns it into the API's step objects
(``{"weight": 5.0, "hold": {"duration_seconds": 300, "min_observations": 500}}``), and
:func:`format_steps` back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["STEPS_HELP", "format_steps", "parse_steps"]

STEPS_HELP = (
    "WEIGHT:HOLD[+HOLD...] per step, steps separated by commas, e.g. "
    "5:5m+500obs,25:2000obs+approval,100:60s. WEIGHT is the candidate's percent of requests "
    "(0 < w <= 100, increasing); HOLD is a duration (300s, 5m, 1h), a minimum number of "
    "observations (2000obs) or approval (a reviewer approves the step)."
)

_DURATION = re.compile(r"^(\d+)(s|m|h)$")
_OBSERVATIONS = re.compile(r"^(\d+)obs$")
_UNITS = {"s": 1, "m": 60, "h": 3600}


def _weight(text: str, where: str) -> float:
    raw = text.strip().removesuffix("%")
    try:
        weight = float(raw)
    except ValueError:
        raise ValueError(f"{where}: weight {text!r} is not a number") from None
    if not 0 < weight <= 100:
        raise ValueError(f"{where}: weight {text!r} is not in (0, 100]")
    return weight


def _hold(text: str, where: str) -> dict[str, Any]:
    hold: dict[str, Any] = {}
    for part in text.split("+"):
        item = part.strip().lower()
        duration = _DURATION.match(item)
        observations = _OBSERVATIONS.match(item)
        if duration:
            key, value = "duration_seconds", int(duration[1]) * _UNITS[duration[2]]
        elif observations:
            key, value = "min_observations", int(observations[1])
        elif item in ("approval", "approve"):
            key, value = "approval", True
        else:
            raise ValueError(
                f"{where}: hold {part.strip()!r} is none of 300s / 5m / 1h, 2000obs, approval"
            )
        if key in hold:
            raise ValueError(f"{where}: two holds of the same kind ({part.strip()!r})")
        if value == 0:
            raise ValueError(f"{where}: hold {part.strip()!r} must be more than 0")
        hold[key] = value
    return hold


def parse_steps(text: str) -> list[dict[str, Any]]:
    """``5:5m+500obs,25:2000obs,100:60s`` as the API's steps; ValueError naming the step
    and the part that is wrong."""
    steps: list[dict[str, Any]] = []
    chunks = [c for c in text.split(",")]
    if not text.strip():
        raise ValueError("no steps given")
    previous = 0.0
    for number, chunk in enumerate(chunks, start=1):
        where = f"step {number} ({chunk.strip()!r})"
        weight_text, sep, hold_text = chunk.partition(":")
        if not sep or not hold_text.strip():
            raise ValueError(f"{where}: write WEIGHT:HOLD, e.g. 5:300s")
        weight = _weight(weight_text, where)
        if weight <= previous:
            raise ValueError(f"{where}: weights must increase (the step before has {previous:g})")
        previous = weight
        steps.append({"weight": weight, "hold": _hold(hold_text, where)})
    return steps


def format_hold(hold: Mapping[str, Any] | None) -> str:
    """``{"duration_seconds": 300, "approval": true}`` -> ``5m+approval``."""
    parts: list[str] = []
    hold = hold or {}
    seconds = hold.get("duration_seconds")
    if seconds:
        seconds = int(seconds)
        if seconds % 3600 == 0:
            parts.append(f"{seconds // 3600}h")
        elif seconds % 60 == 0:
            parts.append(f"{seconds // 60}m")
        else:
            parts.append(f"{seconds}s")
    if hold.get("min_observations"):
        parts.append(f"{int(hold['min_observations'])}obs")
    if hold.get("approval"):
        parts.append("approval")
    return "+".join(parts) or "-"


def format_steps(steps: Iterable[Mapping[str, Any]]) -> str:
    """The API's steps in the short form (what :func:`parse_steps` reads)."""
    return ",".join(f"{float(s['weight']):g}:{format_hold(s.get('hold'))}" for s in steps)
