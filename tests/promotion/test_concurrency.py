"""Fifty promotions of fifty versions of one model, at once, over two server processes on
one PostgreSQL: never two production versions, a history that is one unbroken chain, and
an audit log that verifies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from app.settings import Settings
from tests.support.api import ADMIN_TOKEN, API, auth, create_model
from tests.support.flows import (
    ProductionWatcher,
    assert_clean,
    audit_verify,
    check_history_chain,
    history,
    make_team,
    new_version,
    permissive_policy,
    production_changes,
    production_rows,
    production_version,
    put_policy,
    race,
    server_settings,
)
from tests.support.servers import ServerProcess, running_servers

pytestmark = pytest.mark.postgres_only

MODEL = "raced"
PROMOTIONS = 50


@pytest.fixture
def two_servers(settings: Settings) -> Iterator[list[ServerProcess]]:
    with running_servers(server_settings(settings), count=2) as servers:
        yield servers


def test_fifty_concurrent_promotions_leave_one_production_version(
    two_servers: list[ServerProcess], settings: Settings
) -> None:
    a, b = (server.base_url for server in two_servers)
    with httpx.Client(base_url=a, headers=auth(ADMIN_TOKEN), timeout=120.0) as admin:
        team = make_team(admin)
        create_model(admin, MODEL, primary_metric="accuracy", primary_dataset="holdout")
        # Continuous deployment with a gate every version passes: each request applies at
        # once and replaces production, so all fifty fight for the same row.
        put_policy(
            admin,
            MODEL,
            permissive_policy(
                rules=[{"kind": "no_regression", "delta": -1.0}, {"kind": "artifact_intact"}],
                approvals=0,
                auto_promote=True,
                require_staging=False,
            ),
        )
        with ThreadPoolExecutor(max_workers=8) as pool:
            versions = sorted(
                pool.map(
                    lambda i: new_version(admin, MODEL, accuracy=0.5 + i / 200), range(PROMOTIONS)
                )
            )
        assert versions == list(range(1, PROMOTIONS + 1))

        with httpx.Client(headers=team.submitter, timeout=120.0) as http:

            def promotion(base: str, version: int) -> Callable[[], httpx.Response]:
                return lambda: http.post(
                    f"{base}{API}/models/{MODEL}/promotions",
                    json={"version": version, "target": "production"},
                )

            calls = [promotion((a, b)[i % 2], v) for i, v in enumerate(versions)]
            with ProductionWatcher(settings.database_url, MODEL) as watcher:
                responses = race(calls)

        assert_clean(responses, ok=(201,))
        applied = [
            r.json()["version"]
            for r in responses
            if r.status_code == 201 and r.json()["status"] == "applied"
        ]
        # Every gate passes, so every request is applied, one after another.
        assert len(applied) == PROMOTIONS, [r.text for r in responses if r.status_code != 201][:3]
        assert watcher.counts, "the watcher never saw the database"
        assert max(watcher.counts) <= 1, max(watcher.counts)
        # Nor, once there was one, a moment without a production version.
        first = watcher.counts.index(1) if 1 in watcher.counts else len(watcher.counts)
        assert set(watcher.counts[first:]) <= {1}

        # Exactly one production version, in the database and through both servers.
        (serving,) = production_rows(settings.database_url, MODEL)
        assert production_version(admin, MODEL) == serving
        with httpx.Client(base_url=b, headers=auth(ADMIN_TOKEN)) as other:
            assert production_version(other, MODEL) == serving

        entries = history(admin, MODEL)
        assert len(entries) == len(applied)
        check_history_chain(entries)
        assert entries[0]["version"] == serving
        assert sorted(e["version"] for e in entries) == sorted(applied)
        assert production_changes(admin, MODEL) == [
            (e["version"], e["via"]) for e in reversed(entries)
        ]
        # Every replaced version is archived; the one serving is the one the chain ends with.
        listed = admin.get(f"{API}/models/{MODEL}/versions", params={"limit": 100}).json()
        stages = {v["version"]: v["stage"] for v in listed["items"]}
        assert [v for v, stage in stages.items() if stage == "production"] == [serving]
        assert {stage for v, stage in stages.items() if v != serving} == {"archived"}
        audit_verify(admin)
