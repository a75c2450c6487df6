"""Rollbacks racing promotions on one model over two server processes: one production
version at every moment and at the end, and a history that matches the audit log."""

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
    promote,
    put_policy,
    race,
    server_settings,
)
from tests.support.servers import ServerProcess, running_servers

pytestmark = pytest.mark.postgres_only

MODEL = "oncall"


@pytest.fixture
def two_servers(settings: Settings) -> Iterator[list[ServerProcess]]:
    with running_servers(server_settings(settings), count=2) as servers:
        yield servers


def test_rollbacks_racing_promotions(two_servers: list[ServerProcess], settings: Settings) -> None:
    a, b = (server.base_url for server in two_servers)
    with httpx.Client(base_url=a, headers=auth(ADMIN_TOKEN), timeout=120.0) as admin:
        team = make_team(admin)
        create_model(admin, MODEL, primary_metric="accuracy", primary_dataset="holdout")
        put_policy(admin, MODEL, permissive_policy(rules=[{"kind": "artifact_intact"}]))
        # Six versions served in turn (1..5 now archived, with their artifacts), and ten
        # fresh candidates.
        served = [new_version(admin, MODEL) for _ in range(6)]
        for number in served:
            promote(admin, MODEL, number, "production", status="applied")
        with ThreadPoolExecutor(max_workers=5) as pool:
            fresh = list(pool.map(lambda _: new_version(admin, MODEL), range(10)))
        before = len(history(admin, MODEL))

        with httpx.Client(timeout=120.0) as http:

            def promotion(base: str, version: int) -> Callable[[], httpx.Response]:
                return lambda: http.post(
                    f"{base}{API}/models/{MODEL}/promotions",
                    json={"version": version, "target": "production"},
                    headers=team.submitter,
                )

            def rollback(base: str, to_version: int | None) -> Callable[[], httpx.Response]:
                body: dict[str, object] = {"reason": f"race to {to_version or 'previous'}"}
                if to_version is not None:
                    body["to_version"] = to_version
                return lambda: http.post(
                    f"{base}{API}/models/{MODEL}/rollback", json=body, headers=team.operator
                )

            calls = []
            for i in range(10):
                base = (a, b)[i % 2]
                calls.append(promotion(base, fresh[i]))
                # Named targets (some twice: the second may find it serving), or the previous
                # stable version.
                target = served[i % 3] if i % 2 else None
                calls.append(rollback((b, a)[i % 2], target))
            with ProductionWatcher(settings.database_url, MODEL) as watcher:
                responses = race(calls)

        assert_clean(responses, ok=(200, 201))
        promotions, rollbacks = responses[0::2], responses[1::2]
        assert [r.status_code for r in promotions] == [201] * 10, [r.text for r in promotions]
        assert {r.json()["status"] for r in promotions} == {"applied"}
        done = [r for r in rollbacks if r.status_code == 200]
        for refused in (r for r in rollbacks if r.status_code != 200):
            assert refused.status_code == 409, refused.text
            assert refused.json()["code"] == "rollback-not-possible", refused.text
        assert done, [r.text for r in rollbacks]
        assert watcher.counts, "the watcher never saw the database"
        assert set(watcher.counts) == {1}, set(watcher.counts)  # never none, never two

        (serving,) = production_rows(settings.database_url, MODEL)
        assert production_version(admin, MODEL) == serving
        with httpx.Client(base_url=b, headers=auth(ADMIN_TOKEN)) as other:
            assert production_version(other, MODEL) == serving

        entries = history(admin, MODEL)
        check_history_chain(entries)
        assert entries[0]["version"] == serving
        assert len(entries) == before + 10 + len(done)
        assert [e["via"] for e in entries[: len(entries) - before]].count("rollback") == len(done)
        # The audit log tells the same story, in the same order.
        assert production_changes(admin, MODEL) == [
            (e["version"], e["via"]) for e in reversed(entries)
        ]
        # Each rollback's answer names a step of the chain: what it replaced, what it served.
        steps = {(e["replaced_version"], e["version"]) for e in entries if e["via"] == "rollback"}
        for response in done:
            body = response.json()
            assert (body["replaced_version"], body["serving_version"]) in steps
        audit_verify(admin)
