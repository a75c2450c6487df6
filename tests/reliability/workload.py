"""The randomized race workload shared by tests/reliability/test_race.py and scripts/soak.

Many clients (threads sharing one httpx connection pool) send a seeded random mix of
writes -- create version, upload artifact, promote to staging and to production,
approve, reject, roll back, freeze, unfreeze, archive -- to several server processes at
once, over a few models whose policies make the promotions meaningful:

- ``race-gated``: staging auto-promotes when the artifact is intact and the lineage
  complete; production (from staging only) needs one reviewer's approval, then applies.
- ``race-auto``: production applies at once (auto-promote, no approval), from any stage.
- ``race-two``: production needs two approvals (both reviewer tokens).
- ``race-strict``: production must not regress on accuracy: the gates reject some.

Every answer must be a 2xx or a clean 4xx problem (``application/problem+json`` with a
``code``); anything else (a 5xx, a 4xx without a problem body, a transport error) is
counted as *bad* and kept as a sample. The kind of each operation is drawn from the
seed up front and its parameters from a generator seeded by (seed, index), so a run is
reproducible up to the interleaving the servers choose.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import bindparam, create_engine, text

from tests.support.api import API, auth, version_payload

__all__ = [
    "KINDS",
    "MODELS",
    "RaceResult",
    "Workload",
    "model_policies",
]

ARTIFACT_INTACT = {"kind": "artifact_intact"}
LINEAGE = {"kind": "lineage_complete"}
STAGING = {"rules": [ARTIFACT_INTACT, LINEAGE], "approvals_required": 0, "auto_promote": True}


def model_policies() -> dict[str, dict[str, Any]]:
    """The race models and their gate policies."""
    return {
        "race-gated": {
            "staging": STAGING,
            "production": {
                "rules": [ARTIFACT_INTACT, LINEAGE],
                "approvals_required": 1,
                "auto_promote": True,
                "require_staging": True,
            },
        },
        "race-auto": {
            "staging": STAGING,
            "production": {
                "rules": [ARTIFACT_INTACT],
                "approvals_required": 0,
                "auto_promote": True,
                "require_staging": False,
            },
        },
        "race-two": {
            "staging": STAGING,
            "production": {
                "rules": [ARTIFACT_INTACT],
                "approvals_required": 2,
                "auto_promote": False,
                "require_staging": True,
            },
        },
        "race-strict": {
            "staging": STAGING,
            "production": {
                "rules": [ARTIFACT_INTACT, {"kind": "no_regression", "delta": 0.0}],
                "approvals_required": 1,
                "auto_promote": True,
                "require_staging": False,
            },
        },
    }


MODELS: tuple[str, ...] = tuple(model_policies())

# (kind, weight): the mix of operations.
KINDS: tuple[tuple[str, int], ...] = (
    ("create_version", 13),
    ("upload_artifact", 14),
    ("promote_staging", 12),
    ("promote_production", 18),
    ("approve", 10),
    ("reject", 3),
    ("rollback", 7),
    ("freeze", 2),
    ("unfreeze", 5),
    ("archive", 6),
)

SHARED_ARTIFACT = b"identical bytes uploaded for several versions\n" * 512


@dataclass
class Team:
    submitter: dict[str, str]
    submitter2: dict[str, str]
    reviewer: dict[str, str]
    reviewer2: dict[str, str]
    operator: dict[str, str]


@dataclass
class RaceResult:
    """What a run did: operations by kind and outcome, bad answers, timing."""

    ops: int = 0
    seconds: float = 0.0
    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    bad: list[str] = field(default_factory=list)
    bad_count: int = 0
    watcher_polls: int = 0
    watcher_max_production: int = 0
    watcher_min_production: int | None = None

    def record(self, kind: str, outcome: str) -> None:
        self.outcomes[kind][outcome] += 1

    def by_class(self) -> Counter[str]:
        """2xx / 4xx / bad totals."""
        classes: Counter[str] = Counter()
        for outcomes in self.outcomes.values():
            for outcome, n in outcomes.items():
                classes["bad" if outcome.startswith("BAD") else outcome[0] + "xx"] += n
        return classes

    def table(self) -> str:
        """Operations by kind and outcome, one line per kind."""
        lines = [f"{'operation':<20} {'count':>6}  outcomes"]
        for kind, _ in KINDS:
            outcomes = self.outcomes.get(kind, Counter())
            detail = ", ".join(
                f"{o}: {n}" for o, n in sorted(outcomes.items(), key=lambda x: -x[1])
            )
            lines.append(f"{kind:<20} {sum(outcomes.values()):>6}  {detail}")
        classes = self.by_class()
        rate = self.ops / self.seconds if self.seconds else 0.0
        lines.append(
            f"{'total':<20} {self.ops:>6}  2xx: {classes['2xx']}, 4xx: {classes['4xx']}, "
            f"bad (5xx, no problem body, transport error): {classes['bad']}; "
            f"{self.seconds:.1f} s, {rate:.0f} ops/s"
        )
        lines.append(
            f"production watcher: {self.watcher_polls} polls of the database during the run; "
            f"production versions of a model at any poll: at least "
            f"{self.watcher_min_production}, at most {self.watcher_max_production}"
        )
        return "\n".join(lines)


class _ProductionWatcher:
    """Polls the committed state during the run: the fewest and the most production
    versions any model has at once (every race model has one from the set-up on, so
    both must stay 1: never two, never none)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.polls = 0
        self.max_seen = 0
        self.min_seen: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> _ProductionWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        engine = create_engine(self.database_url, pool_size=1)
        query = text(
            "SELECT min(n), max(n) FROM (SELECT count(v.id) AS n FROM registered_models m "
            "LEFT JOIN model_versions v ON v.model_id = m.id AND v.stage = 'production' "
            "WHERE m.name IN :names GROUP BY m.id) AS counts"
        ).bindparams(bindparam("names", expanding=True))
        try:
            with engine.connect() as conn:
                while not self._stop.wait(0.05):
                    low, high = conn.execute(query, {"names": list(MODELS)}).one()
                    conn.rollback()
                    if low is None:
                        continue  # the models do not exist yet
                    self.max_seen = max(self.max_seen, int(high))
                    low = int(low)
                    self.min_seen = low if self.min_seen is None else min(self.min_seen, low)
                    self.polls += 1
        except BaseException as exc:
            self.error = exc
        finally:
            engine.dispose()


class _State:
    """What the clients know of the registry (best effort: answers arrive out of order)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latest: dict[str, int] = dict.fromkeys(MODELS, 0)
        self.without_artifact: dict[str, list[int]] = {m: [] for m in MODELS}
        self.with_artifact: dict[str, list[int]] = {m: [] for m in MODELS}
        self.staged: dict[str, list[int]] = {m: [] for m in MODELS}
        self.pending: dict[str, list[int]] = {m: [] for m in MODELS}
        self.max_promotion_id = 0

    def recent(self, rng: random.Random, items: list[int], window: int = 8) -> int | None:
        """One of the last ``window`` items (the caller holds the lock)."""
        if not items:
            return None
        return items[-1 - rng.randrange(min(window, len(items)))]


class Workload:
    """Set up the race models on a running deployment and run the randomized operations."""

    def __init__(
        self,
        base_urls: Sequence[str],
        admin_token: str,
        *,
        seed: int = 20261126,
        concurrency: int = 16,
        database_url: str | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.base_urls = list(base_urls)
        self.admin_token = admin_token
        self.seed = seed
        self.concurrency = concurrency
        self.database_url = database_url
        self.log = log
        self.state = _State()
        self.http = httpx.Client(
            timeout=httpx.Timeout(120.0, connect=10.0),
            # Idle connections are dropped well before uvicorn's 5 s keep-alive timeout: a
            # request sent on a connection the server is closing at that moment would be
            # reset (a client-side race, not an answer of the service).
            limits=httpx.Limits(
                max_connections=concurrency * 2,
                max_keepalive_connections=concurrency * 2,
                keepalive_expiry=2.0,
            ),
        )
        self.team: Team | None = None

    def close(self) -> None:
        self.http.close()

    # set-up ---------------------------------------------------------------------------

    def setup(self, versions_per_model: int = 3) -> None:
        """Tokens, the four models with their policies, a few versions with artifacts, and
        the first two promoted to production in turn (so that a rollback target exists)."""
        admin = auth(self.admin_token)
        base = self.base_urls[0]

        def call(method: str, path: str, headers: dict[str, str], **kwargs: Any) -> Any:
            response = self.http.request(method, base + API + path, headers=headers, **kwargs)
            if response.status_code not in (200, 201):
                raise RuntimeError(
                    f"set-up {method} {path}: {response.status_code} {response.text}"
                )
            return response.json()

        def token(role: str) -> dict[str, str]:
            body = {"name": f"race-{role}-{uuid.uuid4().hex[:8]}", "role": role}
            return auth(call("POST", "/tokens", admin, json=body)["token"])

        team = self.team = Team(
            submitter=token("submitter"),
            submitter2=token("submitter"),
            reviewer=token("reviewer"),
            reviewer2=token("reviewer"),
            operator=token("operator"),
        )
        for name, policy in model_policies().items():
            model = {"name": name, "primary_metric": "accuracy", "primary_dataset": "holdout"}
            call("POST", "/models", admin, json=model)
            call("PUT", f"/models/{name}/policy", admin, json=policy)
            for i in range(versions_per_model):
                body = version_payload(0.85 + i / 100)
                number = int(
                    call("POST", f"/models/{name}/versions", team.submitter, json=body)["version"]
                )
                data = self._artifact_bytes(name, number, random.Random(number))
                headers = {**team.submitter, "Content-Type": "application/octet-stream"}
                path = f"/models/{name}/versions/{number}/artifact"
                call("PUT", path, headers, content=data)
                self.state.latest[name] = number
                self.state.with_artifact[name].append(number)
            for number in (1, 2):
                for target in ("staging", "production"):
                    body = {"version": number, "target": target}
                    made = call("POST", f"/models/{name}/promotions", team.submitter, json=body)
                    for reviewer in (team.reviewer, team.reviewer2):
                        if made["status"] != "pending_approval":
                            break
                        made = call("POST", f"/promotions/{made['id']}/approve", reviewer, json={})
                    if made["status"] != "applied":
                        raise RuntimeError(f"set-up promotion of {name} v{number}: {made}")

    # the run --------------------------------------------------------------------------

    def run(self, ops: int, *, start: int = 0, result: RaceResult | None = None) -> RaceResult:
        """``ops`` operations, ``concurrency`` at a time, spread over every server.

        ``start`` numbers the operations of a later batch (a soak runs several, checking
        the invariants in between); ``result`` accumulates batches."""
        assert self.team is not None, "call setup() first"
        names = [k for k, _ in KINDS]
        weights = [w for _, w in KINDS]
        plan_rng = random.Random(self.seed if start == 0 else f"{self.seed}:plan:{start}")
        plan = dict(enumerate(plan_rng.choices(names, weights=weights, k=ops), start=start))
        result = result if result is not None else RaceResult()
        result.ops += ops
        lock = threading.Lock()
        done = [0]
        started = time.monotonic()
        step = max(ops // 10, 1)

        def one(index: int) -> None:
            kind = plan[index]
            op_rng = random.Random(f"{self.seed}:{index}")
            base = self.base_urls[op_rng.randrange(len(self.base_urls))]
            try:
                outcome = getattr(self, f"_op_{kind}")(op_rng, base)
            except httpx.HTTPError as exc:
                outcome = f"BAD transport error {type(exc).__name__}: {exc}"
            with lock:
                if outcome.startswith("BAD"):
                    result.bad_count += 1
                    if len(result.bad) < 20:
                        result.bad.append(f"{kind} via {base}: {outcome}")
                    outcome = outcome.split(":", 1)[0]
                result.record(kind, outcome)
                done[0] += 1
                if done[0] % step == 0:
                    elapsed = time.monotonic() - started
                    self.log(f"  {start + done[0]} operations, batch {elapsed:.1f} s")

        watcher = _ProductionWatcher(self.database_url) if self.database_url else None
        if watcher is not None:
            watcher.__enter__()
        try:
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                list(pool.map(one, range(start, start + ops)))
        finally:
            if watcher is not None:
                watcher.__exit__()
        result.seconds += time.monotonic() - started
        if watcher is not None:
            if watcher.error is not None:
                raise RuntimeError(f"the production watcher failed: {watcher.error!r}")
            result.watcher_polls += watcher.polls
            result.watcher_max_production = max(result.watcher_max_production, watcher.max_seen)
            lows = [n for n in (watcher.min_seen, result.watcher_min_production) if n is not None]
            result.watcher_min_production = min(lows) if lows else None
        return result

    # answers --------------------------------------------------------------------------

    @staticmethod
    def _classify(response: httpx.Response) -> str:
        status = response.status_code
        if 200 <= status < 300:
            return str(status)
        if 400 <= status < 500:
            if not response.headers.get("content-type", "").startswith("application/problem+json"):
                return f"BAD {status} without a problem body: {response.text[:300]}"
            try:
                code = response.json().get("code")
            except ValueError:
                code = None
            if not code:
                return f"BAD {status} problem without a code: {response.text[:300]}"
            return f"{status} {code}"
        return f"BAD {status}: {response.text[:500]}"

    # operations: each returns its outcome ----------------------------------------------

    def _pick_version(self, rng: random.Random, model: str, recent: int = 6) -> int:
        latest = max(self.state.latest[model], 1)
        if rng.random() < 0.8:
            return max(1, latest - rng.randrange(recent))
        return rng.randint(1, latest)

    @staticmethod
    def _artifact_bytes(model: str, version: int, rng: random.Random) -> bytes:
        if rng.random() < 0.1:
            return SHARED_ARTIFACT  # content-addressed: several versions, one object
        seed = hashlib.sha256(f"{model}/{version}".encode()).digest()
        return seed * rng.randint(16, 512)

    def _pick_promotable(self, rng: random.Random, model: str, target: str) -> int:
        """Mostly versions that can move (uploaded; staged for production), sometimes any."""
        with self.state.lock:
            staged = self.state.recent(rng, self.state.staged[model])
            uploaded = self.state.recent(rng, self.state.with_artifact[model])
        draw = rng.random()
        from_staging = model_policies()[model]["production"]["require_staging"]
        if target == "production" and staged is not None and draw < (0.9 if from_staging else 0.5):
            return staged
        if uploaded is not None and draw < 0.85:
            return uploaded
        return self._pick_version(rng, model)

    def _op_create_version(self, rng: random.Random, base: str) -> str:
        assert self.team is not None
        model = rng.choice(MODELS)
        headers = rng.choice((self.team.submitter, self.team.submitter2))
        response = self.http.post(
            f"{base}{API}/models/{model}/versions",
            json=version_payload(round(rng.uniform(0.80, 0.95), 4)),
            headers=headers,
        )
        if response.status_code == 201:
            number = int(response.json()["version"])
            with self.state.lock:
                self.state.latest[model] = max(self.state.latest[model], number)
                self.state.without_artifact[model].append(number)
        return self._classify(response)

    def _op_upload_artifact(self, rng: random.Random, base: str) -> str:
        assert self.team is not None
        model = rng.choice(MODELS)
        with self.state.lock:
            waiting = self.state.without_artifact[model]
            number = (
                waiting.pop(rng.randrange(len(waiting)))
                if waiting and rng.random() < 0.85
                else None
            )
        if number is None:
            number = self._pick_version(rng, model)
        data = self._artifact_bytes(model, number, rng)
        if rng.random() < 0.05:
            data = data + b"other bytes"  # a different artifact for a version that may have one
        headers = {
            **self.team.submitter,
            "Content-Type": "application/octet-stream",
            "X-Artifact-SHA256": hashlib.sha256(data).hexdigest(),
        }
        response = self.http.put(
            f"{base}{API}/models/{model}/versions/{number}/artifact", content=data, headers=headers
        )
        if response.status_code == 200:
            with self.state.lock:
                self.state.with_artifact[model].append(number)
        return self._classify(response)

    def _promote(self, rng: random.Random, base: str, target: str) -> str:
        assert self.team is not None
        model = rng.choice(MODELS)
        number = self._pick_promotable(rng, model, target)
        # Mostly submitters; now and then a reviewer asks (who then may not approve it).
        headers = rng.choice(
            (self.team.submitter, self.team.submitter2, self.team.submitter, self.team.reviewer)
        )
        response = self.http.post(
            f"{base}{API}/models/{model}/promotions",
            json={"version": number, "target": target, "comment": f"race {target}"},
            headers=headers,
        )
        outcome = self._classify(response)
        source = self.state.staged if target == "production" else self.state.with_artifact
        if response.status_code == 201:
            body = response.json()
            with self.state.lock:
                self.state.max_promotion_id = max(self.state.max_promotion_id, int(body["id"]))
                if body["status"] == "pending_approval":
                    self.state.pending[model].append(int(body["id"]))
                # Whatever the answer, this version has moved on or waits: pick others next.
                while number in source[model]:
                    source[model].remove(number)
                if body["status"] == "applied" and target == "staging":
                    self.state.staged[model].append(number)
            outcome = f"201 {body['status']}"
        elif outcome == "409 transition-not-allowed":
            with self.state.lock:
                while number in source[model]:
                    source[model].remove(number)
        return outcome

    def _op_promote_staging(self, rng: random.Random, base: str) -> str:
        return self._promote(rng, base, "staging")

    def _op_promote_production(self, rng: random.Random, base: str) -> str:
        return self._promote(rng, base, "production")

    def _pick_pending(self, rng: random.Random) -> int:
        with self.state.lock:
            models = [m for m in MODELS if self.state.pending[m]]
            if models and rng.random() < 0.9:
                queue = self.state.pending[rng.choice(models)]
                return queue[rng.randrange(len(queue))]
            return rng.randint(1, max(self.state.max_promotion_id, 1) + 2)

    def _decided(self, promotion_id: int, response: httpx.Response) -> None:
        gone = response.status_code in (404, 409) or (
            response.status_code == 200 and response.json().get("status") != "pending_approval"
        )
        if gone:
            with self.state.lock:
                for queue in self.state.pending.values():
                    if promotion_id in queue:
                        queue.remove(promotion_id)

    def _op_approve(self, rng: random.Random, base: str) -> str:
        assert self.team is not None
        promotion_id = self._pick_pending(rng)
        reviewer = rng.choice((self.team.reviewer, self.team.reviewer2))
        response = self.http.post(
            f"{base}{API}/promotions/{promotion_id}/approve",
            json={"comment": "looks good"},
            headers=reviewer,
        )
        self._decided(promotion_id, response)
        if response.status_code == 200:
            body = response.json()
            if body["status"] == "applied" and body["target"] == "staging":
                with self.state.lock:
                    self.state.staged[body["model"]].append(int(body["version"]))
            return f"200 {body['status']}"
        return self._classify(response)

    def _op_reject(self, rng: random.Random, base: str) -> str:
        assert self.team is not None
        promotion_id = self._pick_pending(rng)
        reviewer = rng.choice((self.team.reviewer, self.team.reviewer2))
        response = self.http.post(
            f"{base}{API}/promotions/{promotion_id}/reject",
            json={"comment": "not this one"},
            headers=reviewer,
        )
        self._decided(promotion_id, response)
        return self._classify(response)

    def _op_rollback(self, rng: random.Random, base: str) -> str:
        assert self.team is not None
        model = rng.choice(MODELS)
        body: dict[str, Any] = {"reason": "race: error rate up"}
        if rng.random() < 0.5:
            body["to_version"] = self._pick_version(rng, model, recent=12)
        response = self.http.post(
            f"{base}{API}/models/{model}/rollback", json=body, headers=self.team.operator
        )
        return self._classify(response)

    def _op_freeze(self, rng: random.Random, base: str) -> str:
        assert self.team is not None
        model = rng.choice(MODELS)
        response = self.http.post(
            f"{base}{API}/models/{model}/freeze",
            json={"reason": "race: incident"},
            headers=self.team.operator,
        )
        return self._classify(response)

    def _op_unfreeze(self, rng: random.Random, base: str) -> str:
        assert self.team is not None
        model = rng.choice(MODELS)
        response = self.http.post(
            f"{base}{API}/models/{model}/unfreeze",
            json={"reason": "race: resolved"},
            headers=self.team.operator,
        )
        return self._classify(response)

    def _op_archive(self, rng: random.Random, base: str) -> str:
        assert self.team is not None
        model = rng.choice(MODELS)
        number = self._pick_version(rng, model, recent=10)
        response = self.http.post(
            f"{base}{API}/models/{model}/versions/{number}/archive",
            json={"reason": "race: retired"},
            headers=rng.choice((self.team.submitter, self.team.submitter2)),
        )
        if response.status_code == 200:
            with self.state.lock:
                for lists in (self.state.staged, self.state.with_artifact):
                    while number in lists[model]:
                        lists[model].remove(number)
        return self._classify(response)
