"""The registry's promises, checked over the whole database after a race, a fault or a soak.

:func:`check_invariants` reads the tables directly (one consistent snapshot) and asks the
running API for what clients see (the production history, ``/audit/verify``), then checks:

1. **one production version**: at most one per model; exactly one when the production
   history has any entry (production is only ever replaced, never emptied), and it is
   the version of the one open period; none when the history is empty.
2. **history = audit log**: the ``production_history`` rows, in order, are the audit log's
   ``version.stage_changed`` events to production, in order (version, way, promotion);
   ``GET /models/{m}/history`` shows the same rows; each period ends when the next starts
   and names the version it replaced.
3. **artifacts**: every staging and production version, and every version that ever
   served in production (a rollback target), has ``artifact_status='verified'``, a key and
   a digest, and the object is present and intact in the store (``store.verify``); no
   version has half its artifact columns.
4. **version numbers**: 1..N per model without gaps or duplicates, N =
   ``registered_models.last_version``.
5. **stages = audit log**: the last stage the audit log moved each version to is its stage.
6. **promotion requests applied whole or not at all**: a request is ``applied`` exactly
   when it has ``applied_at``, one ``promotion.applied`` event and one stage change made
   by it (and, to production, one history row); any other request changed no stage; every
   decided request has the one event of its decision, and a pending one none and still
   sits in the stage it was requested from.
7. ``GET /audit/verify`` answers ``ok``.
8. **metric rows carry their version's stage** (``metrics.stage``, kept for stage-filtered
   metric-ordered pages): no metric row disagrees with its version.

It returns an :class:`InvariantReport` (counts) and raises :class:`InvariantViolation`,
listing every broken promise, when any check fails.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import Connection, create_engine, text

from app.storage.base import ArtifactStore
from app.storage.integrity import verify_artifact
from tests.support.flows import history

__all__ = ["InvariantReport", "InvariantViolation", "check_invariants"]

API = "/api/v1"
# How a promotion request's final status shows in the audit log.
_DECISION_EVENTS = {
    "applied": "promotion.applied",
    "rejected": "promotion.rejected",
    "superseded": "promotion.superseded",
    "cancelled": "promotion.cancelled",
}
_STAGE_EVENTS = ("version.created", "version.stage_changed", "version.archived")


@dataclass
class InvariantReport:
    """What was checked, in counts."""

    models: int = 0
    versions: int = 0
    versions_by_stage: dict[str, int] = field(default_factory=dict)
    models_with_production: int = 0
    history_entries: int = 0
    production_moves_in_audit: int = 0
    artifacts_verified_in_store: int = 0
    promotion_requests: dict[str, int] = field(default_factory=dict)
    audit_events: int = 0
    audit_streams: int = 0

    def summary(self) -> str:
        stages = ", ".join(f"{k} {v}" for k, v in sorted(self.versions_by_stage.items()))
        requests = ", ".join(f"{k} {v}" for k, v in sorted(self.promotion_requests.items()))
        return (
            f"{self.models} models, {self.versions} versions ({stages}); "
            f"{self.models_with_production} with one production version; "
            f"{self.history_entries} history entries = {self.production_moves_in_audit} audit "
            f"moves to production; {self.artifacts_verified_in_store} artifacts verified in "
            f"the store; promotion requests: {requests or 'none'}; audit chain ok "
            f"({self.audit_events} events, {self.audit_streams} streams)"
        )


class InvariantViolation(AssertionError):
    """One or more invariants do not hold; ``violations`` says which, one line each."""

    def __init__(self, violations: list[str], report: InvariantReport) -> None:
        self.violations = violations
        self.report = report
        shown = "\n  ".join(violations[:50])
        more = f"\n  ... and {len(violations) - 50} more" if len(violations) > 50 else ""
        super().__init__(f"{len(violations)} invariant violation(s):\n  {shown}{more}")


def _json(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        loaded: dict[str, Any] = json.loads(value)
        return loaded
    return dict(value)


def _rows(conn: Connection, sql: str, **params: Any) -> list[Mapping[str, Any]]:
    return [dict(row._mapping) for row in conn.execute(text(sql), params)]


@dataclass
class _Snapshot:
    models: list[Mapping[str, Any]]
    versions: list[Mapping[str, Any]]
    periods: list[Mapping[str, Any]]
    events: list[Mapping[str, Any]]
    requests: list[Mapping[str, Any]]
    stale_metrics: list[Mapping[str, Any]]


def _snapshot(database_url: str) -> _Snapshot:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # Every table read from the same snapshot, even if something still writes.
                conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            return _Snapshot(
                models=_rows(conn, "SELECT id, name, last_version FROM registered_models"),
                versions=_rows(
                    conn,
                    "SELECT id, model_id, version, stage, artifact_status, artifact_key, "
                    "artifact_sha256, artifact_size, artifact_etag FROM model_versions "
                    "ORDER BY model_id, version",
                ),
                periods=_rows(
                    conn,
                    "SELECT id, model_id, version, started_at, ended_at, via, promotion_id, "
                    "replaced_version, ended_by FROM production_history ORDER BY id",
                ),
                events=_rows(
                    conn,
                    "SELECT id, stream, seq, action, model, version, from_stage, to_stage, "
                    "details FROM audit_events WHERE model IS NOT NULL "
                    "AND (action LIKE 'version.%' OR action LIKE 'promotion.%') "
                    "ORDER BY stream, seq",
                ),
                requests=_rows(
                    conn,
                    "SELECT id, model_id, version_id, version, from_stage, target_stage, "
                    "status, applied_at FROM promotion_requests ORDER BY id",
                ),
                stale_metrics=_rows(
                    conn,
                    "SELECT v.model_id, v.version, v.stage AS version_stage, "
                    "m.stage AS metric_stage, m.name FROM metrics m "
                    "JOIN model_versions v ON v.id = m.version_id WHERE m.stage <> v.stage",
                ),
            )
    finally:
        engine.dispose()


@dataclass
class _Model:
    """One model's rows from the snapshot."""

    name: str
    last_version: int
    versions: list[Mapping[str, Any]]
    periods: list[Mapping[str, Any]]
    events: list[Mapping[str, Any]]
    requests: list[Mapping[str, Any]]


def check_invariants(
    database_url: str,
    *,
    base_url: str | None = None,
    admin_token: str | None = None,
    store: ArtifactStore,
    models: Iterable[str] | None = None,
    deep: bool = False,
    timeout: float = 120.0,
    client: httpx.Client | None = None,
) -> InvariantReport:
    """Check every invariant of the module docstring; raise InvariantViolation if any fails.

    The API is reached at ``base_url`` with ``admin_token``, or through ``client`` (an
    admin client, e.g. the in-process test client). ``models`` limits the per-model
    checks to those names (default: every model); ``deep`` re-hashes artifact bytes
    instead of comparing size and ETag.
    """
    snap = _snapshot(database_url)
    report = InvariantReport()
    bad: list[str] = []
    wanted = set(models) if models is not None else None
    found = {m["name"] for m in snap.models}
    if wanted is not None and not wanted <= found:
        bad.append(f"models not in the database: {sorted(wanted - found)}")

    versions_of: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for v in snap.versions:
        versions_of[v["model_id"]].append(v)
    periods_of: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for p in snap.periods:
        periods_of[p["model_id"]].append(p)
    events_of: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for e in snap.events:
        events_of[e["model"]].append(e)
    requests_of: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for r in snap.requests:
        requests_of[r["model_id"]].append(r)

    names = {m["id"]: m["name"] for m in snap.models}
    for row in snap.stale_metrics:
        if wanted is None or names.get(row["model_id"]) in wanted:
            bad.append(
                f"{names.get(row['model_id'])} v{row['version']}: metric {row['name']!r} says "
                f"{row['metric_stage']}, the version is {row['version_stage']}"
            )

    stages: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    verified: dict[str, bool] = {}
    with contextlib.ExitStack() as stack:
        if client is not None:
            http = client
        else:
            if base_url is None or admin_token is None:
                raise ValueError("pass base_url and admin_token, or client")
            headers = {"Authorization": f"Bearer {admin_token}"}
            http = stack.enter_context(
                httpx.Client(base_url=base_url, headers=headers, timeout=timeout)
            )
        for row in snap.models:
            if wanted is not None and row["name"] not in wanted:
                continue
            m = _Model(
                name=row["name"],
                last_version=row["last_version"],
                versions=versions_of[row["id"]],
                periods=periods_of[row["id"]],
                events=events_of[row["name"]],
                requests=requests_of[row["id"]],
            )
            report.models += 1
            report.versions += len(m.versions)
            stages.update(v["stage"] for v in m.versions)
            statuses.update(r["status"] for r in m.requests)
            report.history_entries += len(m.periods)
            if _check_production(m, bad):
                report.models_with_production += 1
            report.production_moves_in_audit += _check_history(m, history(http, m.name), bad)
            _check_artifacts(m, store, deep, verified, bad)
            _check_numbers(m, bad)
            _check_stages(m, bad)
            _check_requests(m, bad)

        verification = http.get(f"{API}/audit/verify")
        if verification.status_code != 200:
            bad.append(
                f"GET /audit/verify answered {verification.status_code}: {verification.text[:300]}"
            )
        else:
            body = verification.json()
            report.audit_events = int(body.get("events_checked", 0))
            report.audit_streams = int(body.get("streams_checked", 0))
            if body.get("ok") is not True:
                bad.append(f"GET /audit/verify is not ok: {body.get('first_problem')}")

    report.versions_by_stage = dict(stages)
    report.promotion_requests = dict(statuses)
    report.artifacts_verified_in_store = sum(verified.values())
    if bad:
        raise InvariantViolation(bad, report)
    return report


def _check_production(m: _Model, bad: list[str]) -> bool:
    """1. At most one production version; one exactly when there is history, and it is
    the version of the one open period. True when the model has one."""
    production = [v["version"] for v in m.versions if v["stage"] == "production"]
    open_periods = [p for p in m.periods if p["ended_at"] is None]
    if len(production) > 1:
        bad.append(f"{m.name}: {len(production)} production versions {production}")
    if m.periods:
        if len(production) != 1:
            bad.append(
                f"{m.name}: history has {len(m.periods)} entries but {len(production)} "
                "production versions"
            )
        if len(open_periods) != 1 or open_periods[0] is not m.periods[-1]:
            bad.append(
                f"{m.name}: {len(open_periods)} open history periods (exactly the newest one "
                "should be open)"
            )
        elif production and open_periods[0]["version"] != production[0]:
            bad.append(
                f"{m.name}: the open history period names version "
                f"{open_periods[0]['version']}, production is {production}"
            )
    elif production:
        bad.append(f"{m.name}: production version {production} without any history")
    return len(production) == 1


def _check_history(m: _Model, api_history: list[dict[str, Any]], bad: list[str]) -> int:
    """2. The history is a chain, equals the audit log's moves to production and what
    GET /history shows. Returns how many moves the audit log holds."""
    for older, newer in itertools.pairwise(m.periods):
        if older["ended_at"] != newer["started_at"] or older["ended_by"] != newer["via"]:
            bad.append(
                f"{m.name}: history period {older['id']} (v{older['version']}) does not end "
                f"when and how period {newer['id']} (v{newer['version']}) starts"
            )
        if newer["replaced_version"] != older["version"]:
            bad.append(
                f"{m.name}: history period {newer['id']} says it replaced "
                f"v{newer['replaced_version']}, the previous period served v{older['version']}"
            )
    if m.periods and m.periods[0]["replaced_version"] is not None:
        bad.append(f"{m.name}: the first history period replaced a version")
    table = [(p["version"], p["via"], p["promotion_id"]) for p in m.periods]
    moves = []
    for e in m.events:
        if e["action"] == "version.stage_changed" and e["to_stage"] == "production":
            details = _json(e["details"])
            moves.append((e["version"], details.get("via"), details.get("promotion_id")))
    if table != moves:
        bad.append(
            f"{m.name}: production history {_short(table)} != audit log moves to production "
            f"{_short(moves)}"
        )
    rows = [(p["version"], p["via"], p["promotion_id"], p["replaced_version"]) for p in m.periods]
    shown = [
        (h["version"], h["via"], h["promotion_id"], h["replaced_version"])
        for h in reversed(api_history)
    ]
    if shown != rows:
        bad.append(f"{m.name}: GET /history {_short(shown)} != production_history {_short(rows)}")
    return len(moves)


def _check_artifacts(
    m: _Model, store: ArtifactStore, deep: bool, verified: dict[str, bool], bad: list[str]
) -> None:
    """3. Staging, production and every version that served have a verified artifact,
    intact in the store; no version has half its artifact columns."""
    served = {p["version"] for p in m.periods}
    for v in m.versions:
        has_key = v["artifact_key"] is not None and v["artifact_sha256"] is not None
        if (v["artifact_status"] == "verified") != has_key or (
            has_key and v["artifact_size"] is None
        ):
            bad.append(
                f"{m.name} v{v['version']}: artifact half recorded (status "
                f"{v['artifact_status']}, key {v['artifact_key']!r})"
            )
        if v["stage"] not in ("staging", "production") and v["version"] not in served:
            continue
        where = f"{m.name} v{v['version']} ({v['stage']}"
        where += ", served)" if v["version"] in served else ")"
        if not has_key or v["artifact_status"] != "verified":
            bad.append(f"{where}: no verified artifact")
            continue
        key = v["artifact_key"]
        if key not in verified:
            check = verify_artifact(
                store,
                key=key,
                sha256=v["artifact_sha256"],
                size=v["artifact_size"] or 0,
                etag=v["artifact_etag"],
                rehash=deep,
            )
            verified[key] = check.intact
            if not check.intact:
                bad.append(f"{where}: artifact {key} not intact in the store: {check.detail}")
        elif not verified[key]:
            bad.append(f"{where}: artifact {key} not intact in the store")


def _check_numbers(m: _Model, bad: list[str]) -> None:
    """4. Version numbers 1..N, N = last_version."""
    numbers = [v["version"] for v in m.versions]
    expected = list(range(1, m.last_version + 1))
    if numbers != expected:
        dupes = sorted(n for n, c in Counter(numbers).items() if c > 1)
        gaps = sorted(set(expected) - set(numbers))
        extra = sorted(set(numbers) - set(expected))
        bad.append(
            f"{m.name}: version numbers are not 1..{m.last_version} (gaps {gaps[:10]}, "
            f"duplicates {dupes[:10]}, beyond last_version {extra[:10]})"
        )


def _check_stages(m: _Model, bad: list[str]) -> None:
    """5. Every version's stage is the last one the audit log moved it to."""
    last_stage: dict[int, str] = {}
    for e in m.events:
        if e["action"] in _STAGE_EVENTS and e["version"] is not None and e["to_stage"]:
            last_stage[e["version"]] = e["to_stage"]
    for v in m.versions:
        logged = last_stage.get(v["version"])
        if logged != v["stage"]:
            bad.append(
                f"{m.name} v{v['version']}: stage {v['stage']} but the audit log last moved "
                f"it to {logged}"
            )


def _check_requests(m: _Model, bad: list[str]) -> None:
    """6. Promotion requests applied whole or not at all, each decision logged once."""
    decisions: dict[int, list[str]] = defaultdict(list)
    moves: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for e in m.events:
        pid = _json(e["details"]).get("promotion_id")
        if pid is None:
            continue
        if e["action"] in _DECISION_EVENTS.values():
            decisions[pid].append(e["action"])
        elif e["action"] == "version.stage_changed":
            moves[pid].append(e)
    history_rows = Counter(p["promotion_id"] for p in m.periods if p["promotion_id"])
    stage_of = {v["id"]: v["stage"] for v in m.versions}
    for r in m.requests:
        pid, status = r["id"], r["status"]
        label = f"{m.name} promotion {pid} (v{r['version']} to {r['target_stage']}, {status})"
        # The move of the requested version to the target (the version it replaced also
        # names the promotion, in its own move to archived).
        own_moves = [
            e
            for e in moves[pid]
            if e["version"] == r["version"] and e["to_stage"] == r["target_stage"]
        ]
        applied = status == "applied"
        want = _DECISION_EVENTS.get(status)
        if status == "pending_approval":
            if decisions[pid]:
                bad.append(f"{label}: pending but the audit log decided it {decisions[pid]}")
            now = stage_of.get(r["version_id"])
            if now != r["from_stage"]:
                bad.append(
                    f"{label}: pending, requested from {r['from_stage']}, but the version is "
                    f"now {now}"
                )
        elif want is None:
            bad.append(f"{label}: left in status {status}")
        elif decisions[pid] != [want]:
            bad.append(f"{label}: audit decisions {decisions[pid]}, expected [{want}]")
        if applied != (r["applied_at"] is not None):
            bad.append(f"{label}: applied_at is {r['applied_at']}")
        if len(own_moves) != (1 if applied else 0):
            bad.append(f"{label}: {len(own_moves)} stage changes made by it in the audit log")
        if r["target_stage"] == "production":
            made = history_rows.get(pid, 0)
            if made != (1 if applied else 0):
                bad.append(f"{label}: {made} production history rows made by it")


def _short(items: list[Any], limit: int = 12) -> str:
    if len(items) <= limit:
        return repr(items)
    return f"{items[:limit]!r}... ({len(items)} in all)"
