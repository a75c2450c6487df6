"""The router reports what it serves: per request and version an observation (key,
version, primary or shadow, latency, error, prediction), sent in batches to a real server
process; a shadow never changes or fails the answer; a full queue drops and counts
instead of blocking; lost answers and 5xx are retried without counting twice; rows the
server refuses are dropped alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import Settings
from modelgate_client.router import Router
from tests.serving.conftest import admin, model_in_production, server_settings
from tests.support.api import ADMIN_TOKEN, API, auth
from tests.support.flows import new_version
from tests.support.servers import ServerProcess, running_servers

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def server(settings: Settings) -> Iterator[ServerProcess]:
    # No analysis: these tests are about what the router reports, not what it decides.
    env = {**server_settings(settings), "ROLLOUT_DRIVER_ENABLED": "false"}
    with running_servers(env, count=1, timeout=120) as servers:
        yield servers[0]


def start_rollout(http: httpx.Client, model: str, version: int, strategy: str,
                  weight: float) -> None:  # fmt: skip
    body = {"version": version, "strategy": strategy,
            "steps": [{"weight": weight, "hold": {"duration_seconds": 3600}}]}  # fmt: skip
    response = http.post(f"{API}/models/{model}/rollouts", json=body)
    assert response.status_code == 201, response.text


def plan_with_shadow(http: httpx.Client, model: str, shadow: int, share: float) -> dict[str, Any]:
    """The model's real plan plus a shadow entry (a canary and a shadow rollout cannot run
    at once; the registry takes the shadow's observations as an alias's version)."""
    plan: dict[str, Any] = http.get(f"{API}/models/{model}/serving").json()
    entry = plan["routes"][0]
    return {**plan, "shadows": [{**entry, "version": shadow, "share": share}]}


def arms(http: httpx.Client, model: str) -> dict[tuple[int, str], dict[str, Any]]:
    summary = http.get(f"{API}/models/{model}/observations").json()
    return {(a["version"], a["role"]): a for a in summary["arms"]}


def test_serve_follows_the_weights_scores_shadows_aside_and_reports_every_scoring(
    server: ServerProcess, tmp_path: Path
) -> None:
    with admin(server.base_url) as http:
        model = model_in_production(http, versions=1)
        canary = new_version(http, model)
        shadow = new_version(http, model, artifact=False)
        assert canary == 2
        start_rollout(http, model, canary, "canary", 25.0)
        alias = http.put(f"{API}/models/{model}/aliases/challenger", json={"version": shadow})
        assert alias.status_code == 200, alias.text
        router = Router(server.base_url, model, token=ADMIN_TOKEN, start=False,
                        cache_dir=tmp_path, batch_size=100, batch_age=0.2)  # fmt: skip
        plan = router.set_plan(plan_with_shadow(http, model, shadow, 40.0))
        assert {(r.version, r.weight) for r in plan.routes} == {(1, 75.0), (2, 25.0)}
        answered: dict[int, int] = {1: 0, 2: 0}
        shadow_calls = 0
        lock = threading.Lock()

        def scorer(fail: bool) -> Any:
            def score(version: int) -> dict[str, Any]:
                nonlocal shadow_calls
                if version == shadow:
                    with lock:
                        shadow_calls += 1
                    raise RuntimeError("the shadow model is broken")
                if fail:
                    raise ValueError("the primary failed")
                return {"class": "fraud" if version == 2 else "ok"}

            return score

        errors_v2 = 0
        for i in range(2_000):
            key = f"user-{i}"
            version = router.pick(key)
            fail = version == 2 and i % 10 == 0
            try:
                answer = router.serve(key, scorer(fail))
            except ValueError:
                assert fail  # the primary's failure reaches the caller
                errors_v2 += 1
                continue
            # The shadow's failure never reaches the caller; the answer is the primary's.
            assert answer == {"class": "fraud" if version == 2 else "ok"}
            answered[version] += 1
        assert router.flush(timeout=180)
        router.close()
        stats = router.observation_stats
        assert stats.dropped == stats.rejected == stats.failed == 0, stats
        assert stats.sent == stats.queued
        assert stats.batches >= 2_000 // 100
        seen = arms(http, model)
        # Every request was reported once, under the version that answered it.
        assert seen[(1, "primary")]["requests"] == answered[1]
        assert seen[(2, "primary")]["requests"] == answered[2] + errors_v2
        assert seen[(2, "primary")]["errors"] == errors_v2
        assert seen[(1, "primary")]["errors"] == 0
        assert seen[(2, "primary")]["predictions"] == {"fraud": answered[2]}
        assert seen[(1, "primary")]["latency_ms_mean"] is not None
        # The 25 % route and the 40 % shadow share, within binomial bounds of 2,000 keys.
        assert 400 <= answered[2] + errors_v2 <= 600
        assert 700 <= shadow_calls <= 900
        assert seen[(shadow, "shadow")]["requests"] == shadow_calls
        assert seen[(shadow, "shadow")]["errors"] == shadow_calls


class FlakyTransport(httpx.BaseTransport):
    """Forwards to the server, but for the first observation posts: answer 503 without
    forwarding, then forward and lose the answer (as a dropped connection would)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.posts = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/observations"):
            self.posts += 1
            if self.posts == 1:
                return httpx.Response(503, json={"title": "unavailable"})
            if self.posts == 2:
                response = self.inner.handle_request(request)
                response.read()
                assert response.status_code == 202, response.text
                raise httpx.ReadError("connection reset after the server answered")
        return self.inner.handle_request(request)


def test_a_lost_answer_and_a_5xx_are_retried_and_counted_once(server: ServerProcess) -> None:
    transport = FlakyTransport()
    with admin(server.base_url) as http:
        model = model_in_production(http, versions=1)
    source = httpx.Client(
        base_url=server.base_url, headers=auth(ADMIN_TOKEN), transport=transport, timeout=30
    )
    router = Router(source, model, start=False, batch_size=50, batch_age=0.1)
    try:
        for i in range(50):
            router.record(f"k-{i}", 1, latency_ms=3.0, prediction={"value": 1.5})
        assert router.flush(60)
        stats = router.observation_stats
        assert transport.posts == 3
        assert (stats.retries, stats.sent, stats.failed) == (2, 50, 0), stats
        with admin(server.base_url) as http:
            assert arms(http, model)[(1, "primary")]["requests"] == 50  # not 100
    finally:
        router.close()
        source.close()


def test_rows_the_server_refuses_are_dropped_alone(server: ServerProcess) -> None:
    with admin(server.base_url) as http:
        model = model_in_production(http, versions=1)
        outside = new_version(http, model, artifact=False)  # not in the serving plan
        router = Router(server.base_url, model, token=ADMIN_TOKEN, start=False, batch_size=10)
        for i in range(10):
            router.record(f"k-{i}", 999 if i == 4 else 1, latency_ms=1.0)
        router.record("a key with spaces and ünïcode", 1)  # sent under its hash
        assert router.flush(timeout=120)
        stats = router.observation_stats
        assert (stats.rejected, stats.sent, stats.failed) == (1, 10, 0), stats
        # More refused rows than the problem lists (20): every row of the version it names
        # goes, in one resend.
        router.close()
        wide = Router(server.base_url, model, token=ADMIN_TOKEN, start=False, batch_size=60)
        for i in range(60):
            wide.record(f"j-{i}", outside if i % 4 else 1, latency_ms=1.0)
        wide.close()
        stats = wide.observation_stats
        assert (stats.rejected, stats.sent, stats.failed, stats.batches) == (45, 15, 0, 1), stats
        assert arms(http, model)[(1, "primary")]["requests"] == 25


def test_a_full_queue_drops_and_counts_instead_of_blocking_and_close_gives_up() -> None:
    # Nothing listens on port 9: every send fails to connect.
    router = Router("http://127.0.0.1:9", "m", start=False, queue_size=100, batch_size=500,
                    batch_age=30)  # fmt: skip
    accepted = [router.record(f"k-{i}", 1, latency_ms=1.0) for i in range(250)]
    assert accepted.count(True) == 100
    stats = router.observation_stats
    assert stats.dropped == 150
    assert stats.queued == 100
    router.close(flush_timeout=0.5)
    assert stats.failed == 100
    assert stats.sent == 0
    assert stats.last_error is not None
    assert router.record("late", 1) is False  # closed: dropped, never blocking
    assert stats.dropped == 151


def test_serve_async_keeps_shadow_failures_from_the_caller_and_reports_both(
    server: ServerProcess, tmp_path: Path
) -> None:
    with admin(server.base_url) as http:
        model = model_in_production(http, versions=1)
        shadow = new_version(http, model)
        start_rollout(http, model, shadow, "shadow", 100.0)
        # The router follows the registry's plan: the shadow rollout's share.
        router = Router(server.base_url, model, token=ADMIN_TOKEN, cache_dir=tmp_path,
                        batch_size=50, wait=5)  # fmt: skip
        assert router.wait_ready(30)
        assert router.plan is not None
        assert [(s.version, s.share) for s in router.plan.shadows] == [(shadow, 100.0)]

        async def score(version: int) -> float:
            await asyncio.sleep(0)
            if version == shadow:
                raise RuntimeError("the shadow is broken")
            return 0.25

        async def main() -> list[float]:
            answers = [await router.serve_async(f"a-{i}", score) for i in range(200)]
            await asyncio.sleep(0.1)  # let the shadow tasks finish on this loop
            return answers

        assert asyncio.run(main()) == [0.25] * 200
        assert router.flush(timeout=120)
        router.close()
        seen = arms(http, model)
        assert seen[(1, "primary")]["requests"] == 200
        assert seen[(1, "primary")]["errors"] == 0
        assert seen[(shadow, "shadow")]["requests"] == 200
        assert seen[(shadow, "shadow")]["errors"] == 200


def test_without_a_key_the_pick_is_a_draw_by_the_weights() -> None:
    router = Router("http://127.0.0.1:9", "m", start=False)
    entry = {"stage": "production", "artifact": None}
    router.set_plan({
        "model": "m", "revision": 1, "production": {**entry, "version": 1},
        "routes": [{**entry, "version": 1, "weight": 80.0},
                   {**entry, "version": 2, "weight": 20.0}],
        "shadows": [], "aliases": [],
    })  # fmt: skip
    picks = [router.pick() for _ in range(20_000)]
    # 20 % of 20,000 is 4,000 (sd 57): within 4.5 sd, and not sticky.
    assert abs(picks.count(2) - 4_000) <= 255
    assert len({router.pick(None) for _ in range(200)}) == 2
    router.close()
