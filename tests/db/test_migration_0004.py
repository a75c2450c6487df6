"""Revision 0004 fills ``metrics.stage`` from the versions' stages, and takes it away again."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, inspect, text

from app.db import migrate

STAGES = ("candidate", "staging", "production", "archived", "candidate")
INDEX = "ix_metrics_model_id_name_dataset_stage_value"


def seed_0003(engine: Engine) -> None:
    """One model whose versions sit in every stage, each with a whole-dataset metric and a
    sliced one, written as revision 0003 knew them."""
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO registered_models (id, name, description, tags, last_version, "
                "created_by, created_at, updated_at) "
                "VALUES (1, 'm', '', '{}', :n, 't', :now, :now)"
            ),
            {"n": len(STAGES), "now": now},
        )
        for number, stage in enumerate(STAGES, start=1):
            conn.execute(
                text(
                    "INSERT INTO model_versions (id, model_id, version, stage, description, "
                    "lineage, tags, artifact_status, created_by, created_at, updated_at, "
                    "stage_changed_at, rolled_back) VALUES (:id, 1, :id, :stage, '', '{}', "
                    "'{}', 'missing', 't', :now, :now, :now, false)"
                ),
                {"id": number, "stage": stage, "now": now},
            )
            for slice_ in ("", "DE"):
                conn.execute(
                    text(
                        "INSERT INTO metrics (version_id, model_id, name, dataset, slice, value, "
                        "source, created_at) VALUES (:v, 1, 'accuracy', 'holdout', :s, :value, "
                        "'submitted', :now)"
                    ),
                    {"v": number, "s": slice_, "value": 0.5 + number / 100, "now": now},
                )


def test_upgrade_copies_each_version_stage_and_downgrade_drops_it(engine: Engine) -> None:
    migrate.upgrade(engine, "0003")
    seed_0003(engine)

    migrate.upgrade(engine, "0004")
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT v.version, v.stage, m.stage FROM metrics m "
                "JOIN model_versions v ON v.id = m.version_id ORDER BY m.id"
            )
        ).all()
    assert [(r[0], r[2]) for r in rows] == [
        (n, stage) for n, stage in enumerate(STAGES, start=1) for _ in range(2)
    ]
    columns = {c["name"]: c for c in inspect(engine).get_columns("metrics")}
    assert columns["stage"]["nullable"] is False
    assert INDEX in {i["name"] for i in inspect(engine).get_indexes("metrics")}

    migrate.downgrade(engine, "0003")
    assert "stage" not in {c["name"] for c in inspect(engine).get_columns("metrics")}
    assert INDEX not in {i["name"] for i in inspect(engine).get_indexes("metrics")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM metrics")).scalar_one() == 2 * len(STAGES)
