"""Helpers of the rollout tests: a model with a production version and a candidate, and
observations as a router would send them (the start body is tests/support/flows.py's)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np

from tests.support.api import create_model
from tests.support.flows import new_version, permissive_policy, promote, put_policy

API = "/api/v1"


def model_with_candidate(client: Any, name: str | None = None, **policy: Any) -> str:
    """Version 1 in production, version 2 a candidate, under a permissive policy."""
    name = name or f"roll-{uuid.uuid4().hex[:8]}"
    create_model(client, name, primary_metric="accuracy", primary_dataset="holdout")
    put_policy(client, name, permissive_policy(**policy))
    first = new_version(client, name, accuracy=0.80)
    promote(client, name, first, "production", status="applied")
    new_version(client, name, accuracy=0.81)
    return name


def observations(
    rng: np.random.Generator, routes: dict[int, float], n: int, error_rates: dict[int, float],
    *, prefix: str,
) -> list[dict[str, Any]]:  # fmt: skip
    """``n`` requests split over ``routes`` (version -> percent) as a router would, each
    with an error drawn at its version's rate and a log-normal latency."""
    versions = sorted(routes)
    weights = np.array([routes[v] for v in versions], dtype=float)
    picks = rng.choice(len(versions), size=n, p=weights / weights.sum())
    errors = rng.random(n)
    latencies = rng.lognormal(mean=3.0, sigma=0.3, size=n)
    now = datetime.now(UTC).isoformat()
    out = []
    for i in range(n):
        version = versions[picks[i]]
        out.append(
            {
                "request_key": f"{prefix}-{i}",
                "version": version,
                "latency_ms": round(float(latencies[i]), 3),
                "error": bool(errors[i] < error_rates[version]),
                "time": now,
            }
        )
    return out
