"""On-call drill against a live Modelgate server (run it through ``scripts/drill``).

With an admin token it creates a reviewer, a submitter and an operator token and a
model of its own with a permissive policy, then walks the on-call story and checks each
step against ``GET /models/{model}/stages/production``:

1. promote three versions (create, upload the artifact, staging, production, approve);
2. roll back twice (v3 -> v2 -> v1);
3. roll forward by promoting a fourth version;
4. print the production history as a table.

Then it measures the latency of a rollback call: ``--rollbacks`` rollbacks (alternating
``to_version`` between two archived versions), each next to a plain
``GET /models/{model}/stages/production`` on the same connection, and prints p50 and p99
of both and their ratio. Exits 1 (with the reason) when any step does not do what it
should.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import httpx

API = "/api/v1"


class DrillFailed(Exception):
    """A step answered something other than what the drill expects."""


class Api:
    """The HTTP calls of the drill, each checked for the status it must answer."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def call(
        self,
        method: str,
        path: str,
        *,
        expect: int,
        token: str | None = None,
        **kwargs: Any,
    ) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = self.client.request(method, API + path, headers=headers, **kwargs)
        if response.status_code != expect:
            raise DrillFailed(
                f"{method} {path} answered {response.status_code}, expected {expect}: "
                f"{response.text[:500]}"
            )
        return response.json() if response.content else None


def make_token(api: Api, admin: str, role: str, suffix: str) -> str:
    body = api.call(
        "POST",
        "/tokens",
        expect=201,
        token=admin,
        json={"name": f"drill-{role}-{suffix}", "role": role},
    )
    token: str = body["token"]
    return token


def permissive_policy() -> dict[str, Any]:
    """Real gates that a sane build passes: an intact artifact, complete lineage, and no
    regression beyond a loss of 1.0 (so every version may replace production)."""
    base = [{"kind": "artifact_intact"}, {"kind": "lineage_complete"}]
    return {
        "staging": {"rules": base, "approvals_required": 0, "auto_promote": True},
        "production": {
            "rules": [*base, {"kind": "no_regression", "delta": -1.0}],
            "approvals_required": 1,
            "auto_promote": False,
            "require_staging": True,
        },
    }


def version_body(accuracy: float) -> dict[str, Any]:
    build = uuid.uuid4().hex
    return {
        "description": f"drill build {build[:8]}",
        "lineage": {
            "code_commit": build + build[:8],
            "data_version": "drill-data@1",
            "feature_pipeline_version": "features-v1",
            "environment": "python:3.11-slim",
            "hyperparameters": {"max_depth": 6},
            "seed": 42,
        },
        "metrics": [{"name": "accuracy", "value": accuracy, "dataset": "holdout"}],
    }


class Drill:
    def __init__(self, api: Api, admin: str, model: str) -> None:
        self.api = api
        self.admin = admin
        self.model = model
        suffix = uuid.uuid4().hex[:8]
        self.submitter = make_token(api, admin, "submitter", suffix)
        self.reviewer = make_token(api, admin, "reviewer", suffix)
        self.operator = make_token(api, admin, "operator", suffix)

    def setup(self) -> None:
        self.api.call(
            "POST",
            "/models",
            expect=201,
            token=self.admin,
            json={
                "name": self.model,
                "primary_metric": "accuracy",
                "primary_dataset": "holdout",
                "description": "on-call drill",
            },
        )
        self.api.call(
            "PUT",
            f"/models/{self.model}/policy",
            expect=200,
            token=self.admin,
            json=permissive_policy(),
        )

    def production(self) -> int | None:
        body = self.api.call(
            "GET", f"/models/{self.model}/stages/production", expect=200, token=self.operator
        )
        items = body["items"]
        if len(items) > 1:
            raise DrillFailed(f"{len(items)} production versions: {items}")
        return int(items[0]["version"]) if items else None

    def expect_production(self, version: int, step: str) -> None:
        serving = self.production()
        if serving != version:
            raise DrillFailed(f"after {step}: production is {serving}, expected {version}")

    def release(self, accuracy: float) -> int:
        """Create, upload, staging, production, approve: the whole path of one version."""
        m = self.model
        created = self.api.call(
            "POST",
            f"/models/{m}/versions",
            expect=201,
            token=self.submitter,
            json=version_body(accuracy),
        )
        number = int(created["version"])
        data = f"drill artifact {m} v{number} {uuid.uuid4()}".encode()
        self.api.call(
            "PUT",
            f"/models/{m}/versions/{number}/artifact",
            expect=200,
            token=self.submitter,
            content=data,
            headers={
                "Content-Type": "application/octet-stream",
                "X-Artifact-SHA256": hashlib.sha256(data).hexdigest(),
            },
        )
        staged = self.api.call(
            "POST",
            f"/models/{m}/promotions",
            expect=201,
            token=self.submitter,
            json={"version": number, "target": "staging"},
        )
        if staged["status"] != "applied":
            raise DrillFailed(f"staging of v{number}: {staged['status']}: {staged['report']}")
        asked = self.api.call(
            "POST",
            f"/models/{m}/promotions",
            expect=201,
            token=self.submitter,
            json={"version": number, "target": "production", "comment": f"drill release v{number}"},
        )
        if asked["status"] != "pending_approval":
            raise DrillFailed(f"production request of v{number}: {asked['status']}")
        done = self.api.call(
            "POST",
            f"/promotions/{asked['id']}/approve",
            expect=200,
            token=self.reviewer,
            json={"comment": "drill approval"},
        )
        if done["status"] != "applied":
            raise DrillFailed(f"approval of v{number}: {done['status']}")
        self.expect_production(number, f"promoting v{number}")
        print(f"promoted  v{number} to production")
        return number

    def rollback(self, reason: str, to_version: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"reason": reason}
        if to_version is not None:
            body["to_version"] = to_version
        answer: dict[str, Any] = self.api.call(
            "POST", f"/models/{self.model}/rollback", expect=200, token=self.operator, json=body
        )
        return answer

    def roll_back_to(self, expected: int, reason: str) -> None:
        answer = self.rollback(reason)
        if answer["serving_version"] != expected:
            raise DrillFailed(f"rollback served v{answer['serving_version']}, expected v{expected}")
        self.expect_production(expected, "rollback")
        print(f"rolled back v{answer['replaced_version']} -> v{answer['serving_version']}")

    def history(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = self.api.call(
                "GET",
                f"/models/{self.model}/history",
                expect=200,
                token=self.operator,
                params=params,
            )
            entries += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return entries


def print_history(entries: Sequence[dict[str, Any]]) -> None:
    headers = ("version", "from", "until", "via", "actor", "reason")
    rows = [
        (
            f"v{e['version']}",
            e["started_at"][:23],
            (e["ended_at"] or "now (serving)")[:23],
            e["via"],
            e["actor"],
            e["reason"] or "",
        )
        for e in reversed(entries)
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("\nproduction history (oldest first):")
    for row in (headers, tuple("-" * w for w in widths), *rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sample."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def measure(drill: Drill, rollbacks: int, targets: tuple[int, int]) -> None:
    """Each round: one GET of production, then one rollback to the other target."""
    reads: list[float] = []
    writes: list[float] = []
    serving = drill.production()
    for i in range(rollbacks):
        start = time.perf_counter()
        drill.production()
        reads.append(time.perf_counter() - start)
        target = targets[0] if serving != targets[0] else targets[1]
        start = time.perf_counter()
        answer = drill.rollback(f"latency drill {i + 1}/{rollbacks}", to_version=target)
        writes.append(time.perf_counter() - start)
        if answer["serving_version"] != target:
            raise DrillFailed(f"rollback {i + 1} served v{answer['serving_version']}")
        serving = target
    assert serving is not None
    drill.expect_production(serving, "the latency rollbacks")

    r50, r99, w50, w99 = (
        percentile(reads, 50),
        percentile(reads, 99),
        percentile(writes, 50),
        percentile(writes, 99),
    )
    print(f"\nlatency over {rollbacks} calls each (one connection, alternating):")
    rows = [
        ("GET  /models/{model}/stages/production", f"{r50 * 1000:.2f} ms", f"{r99 * 1000:.2f} ms"),
        ("POST /models/{model}/rollback", f"{w50 * 1000:.2f} ms", f"{w99 * 1000:.2f} ms"),
        ("rollback / read", f"{w50 / r50:.2f}x", f"{w99 / r99:.2f}x"),
    ]
    for label, p50, p99 in rows:
        print(f"  {label:<40} p50 {p50:>10}   p99 {p99:>10}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--url",
        default=os.environ.get("MODELGATE_URL", "http://127.0.0.1:8000"),
        help="server base URL (default: $MODELGATE_URL)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("MODELGATE_TOKEN"),
        help="an admin token (default: $MODELGATE_TOKEN)",
    )
    parser.add_argument("--model", default=None, help="model name (default: a new drill-*)")
    parser.add_argument(
        "--rollbacks",
        type=int,
        default=200,
        help="rollback calls to time (default 200; 0 skips the measurement)",
    )
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("an admin token is needed: --token or MODELGATE_TOKEN")
    if args.rollbacks < 0:
        parser.error("--rollbacks must not be negative")
    model = args.model or f"drill-{uuid.uuid4().hex[:8]}"
    try:
        with httpx.Client(base_url=args.url.rstrip("/"), timeout=60.0) as client:
            drill = Drill(Api(client), args.token, model)
            print(f"drill on {args.url} with model {model}")
            drill.setup()
            v1, v2, v3 = (drill.release(accuracy) for accuracy in (0.80, 0.82, 0.84))
            drill.roll_back_to(v2, "drill: first rollback")
            drill.roll_back_to(v1, "drill: second rollback")
            drill.release(0.86)  # roll forward
            print_history(drill.history())
            if args.rollbacks:
                measure(drill, args.rollbacks, (v2, v3))
    except DrillFailed as exc:
        print(f"drill failed: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"drill failed: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    print("\ndrill passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
