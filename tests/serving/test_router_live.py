"""The router against real server processes: it follows changes, survives a killed
server process (moves to another, misses no revision), keeps serving its last plan while
the registry is down, and fetches artifacts once per digest, checked by sha256."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from modelgate_client.router import ArtifactCorrupt, Router
from tests.serving.conftest import admin, model_in_production, server_settings
from tests.support.api import ADMIN_TOKEN, API, auth
from tests.support.flows import new_version, promote
from tests.support.servers import ServerProcess, start_server

pytestmark = pytest.mark.timeout(240)


def rollback(http: httpx.Client, model: str, to: int | None = None) -> int:
    body: dict[str, object] = {"reason": "test"}
    if to is not None:
        body["to_version"] = to
    response = http.post(f"{API}/models/{model}/rollback", json=body)
    assert response.status_code == 200, response.text
    plan = http.get(f"{API}/models/{model}/serving").json()
    return int(plan["revision"])


def test_the_router_follows_changes_and_moves_to_another_process_when_one_dies(
    two_servers: list[ServerProcess], tmp_path: Path
) -> None:
    a, b = two_servers
    with admin(b.base_url) as http:
        model = model_in_production(http, versions=3)
        router = Router(
            [a.base_url, b.base_url],
            model,
            token=ADMIN_TOKEN,
            cache_dir=tmp_path / "cache",
            wait=10,
        )
        try:
            assert router.wait_ready(30)
            assert router.revision == 3
            assert router.pick("k") == 3
            revision = rollback(http, model)
            assert router.wait_for_revision(revision, 5)
            assert router.pick("k") == 2
            a.kill()  # the process the router is watching through
            # Changes while it moves over: the router ends at the newest, having missed
            # nothing it needs (the plan is whole state at a revision).
            promote(http, model, new_version(http, model, accuracy=0.95), "production")
            revision = rollback(http, model, to=3)
            assert router.wait_for_revision(revision, 15), (router.revision, router.last_error)
            assert router.pick("k") == 3
            assert router.errors >= 1
        finally:
            router.close()


def test_the_router_serves_its_last_plan_while_the_registry_is_down(
    settings: Settings, tmp_path: Path
) -> None:
    env = server_settings(settings)
    server = start_server(env)
    server.wait_ready(120)
    port = server.port
    with admin(server.base_url) as http:
        model = model_in_production(http, versions=2)
    router = Router(server.base_url, model, token=ADMIN_TOKEN, cache_dir=tmp_path / "cache", wait=5)
    restarted: ServerProcess | None = None
    try:
        assert router.wait_ready(30)
        artifact = router.artifact(2)  # cached before the outage
        server.kill()
        picks: list[int] = []
        slowest = 0.0
        stop = time.monotonic() + 3.0
        while time.monotonic() < stop:  # requests keep being served, without waiting
            started = time.monotonic()
            picks.append(router.pick(f"key-{len(picks)}"))
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.001)
        assert set(picks) == {2}
        assert slowest < 0.05
        assert router.errors >= 1
        assert router.last_error is not None
        assert router.artifact(2) == artifact  # from the cache, no registry needed
        # The registry comes back (same address), with a change made meanwhile.
        restarted = start_server(env, port=port)
        restarted.wait_ready(120)
        with admin(restarted.base_url) as http:
            revision = rollback(http, model)
        assert router.wait_for_revision(revision, 20), router.last_error
        assert router.pick("k") == 1
    finally:
        router.close()
        server.kill()
        if restarted is not None:
            restarted.kill()


def test_artifacts_are_fetched_once_per_digest_and_checked(
    two_servers: list[ServerProcess], tmp_path: Path
) -> None:
    a, _ = two_servers
    requests: list[str] = []
    lock = threading.Lock()

    def count(request: httpx.Request) -> None:
        with lock:
            requests.append(f"{request.method} {request.url.path}")

    http = httpx.Client(
        base_url=a.base_url, headers=auth(ADMIN_TOKEN), timeout=60,
        event_hooks={"request": [count]},
    )  # fmt: skip
    with http:
        model = model_in_production(http, versions=1)
        router = Router(http, model, cache_dir=tmp_path / "cache", wait=5)
        try:
            assert router.wait_ready(30)
            paths = []
            threads = [
                threading.Thread(target=lambda: paths.append(router.artifact(1))) for _ in range(8)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(set(paths)) == 1
            downloads = [r for r in requests if r.startswith("GET ") and r.endswith("/1/artifact")]
            assert len(downloads) == 1
            expected = router.plan.production.sha256  # type: ignore[union-attr]
            assert paths[0].name == expected
            # A plan naming another digest for the same bytes: refused, nothing cached.
            document = dict(router.plan.raw)  # type: ignore[union-attr]
            wrong = "0" * 64
            document["routes"] = [
                {**r, "artifact": {**r["artifact"], "sha256": wrong}} for r in document["routes"]
            ]
            document["production"] = None
            document["revision"] += 1
            router.close()
            router.set_plan(document)
            with pytest.raises(ArtifactCorrupt):
                router.artifact(1)
            assert not (tmp_path / "cache" / wrong).exists()
            assert [p.name for p in (tmp_path / "cache").iterdir()] == [expected]
        finally:
            router.close()
