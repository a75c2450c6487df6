"""Looks come at the analysis's ``interval_seconds``, however often observation batches
wake the driver (decision record 0022). The driver runs on an injected clock: the test
counts looks against fake time, with no wall-clock assertion."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import numpy as np
from fastapi.testclient import TestClient

from app.rollouts.driver import Driver
from tests.rollouts.conftest import API, model_with_candidate, observations
from tests.support.flows import HELD_STEP, start_rollout


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def test_looks_come_every_interval_even_when_every_second_brings_a_batch(
    client: TestClient,
) -> None:
    model = model_with_candidate(client)
    # 30 s between looks: the process's own driver (real time) takes none in this test.
    started = start_rollout(client, model, [HELD_STEP], interval=30)
    rollout_id = started["id"]
    batch = observations(np.random.default_rng(2), {1: 50, 2: 50}, 1000, {1: 0.01, 2: 0.01},
                         prefix="iv")  # fmt: skip
    assert client.post(f"{API}/models/{model}/observations",
                       json={"observations": batch}).status_code == 202  # fmt: skip

    app = client.app
    clock = FakeClock(datetime.fromisoformat(started["created_at"]))
    driver = Driver(sessions=app.state.sessions, settings=app.state.settings, clock=clock)  # type: ignore[attr-defined]
    taken = []
    for second in range(0, 96):  # a nudge (an observation batch) and a round every second
        clock.now = datetime.fromisoformat(started["created_at"]) + timedelta(seconds=second)
        driver.nudge(model)
        if driver.tick():
            taken.append(second)
    assert taken == [30, 60, 90]
    rollout = client.get(f"{API}/rollouts/{rollout_id}").json()
    assert rollout["look_count"] == 3
    assert [look["number"] for look in rollout["looks"]] == [1, 2, 3]
    assert all(look["action"] == "hold" for look in rollout["looks"])
    times = [datetime.fromisoformat(look["at"]) for look in rollout["looks"]]
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(times)] == [30, 30]
