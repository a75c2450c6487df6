"""A simulated serving fleet for the rollout tests: server processes on one database, and
Router replicas of the real Python client that follow the serving plan by long poll, score
requests with a fake model and post what they saw through their own batching.

The fake model is deterministic: whether a version errs on a request, and the class it
answers, are drawn from a hash of the request key (:func:`modelgate_client.router.key_point`
with a salt per version), so a test with fixed keys is the same on every run. Every
scoring is tallied where it happens (:class:`Tally`), so a test can compare the registry's
reports with exactly what the fleet sent.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from modelgate_client.router import Plan, Router, key_point
from tests.support.api import ADMIN_TOKEN
from tests.support.servers import ServerProcess, start_server

# Looks come fast: a tick of 0.2 s (and at once after an observation batch commits).
FLEET_ENV = {"ROLLOUT_TICK_SECONDS": "0.2"}


@contextmanager
def fleet_servers(env: Mapping[str, str], count: int = 2) -> Iterator[list[ServerProcess]]:
    """``count`` server processes with ``env`` (``MODELGATE_*`` names without the prefix)
    and the fleet's quick rollout tick."""
    servers = [start_server({**env, **FLEET_ENV}) for _ in range(count)]
    try:
        for server in servers:
            server.wait_ready(timeout=120)
        yield servers
    finally:
        # All shut down together, killed after 5 s: a graceful shutdown can wait out the
        # long polls of routers that are gone, and the database is dropped anyway.
        for server in servers:
            if server.process.poll() is None:
                server.process.send_signal(signal.SIGTERM)
        for server in servers:
            server.stop(timeout=5)


@dataclass(frozen=True)
class Seen:
    """A plan as one router received it."""

    revision: int
    routes: dict[int, float]
    shadows: dict[int, float]


@dataclass
class Tally:
    """What the fleet's fake model did, per (version, role): scorings, errors, classes."""

    requests: Counter[tuple[int, str]] = field(default_factory=Counter)
    errors: Counter[tuple[int, str]] = field(default_factory=Counter)
    answers: dict[tuple[int, str], dict[str, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, version: int, role: str, key: str, error: bool, answer: str | None) -> None:
        with self.lock:
            self.requests[(version, role)] += 1
            if error:
                self.errors[(version, role)] += 1
            elif answer is not None:
                self.answers.setdefault((version, role), {})[key] = answer


class FakeModel:
    """Version ``v`` errs on a request with probability ``error_rates[v]`` and answers class
    "fraud" or "ok"; ``flip[v]`` is the share of requests on which it answers the opposite
    of version 1 (the incumbent)."""

    def __init__(
        self, model: str, error_rates: Mapping[int, float], flip: Mapping[int, float] | None = None
    ) -> None:
        self.model = model
        self.error_rates = dict(error_rates)
        self.flip = dict(flip or {})
        self.tally = Tally()

    def answer(self, key: str, version: int) -> str:
        base = "fraud" if key_point(self.model, key, "class") < 0.3 else "ok"
        if key_point(self.model, key, f"flip:{version}") < self.flip.get(version, 0.0):
            return "ok" if base == "fraud" else "fraud"
        return base

    def errs(self, key: str, version: int) -> bool:
        return key_point(self.model, key, f"error:{version}") < self.error_rates[version]

    def scorer(self, key: str, role_of: Any) -> Any:
        def score(version: int) -> dict[str, str]:
            role = role_of(version)
            if self.errs(key, version):
                self.tally.add(version, role, key, True, None)
                raise RuntimeError(f"version {version} failed on {key}")
            answer = self.answer(key, version)
            self.tally.add(version, role, key, False, answer)
            return {"class": answer}

        return score


class Fleet:
    """``replicas`` routers, each following both servers (in a different order), serving
    keys ``{prefix}-{i}`` in turn with a :class:`FakeModel`."""

    def __init__(
        self, servers: list[ServerProcess], model: str, fake: FakeModel, *, replicas: int = 4,
        batch_size: int = 250,
    ) -> None:  # fmt: skip
        self.model = model
        self.fake = fake
        self.seen: list[list[Seen]] = [[] for _ in range(replicas)]
        urls = [s.base_url for s in servers]
        self.routers: list[Router] = []
        for i in range(replicas):
            order = urls[i % len(urls) :] + urls[: i % len(urls)]
            self.routers.append(
                Router(
                    order,
                    model,
                    token=ADMIN_TOKEN,
                    wait=2.0,
                    batch_size=batch_size,
                    batch_age=0.2,
                    shadow_queue=100_000,
                    on_change=partial(self._seen, i),
                )
            )
        for router in self.routers:
            assert router.wait_ready(30), router.last_error
        self.served = 0

    def _seen(self, i: int, plan: Plan) -> None:
        self.seen[i].append(
            Seen(
                plan.revision,
                {r.version: r.weight for r in plan.routes},
                {s.version: s.share for s in plan.shadows},
            )
        )

    def serve(self, n: int, prefix: str) -> Counter[int]:
        """``n`` requests over the replicas in turn; returns the versions that answered."""
        picked: Counter[int] = Counter()
        for _ in range(n):
            i = self.served
            self.served += 1
            router = self.routers[i % len(self.routers)]
            key = f"{prefix}-{i}"
            primary = router.pick(key)
            role_of = lambda v, p=primary: "primary" if v == p else "shadow"  # noqa: E731
            # The fake model failing a request raises: recorded as an error.
            with contextlib.suppress(RuntimeError):
                router.serve(key, self.fake.scorer(key, role_of))
            picked[primary] += 1
        return picked

    def flush(self) -> None:
        for router in self.routers:
            assert router.flush(30), router.observation_stats

    def wait_for_revision(self, revision: int) -> None:
        for router in self.routers:
            assert router.wait_for_revision(revision, timeout=30), (revision, router.revision)

    def close(self) -> None:
        """Shadow scorings finish, queued observations are sent, the routers stop."""
        # Together: each close waits for its router's long poll to end.
        with ThreadPoolExecutor(len(self.routers)) as pool:
            list(pool.map(lambda router: router.close(flush_timeout=60), self.routers))

    def stats(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for router in self.routers:
            s = router.observation_stats
            total.update(
                queued=s.queued, sent=s.sent, dropped=s.dropped, rejected=s.rejected,
                failed=s.failed,
            )  # fmt: skip
        return dict(total)
