"""A version's lineage fingerprint: which training specification produced it.

``sha256(canonical_json({code_commit, data_version, feature_pipeline_version,
environment, hyperparameters, seed}))``, hex. A field the lineage does not name hashes as
``null``, so "not stated" and "stated empty" differ. Two versions with the same
fingerprint claim the same ``M = Train(D, phi, lambda, C, E, s)``: a re-run of one is a
reproduction of the other. Values hash as stored JSON: ``1`` and ``1.0`` differ.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from app.audit.hashing import canonical_json

FINGERPRINT_FIELDS = (
    "code_commit",
    "data_version",
    "feature_pipeline_version",
    "environment",
    "hyperparameters",
    "seed",
)
"""The lineage fields that make up a training specification, in the order the docs list."""

FINGERPRINT_PATTERN = re.compile(r"[0-9a-f]{64}")


def lineage_fingerprint(lineage: Mapping[str, Any]) -> str:
    spec = {field: lineage.get(field) for field in FINGERPRINT_FIELDS}
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()
