"""Revision 0007 fills ``model_versions.lineage_fingerprint`` from each stored lineage, adds
the reproductions table, and takes both away again."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, inspect, text

from app.db import migrate
from app.registry.fingerprint import lineage_fingerprint

INDEX = "ix_model_versions_model_id_lineage_fingerprint"
LINEAGES: list[dict[str, Any]] = [
    {},
    {"code_commit": "abc", "seed": 1, "hyperparameters": {"b": 2, "a": 1.5}, "ci_run_id": "9"},
    {"code_commit": "abc", "seed": 1, "hyperparameters": {"a": 1.5, "b": 2}, "ci_run_id": "10"},
]


def by_hand(lineage: dict[str, Any]) -> str:
    fields = ("code_commit", "data_version", "feature_pipeline_version", "environment")
    spec = {f: lineage.get(f) for f in (*fields, "hyperparameters", "seed")}
    text_ = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text_.encode()).hexdigest()


def test_upgrade_fingerprints_stored_lineages_and_downgrade_drops_them(engine: Engine) -> None:
    migrate.upgrade(engine, "0004")
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO registered_models (id, name, description, tags, last_version, "
                "created_by, created_at, updated_at) VALUES (1, 'm', '', '{}', 3, 't', :n, :n)"
            ),
            {"n": now},
        )
        for number, lineage in enumerate(LINEAGES, start=1):
            conn.execute(
                text(
                    "INSERT INTO model_versions (id, model_id, version, stage, description, "
                    "lineage, tags, artifact_status, created_by, created_at, updated_at, "
                    "stage_changed_at, rolled_back) VALUES (:id, 1, :id, 'candidate', '', "
                    ":lineage, '{}', 'missing', 't', :n, :n, :n, false)"
                ),
                {"id": number, "lineage": json.dumps(lineage), "n": now},
            )

    migrate.upgrade(engine, "0007")
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT lineage_fingerprint FROM model_versions ORDER BY id")
        ).scalars()
        fingerprints = list(found)
    assert fingerprints == [by_hand(lineage) for lineage in LINEAGES]
    assert fingerprints == [lineage_fingerprint(lineage) for lineage in LINEAGES]
    # Key order and fields outside the specification (ci_run_id) do not matter.
    assert fingerprints[1] == fingerprints[2] != fingerprints[0]
    columns = {c["name"]: c for c in inspect(engine).get_columns("model_versions")}
    assert columns["lineage_fingerprint"]["nullable"] is False
    assert INDEX in {i["name"] for i in inspect(engine).get_indexes("model_versions")}
    assert {"reproductions", "data_checks"} <= set(inspect(engine).get_table_names())

    migrate.downgrade(engine, "0004")
    assert "lineage_fingerprint" not in {
        c["name"] for c in inspect(engine).get_columns("model_versions")
    }
    assert not {"reproductions", "data_checks"} & set(inspect(engine).get_table_names())
