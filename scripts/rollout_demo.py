"""Progressive delivery, end to end: a simulated fleet behind the router, a good canary
that completes and a bad one that is aborted by the analysis (run it through
``scripts/rollout-demo``).

What it does:

1. Uses the server at ``--url``/``MODELGATE_URL`` with an admin token (``--token`` or
   ``MODELGATE_TOKEN``), or starts one of its own (SQLite and an artifact directory in a
   temporary directory, removed afterwards).
2. Registers a model with version 1 in production and two candidates: version 2 (as good
   as version 1) and version 3 (twice its error rate).
3. Runs a fleet of ``--replicas`` replica threads, each with its own
   :class:`modelgate_client.router.Router`: every replica serves synthetic requests
   through ``router.serve`` (the router picks the version by the plan's weights and
   reports every request as an observation, in batches).
4. Rolls out version 2 as a canary (it must complete: version 2 becomes production),
   then version 3 (its error rate is doubled: the analysis must abort it, production
   stays on version 2, and every replica's router must be back on version 2 alone).
5. Prints the timeline (time, event, weights, score) and the fleet's counters; exits 0
   when both outcomes happened as expected, 1 otherwise.

``--fast`` makes the holds, the analysis interval and the traffic small (for tests).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "clients" / "python"))

import httpx  # noqa: E402

from modelgate_client import ModelgateClient, ModelgateError  # noqa: E402
from modelgate_client.rollouts import parse_steps  # noqa: E402
from modelgate_client.router import NoRoute, Router  # noqa: E402

ENDED = ("completed", "aborted")


@dataclass(frozen=True)
class Profile:
    """How long and how hard the demo runs."""

    steps: str
    interval_seconds: int
    requests_per_second: float  # per replica
    timeout: float  # per rollout
    base_error_rate: float


NORMAL = Profile("10:1500obs+10s,50:3000obs+10s,100:10s", 3, 150.0, 600.0, 0.05)
FAST = Profile("20:500obs,60:800obs,100:2s", 1, 120.0, 240.0, 0.05)


def log(line: str) -> None:
    print(line, flush=True)


# The server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnServer:
    """A Modelgate server process on SQLite and a directory, in a temporary directory."""

    def __init__(self, workdir: Path, token: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
        env.update(
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
            MODELGATE_DATABASE_URL=f"sqlite:///{workdir / 'modelgate.db'}",
            MODELGATE_ARTIFACT_STORE=str(workdir / "artifacts"),
            MODELGATE_BOOTSTRAP_ADMIN_TOKEN=token,
            MODELGATE_AUTO_MIGRATE="true",
            MODELGATE_LOG_LEVEL="WARNING",
            MODELGATE_OBSERVATION_WINDOW_SECONDS="5",
            MODELGATE_WEBHOOK_DISPATCHER_ENABLED="false",
        )
        self.log_path = workdir / "server.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            cwd=workdir, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the server exited:\n" + self.tail())
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the server did not get ready:\n" + self.tail())

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


# The model -------------------------------------------------------------------------------


def add_version(mg: ModelgateClient, model: str, note: str) -> int:
    build = uuid.uuid4().hex
    created = mg.create_version(
        model,
        {
            "description": note,
            "lineage": {
                "code_commit": build + build[:8],
                "data_version": "demo-data@1",
                "feature_pipeline_version": "features-v1",
                "environment": "python:3.12-slim",
                "hyperparameters": {"max_depth": 6},
                "seed": 7,
            },
            "metrics": [{"name": "accuracy", "value": 0.9, "dataset": "holdout"}],
        },
    )
    number = int(created.body["version"])
    data = f"rollout demo {model} v{number} {build}".encode()
    path = Path(tempfile.mkdtemp(prefix="modelgate-demo-")) / "model.bin"
    path.write_bytes(data)
    try:
        mg.upload_artifact(model, number, path, sha256=hashlib.sha256(data).hexdigest())
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)
    return number


def register(mg: ModelgateClient) -> tuple[str, int, int, int]:
    model = f"demo-{uuid.uuid4().hex[:8]}"
    mg.create_model(model, primary_metric="accuracy", primary_dataset="holdout",
                    description="scripts/rollout-demo")  # fmt: skip
    mg.put_policy(
        model,
        {
            "staging": {"rules": [], "approvals_required": 0, "auto_promote": True},
            "production": {
                "rules": [{"kind": "artifact_intact"}],
                "approvals_required": 0,
                "auto_promote": True,
                "require_staging": False,
            },
        },
    )
    production = add_version(mg, model, "in production")
    promoted = mg.request_promotion(model, production, target="production").body
    if promoted["status"] != "applied":
        raise RuntimeError(f"version {production} was not promoted: {promoted['status']}")
    good = add_version(mg, model, "good candidate")
    bad = add_version(mg, model, "bad candidate: twice the error rate")
    return model, production, good, bad


# The fleet -------------------------------------------------------------------------------


@dataclass
class Fleet:
    """Replica threads serving synthetic requests through their own routers."""

    url: str
    token: str
    model: str
    error_rates: dict[int, float]
    base_error_rate: float
    replicas: int
    rate: float
    seed: int
    routers: list[Router] = field(default_factory=list)
    arrivals: dict[int, list[float]] = field(default_factory=dict)
    """Revision -> wall-clock times at which each router received that plan."""
    served: dict[int, int] = field(default_factory=dict)
    failed: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for i in range(self.replicas):
            router = Router(self.url, self.model, token=self.token, wait=10, batch_size=250,
                            batch_age=0.5, cache_dir=tempfile.gettempdir(),
                            on_change=self._arrived)  # fmt: skip
            if not router.wait_ready(30):
                raise RuntimeError(f"replica {i}: no serving plan ({router.last_error})")
            self.routers.append(router)
            thread = threading.Thread(target=self._serve, args=(i, router), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _arrived(self, plan: Any) -> None:
        with self._lock:
            self.arrivals.setdefault(int(plan.revision), []).append(time.time())

    def _serve(self, replica: int, router: Router) -> None:
        rng = random.Random(self.seed * 1000 + replica)
        period = 1.0 / self.rate
        next_at = time.monotonic()
        n = 0
        while not self._stop.is_set():
            n += 1
            key = f"r{replica}-{n}"
            x = rng.random()

            def score(version: int, x: float = x) -> dict[str, Any]:
                # Versions answer alike, but each fails at its own rate.
                time.sleep(rng.uniform(0.0005, 0.0015))
                if rng.random() < self.error_rates.get(version, self.base_error_rate):
                    raise RuntimeError("model failure")
                return {"score": round(x, 3)}

            try:
                version = router.pick(key)
                router.serve(key, score)
                ok = True
            except NoRoute:
                continue
            except RuntimeError:
                ok = False
            with self._lock:
                counts = self.served if ok else self.failed
                counts[version] = counts.get(version, 0) + 1
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        for router in self.routers:  # what is still queued, sent before closing
            router.flush(60)
        for router in self.routers:
            router.close()

    def on_plan(self, revision: int, timeout: float) -> bool:
        return all(r.wait_for_revision(revision, timeout) for r in self.routers)


# Rollouts --------------------------------------------------------------------------------


def weights_text(rollout: Mapping[str, Any]) -> str:
    weights = rollout.get("weights") or {}
    if not weights:
        return "-"
    return " ".join(
        f"v{v}:{float(w):g}%" for v, w in sorted(weights.items(), key=lambda i: int(i[0]))
    )


class Timeline:
    """Lines of (time since the demo started, event, weights, score). Looks and decisions
    carry the server's time of them, not the time this script saw them."""

    def __init__(self) -> None:
        self.started = time.time()
        log(f"{'TIME':>7}  {'EVENT':<44}  {'WEIGHTS':<18}  SCORE")

    def line(self, event: str, weights: str = "", score: Any = None, at: str | None = None) -> None:
        when = time.time()
        if at:
            when = datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
        shown = "-" if score is None else f"{float(score):g}"
        log(f"{when - self.started:6.1f}s  {event:<44}  {weights:<18}  {shown}")


def step_weights(rollout: Mapping[str, Any], step: int, action: str | None = None) -> str:
    """What served at ``step`` (or after a decision that ended the rollout)."""
    incumbent, candidate = rollout.get("incumbent_version"), rollout["version"]
    if action == "completed":
        return f"v{candidate}:100%"
    if action == "aborted":
        return f"v{incumbent}:100%"
    steps = rollout.get("steps") or []
    weight = float(steps[step]["weight"]) if 0 <= step < len(steps) else 0.0
    return f"v{incumbent}:{100 - weight:g}% v{candidate}:{weight:g}%"


def follow(
    mg: ModelgateClient, rollout_id: int, timeline: Timeline, timeout: float
) -> Mapping[str, Any]:
    """Print each new look and decision until the rollout ends (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    looks_seen = 0
    decisions_seen = 0
    while True:
        current = mg.rollout(rollout_id)
        looks = current.get("looks") or []
        new_looks = [lk for lk in looks if int(lk.get("number", 0)) > looks_seen]
        for look in new_looks:
            looks_seen = int(look["number"])
            failing = [r["metric"] for r in look.get("results") or [] if r.get("verdict") == "fail"]
            step = int(look.get("step") or 0) + 1
            what = f"look {look['number']} at step {step}: {look.get('status')}"
            if failing:
                what += f" ({', '.join(failing)})"
            at_step = int(look.get("step") or 0)
            timeline.line(what, step_weights(current, at_step), look.get("score"), look.get("at"))
        for decision in (current.get("decisions") or [])[decisions_seen:]:
            decisions_seen += 1
            who = "auto" if decision.get("automatic") else decision.get("actor")
            reason = str(decision.get("reason") or "")
            event = f"{decision['action']} (step {int(decision.get('step') or 0) + 1}, {who})"
            weights = step_weights(current, int(decision.get("step") or 0), decision["action"])
            timeline.line(event, weights, None, decision.get("at"))
            if reason:
                log(f"{'':9}  why: {reason}")
        if current["state"] in ENDED:
            return current
        if time.monotonic() > deadline:
            log(f"rollout {rollout_id} did not end within {timeout:g} s; aborting it")
            try:
                return mg.abort_rollout(rollout_id, reason="rollout-demo: timed out")
            except ModelgateError as exc:
                log(f"  abort refused: {exc}")
                return current
        time.sleep(0.25)


def production_of(mg: ModelgateClient, model: str) -> int | None:
    plan = mg._get(f"/models/{model}/serving")
    production = plan.get("production")
    return int(production["version"]) if production else None


def roll_out(
    mg: ModelgateClient, fleet: Fleet, model: str, version: int, profile: Profile,
    timeline: Timeline, label: str,
) -> Mapping[str, Any]:  # fmt: skip
    analysis = {
        "metrics": [
            {"name": "errors", "kind": "error_rate", "tolerance": 0.0, "weight": 1,
             "min_sample": 200, "critical": True},
            {"name": "latency", "kind": "latency", "tolerance": 0.5, "weight": 1},
        ],
        "interval_seconds": profile.interval_seconds,
    }  # fmt: skip
    started = mg.start_rollout(
        model, version, steps=parse_steps(profile.steps), strategy="canary",
        analysis=analysis, reason=f"rollout-demo: {label}",
    ).body  # fmt: skip
    timeline.line(f"start v{version} ({label})", weights_text(started))
    ended = follow(mg, int(started["id"]), timeline, profile.timeout)
    revision = int(ended.get("serving_revision") or 0)
    if fleet.on_plan(revision, 30):
        plan = fleet.routers[0].plan
        serving = " ".join(f"v{r.version}:{r.weight:g}%" for r in plan.routes) if plan else "-"
        lag = ""
        ended_at = ended.get("ended_at")
        arrivals = fleet.arrivals.get(revision, [])
        if ended_at and len(arrivals) == len(fleet.routers):
            decided = datetime.fromisoformat(str(ended_at).replace("Z", "+00:00")).timestamp()
            lag = f", the last {max(0.0, max(arrivals) - decided) * 1000:.0f} ms after the decision"
        timeline.line(f"all {len(fleet.routers)} routers on revision {revision}{lag}", serving)
    else:
        timeline.line(f"some router did not reach revision {revision} in 30 s")
    return ended


def run(mg: ModelgateClient, url: str, token: str, profile: Profile, replicas: int,
        seed: int) -> bool:  # fmt: skip
    model, v1, good, bad = register(mg)
    rate = profile.base_error_rate
    log(f"model {model}: version {v1} in production; candidates {good} (good) and {bad} "
        f"(error rate {2 * rate:.0%} against {rate:.0%})")  # fmt: skip
    log(f"fleet: {replicas} replicas at {profile.requests_per_second:g} requests/s each; "
        f"steps {profile.steps}; a look every {profile.interval_seconds} s")  # fmt: skip
    fleet = Fleet(
        url=url, token=token, model=model,
        error_rates={bad: 2 * profile.base_error_rate}, base_error_rate=profile.base_error_rate,
        replicas=replicas, rate=profile.requests_per_second, seed=seed,
    )  # fmt: skip
    fleet.start()
    timeline = Timeline()
    ok = True
    try:
        time.sleep(1.0)  # some incumbent traffic first
        first = roll_out(mg, fleet, model, good, profile, timeline, "good")
        after_first = production_of(mg, model)
        if first["state"] != "completed" or after_first != good:
            log(f"FAILED: the good version ended {first['state']} ({first.get('reason')}); "
                f"production is {after_first}")  # fmt: skip
            ok = False
        second = roll_out(mg, fleet, model, bad, profile, timeline, "bad")
        after_second = production_of(mg, model)
        automatic = any(
            d.get("action") == "aborted" and d.get("automatic")
            for d in second.get("decisions") or []
        )
        if second["state"] != "aborted" or not automatic:
            log(f"FAILED: the bad version ended {second['state']} (automatic abort: "
                f"{automatic}); reason {second.get('reason')}")  # fmt: skip
            ok = False
        expected = good if ok else after_first
        if after_second != expected:
            log(f"FAILED: production is {after_second} after the abort, expected {expected}")
            ok = False
        picks = {r.pick(f"probe-{i}") for r in fleet.routers for i in range(200)}
        if second["state"] == "aborted" and picks != {expected}:
            log(f"FAILED: after the abort the routers still pick {sorted(picks)}")
            ok = False
    finally:
        fleet.stop()
    log("")
    log("fleet: requests answered / failed per version: " + ", ".join(
        f"v{v} {fleet.served.get(v, 0)}/{fleet.failed.get(v, 0)}"
        for v in sorted(set(fleet.served) | set(fleet.failed))
    ))  # fmt: skip
    totals = {k: sum(getattr(r.observation_stats, k) for r in fleet.routers)
              for k in ("sent", "batches", "dropped", "rejected", "failed", "retries")}  # fmt: skip
    log("observations: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    log("")
    log("OK: the good version completed and the bad one was aborted automatically, "
        "production untouched" if ok else "the demo did NOT go as expected")  # fmt: skip
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/rollout-demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("MODELGATE_URL"),
        help="a running server (default: $MODELGATE_URL; none: start one)",
    )
    parser.add_argument("--token", default=os.environ.get("MODELGATE_TOKEN"),
                        help="an admin token for --url (default: $MODELGATE_TOKEN)")  # fmt: skip
    parser.add_argument("--fast", action="store_true", help="small holds and traffic (tests)")
    parser.add_argument("--replicas", type=int, default=4, help="replica threads (4)")
    parser.add_argument("--seed", type=int, default=20261203, help="seed of the traffic")
    args = parser.parse_args(argv)
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    profile = FAST if args.fast else NORMAL
    server: OwnServer | None = None
    workdir: Path | None = None
    url, token = args.url, args.token
    if url:
        if not token:
            parser.error("--url needs an admin token: --token or MODELGATE_TOKEN")
    else:
        workdir = Path(tempfile.mkdtemp(prefix="modelgate-rollout-demo-"))
        token = "demo-" + uuid.uuid4().hex
        server = OwnServer(workdir, token)
        log(f"starting a server on {server.url} (SQLite and a directory in {workdir})")
        try:
            server.wait_ready()
        except RuntimeError as exc:
            log(str(exc))
            server.stop()
            shutil.rmtree(workdir, ignore_errors=True)
            return 1
        url = server.url
    try:
        with ModelgateClient(url, token) as mg:
            return 0 if run(mg, url, token, profile, args.replicas, args.seed) else 1
    except ModelgateError as exc:
        log(f"FAILED: {exc}")
        if server is not None:
            log(server.tail())
        return 1
    finally:
        if server is not None:
            server.stop()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
