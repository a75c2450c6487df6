"""Data of the drift API tests: a reference sample and production windows (seeded)."""

from __future__ import annotations

from typing import Any

import numpy as np


def reference_sample(n: int = 3000, seed: int = 7) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    age: list[Any] = rng.integers(18, 90, n).tolist()
    for i in range(0, n, 50):  # 2 % nulls: under the default 5 % bound
        age[i] = None
    return {
        "sample": {
            "amount": rng.normal(100.0, 15.0, n).round(2).tolist(),
            "country": rng.choice(["DE", "FR", "US"], n, p=[0.5, 0.3, 0.2]).tolist(),
            "age": age,
        },
        "predictions": rng.uniform(0.0, 1.0, n).round(4).tolist(),
        "dataset": "transactions@2026-11-01",
    }


def window(
    n: int = 800, seed: int = 8, *, shift: float = 0.0, mix: tuple[float, ...] = (0.5, 0.3, 0.2)
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "sample": {
            "amount": rng.normal(100.0 + shift, 15.0, n).round(2).tolist(),
            "country": rng.choice(["DE", "FR", "US"], n, p=list(mix)).tolist(),
            "age": rng.integers(18, 90, n).tolist(),
        },
        "predictions": rng.uniform(0.0, 1.0, n).round(4).tolist(),
        "window_start": "2026-11-20T00:00:00Z",
        "window_end": "2026-11-21T00:00:00Z",
    }
