"""Revision 0016 fills the version search terms of stored versions and seals stored
webhook secrets under the configured key (refusing to run without one); its downgrade
opens them again."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, inspect, text

from app.db import migrate
from app.events.secretbox import SecretBox
from tests.support.api import SECRET_KEY

SECRET = "whsec-stored-in-clear-before-0016"


def _seed(engine: Engine) -> None:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO registered_models (id, name, description, tags, last_version, "
                "created_by, created_at, updated_at) VALUES (1, 'm', '', '{}', 2, 't', :n, :n)"
            ),
            {"n": now},
        )
        for number, tags, lineage in (
            (1, {"team": "risk"}, {"data_version": "d1", "seed": 7, "code_dirty": False}),
            (2, {}, {"data_version": "d2", "hyperparameters": {"a": 1}}),
        ):
            conn.execute(
                text(
                    "INSERT INTO model_versions (id, model_id, version, stage, description, "
                    "lineage, lineage_fingerprint, tags, artifact_status, created_by, "
                    "created_at, updated_at, stage_changed_at, rolled_back) VALUES (:id, 1, "
                    ":id, 'candidate', '', :lineage, :fp, :tags, 'missing', 't', :n, :n, :n, "
                    "false)"
                ),
                {"id": number, "lineage": json.dumps(lineage), "tags": json.dumps(tags),
                 "fp": "0" * 64, "n": now},
            )  # fmt: skip
        conn.execute(
            text(
                "INSERT INTO webhooks (id, url, event_types, secret, description, active, "
                "created_by, created_at) VALUES (1, 'https://hooks.example.com/x', '[]', "
                ":secret, '', true, 't', :n)"
            ),
            {"secret": SECRET, "n": now},
        )


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_upgrade_fills_terms_and_seals_secrets(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELGATE_SECRET_KEY", raising=False)
    migrate.upgrade(engine, "0012")
    _seed(engine)

    # Without a key the upgrade stops, and nothing of it is left behind.
    with pytest.raises(RuntimeError, match="MODELGATE_SECRET_KEY"):
        migrate.upgrade(engine, "0016")
    assert migrate.current_revision(engine) == "0012"
    assert "version_search_terms" not in inspect(engine).get_table_names()

    migrate.upgrade(engine, "0016", secret_key=SECRET_KEY)
    with engine.connect() as conn:
        terms = set(
            conn.execute(text("SELECT version, key, value_sha256 FROM version_search_terms"))
        )
        row = conn.execute(text("SELECT * FROM webhooks WHERE id = 1")).mappings().one()
    assert terms == {
        (1, "tag:team", _sha("risk")),
        (1, "lineage:data_version", _sha("d1")),
        (1, "lineage:seed", _sha("7")),
        (1, "lineage:code_dirty", _sha("false")),
        (2, "lineage:data_version", _sha("d2")),
    }
    assert "secret" not in row
    sealed = str(row["secret_sealed"])
    assert SECRET not in sealed
    assert SECRET.encode().hex() not in sealed
    assert SecretBox.from_texts(SECRET_KEY).open(sealed) == SECRET

    migrate.downgrade(engine, "0012", secret_keys=(SECRET_KEY,))
    with engine.connect() as conn:
        back = conn.execute(text("SELECT secret FROM webhooks WHERE id = 1")).scalar_one()
    assert back == SECRET
    assert "version_search_terms" not in inspect(engine).get_table_names()
