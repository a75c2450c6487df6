"""Seed many versions into one model, fast, with PostgreSQL COPY.

    .venv/bin/python scripts/seed_versions.py --database-url postgresql://... \\
        --model big --count 1000000

Appends ``--count`` versions after the model's last version (the model is created when
it does not exist), each with two metrics (accuracy and f1 on ``holdout``) and, unless
``--no-audit``, a ``version.created`` audit event appended to the model's hash chain
exactly as the service would write it, so ``GET /audit/verify`` still passes. Stages
are spread like a long-lived registry: about half archived, 1 % staging, the rest
candidates, and one production version if the model has none. Everything happens in
one transaction holding the model's row lock, then the tables are vacuumed and
analysed. Connected as a superuser, the foreign-key triggers are skipped during the
load (``session_replication_role = replica``; ``--check-fks`` keeps them). Prints one
JSON line with the timings.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from app.audit.hashing import GENESIS_HASH, canonical_json, event_hash
from app.registry.fingerprint import lineage_fingerprint

DATASET = "holdout"
ACTOR = "seed"
ACTOR_ROLE = "admin"

VERSION_COLUMNS = (
    "id", "model_id", "version", "stage", "description", "lineage", "lineage_fingerprint",
    "signature", "tags", "artifact_status", "created_by", "created_at", "updated_at",
    "stage_changed_at", "rolled_back",
)  # fmt: skip
METRIC_COLUMNS = (
    "version_id", "model_id", "name", "dataset", "slice", "value", "sample_count", "source",
    "created_at", "stage",
)  # fmt: skip
AUDIT_COLUMNS = (
    "stream", "seq", "occurred_at", "actor", "actor_role", "token_id", "action", "model",
    "version", "from_stage", "to_stage", "reason", "request_id", "details", "prev_hash", "hash",
)  # fmt: skip


# (id, version number, stage, accuracy, created_at, random bits of its lineage): small,
# so a million of them fit in memory; the lineage itself is rebuilt when written.
Row = tuple[int, int, str, float, datetime, int]


def lineage_of(number: int, bits: int) -> dict[str, Any]:
    return {
        "code_commit": f"{bits:040x}",
        "data_version": f"transactions@2026-11-{1 + number % 28:02d}",
        "feature_pipeline_version": f"features-v{1 + number % 20}",
        "environment": f"registry.example.com/train@{bits & 0xFFFFFFFFFFFFFFFF:016x}",
        "hyperparameters": {"max_depth": 6, "eta": 0.3, "n_estimators": number},
        "seed": number,
        "training_run_id": f"run-{number}",
        "extra": {},
    }


def libpq_url(url: str) -> str:
    """psycopg wants ``postgresql://``; accept SQLAlchemy's ``postgresql+psycopg://`` too."""
    scheme, sep, rest = url.partition("://")
    return "postgresql://" + rest if sep and scheme.startswith("postgres") else url


def check_schema(conn: psycopg.Connection[Any]) -> None:
    """Fail clearly when a later migration added a required column this script omits."""
    known = {
        "model_versions": set(VERSION_COLUMNS),
        "metrics": set(METRIC_COLUMNS) | {"id"},
        "audit_events": set(AUDIT_COLUMNS) | {"id"},
    }
    rows = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = ANY(%s) "
        "AND is_nullable = 'NO' AND column_default IS NULL",
        (list(known),),
    ).fetchall()
    missing = [f"{t}.{c}" for t, c in rows if c not in known[t]]
    if missing:
        raise SystemExit(f"seed_versions: required columns this script does not fill: {missing}")


def lock_or_create_model(
    conn: psycopg.Connection[Any], name: str, now: datetime
) -> tuple[int, int]:
    row = conn.execute(
        "SELECT id, last_version FROM registered_models WHERE name = %s FOR UPDATE", (name,)
    ).fetchone()
    if row is not None:
        return int(row[0]), int(row[1])
    row = conn.execute(
        "INSERT INTO registered_models (name, description, owner, tags, primary_metric, "
        "primary_dataset, last_version, created_by, created_at, updated_at) "
        "VALUES (%s, 'seeded', 'seed', '{}', 'accuracy', %s, 0, %s, %s, %s) RETURNING id",
        (name, DATASET, ACTOR, now, now),
    ).fetchone()
    assert row is not None
    return int(row[0]), 0


def is_superuser(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    return bool(row and row[0])


def seed(
    url: str,
    model: str,
    count: int,
    *,
    audit: bool,
    rng_seed: int,
    vacuum: bool,
    check_fks: bool = False,
) -> dict[str, Any]:
    started = time.perf_counter()
    timings: dict[str, float] = {}
    rng = random.Random(rng_seed)
    with psycopg.connect(libpq_url(url)) as conn:
        check_schema(conn)
        if not check_fks and is_superuser(conn):
            # The rows are consistent by construction (ids reserved from the sequence,
            # one locked model): skipping the per-row foreign-key triggers makes COPY
            # several times faster. Only a superuser may; others get the checks.
            conn.execute("SET LOCAL session_replication_role = replica")
        now = datetime.now(UTC)
        model_id, last = lock_or_create_model(conn, model, now)
        has_production = (
            conn.execute(
                "SELECT 1 FROM model_versions WHERE model_id = %s AND stage = 'production'",
                (model_id,),
            ).fetchone()
            is not None
        )
        ids = [
            int(r[0])
            for r in conn.execute(
                "SELECT nextval(pg_get_serial_sequence('model_versions', 'id')) "
                "FROM generate_series(1, %s)",
                (count,),
            )
        ]
        production_at = None if has_production else last + max(1, int(count * 0.9))
        base_time = now - timedelta(seconds=count)
        versions: list[Row] = []
        for i in range(count):
            number = last + 1 + i
            draw = rng.random()
            stage = "archived" if draw < 0.5 else "staging" if draw < 0.51 else "candidate"
            if number == production_at:
                stage = "production"
            accuracy = round(rng.uniform(0.5, 0.99), 4)
            created = base_time + timedelta(seconds=i)
            versions.append((ids[i], number, stage, accuracy, created, rng.getrandbits(160)))
        timings["generate_s"] = time.perf_counter() - started

        t = time.perf_counter()
        tags = json.dumps({"team": "risk", "seeded": "true"})
        with conn.cursor().copy(
            f"COPY model_versions ({', '.join(VERSION_COLUMNS)}) FROM STDIN"
        ) as copy:
            for vid, number, stage, _acc, created, bits in versions:
                copy.write_row(
                    (vid, model_id, number, stage, "seeded", json.dumps(lineage_of(number, bits)),
                     lineage_fingerprint(lineage_of(number, bits)), None, tags,
                     "missing", ACTOR, created, created, created, False)
                )  # fmt: skip
        timings["copy_versions_s"] = time.perf_counter() - t

        t = time.perf_counter()
        with conn.cursor().copy(f"COPY metrics ({', '.join(METRIC_COLUMNS)}) FROM STDIN") as copy:
            # metrics.stage is a copy of the version's stage (migration 0004).
            for vid, _number, stage, accuracy, created, _bits in versions:
                copy.write_row(
                    (vid, model_id, "accuracy", DATASET, "", accuracy, 10000, "submitted",
                     created, stage)
                )  # fmt: skip
                copy.write_row(
                    (vid, model_id, "f1", DATASET, "", round(accuracy - 0.03, 4), 10000,
                     "submitted", created, stage)
                )  # fmt: skip
        timings["copy_metrics_s"] = time.perf_counter() - t

        if audit:
            t = time.perf_counter()
            append_audit(conn, model, versions)
            timings["copy_audit_s"] = time.perf_counter() - t

        conn.execute(
            "UPDATE registered_models SET last_version = %s, updated_at = %s WHERE id = %s",
            (last + count, now, model_id),
        )
        t = time.perf_counter()
        conn.commit()
        timings["commit_s"] = time.perf_counter() - t

    if vacuum:
        t = time.perf_counter()
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            tables = ["model_versions", "metrics"] + (["audit_events"] if audit else [])
            for table in tables:
                conn.execute(f"VACUUM (ANALYZE) {table}")
        timings["vacuum_analyze_s"] = time.perf_counter() - t
    total = time.perf_counter() - started
    return {
        "model": model,
        "seeded": count,
        "first_version": last + 1,
        "last_version": last + count,
        "metrics_rows": 2 * count,
        "audit_events": count if audit else 0,
        "seconds": round(total, 2),
        "versions_per_s": round(count / total) if total else None,
        **{k: round(v, 2) for k, v in timings.items()},
    }


def append_audit(
    conn: psycopg.Connection[Any],
    model: str,
    versions: list[Row],
) -> None:
    """Continue the model's hash chain with one version.created event per version."""
    stream = f"model:{model}"
    conn.execute(
        "INSERT INTO audit_streams (stream, seq, head_hash) VALUES (%s, 0, %s) "
        "ON CONFLICT (stream) DO NOTHING",
        (stream, GENESIS_HASH),
    )
    row = conn.execute(
        "SELECT seq, head_hash FROM audit_streams WHERE stream = %s FOR UPDATE", (stream,)
    ).fetchone()
    assert row is not None
    seq, head = int(row[0]), str(row[1])
    with conn.cursor().copy(f"COPY audit_events ({', '.join(AUDIT_COLUMNS)}) FROM STDIN") as copy:
        for _vid, number, _stage, _acc, created, bits in versions:
            seq += 1
            lineage = lineage_of(number, bits)
            fields: dict[str, Any] = {
                "stream": stream, "seq": seq, "occurred_at": created, "actor": ACTOR,
                "actor_role": ACTOR_ROLE, "token_id": None, "action": "version.created",
                "model": model, "version": number, "from_stage": None, "to_stage": "candidate",
                "reason": None, "request_id": None,
                "details": {"lineage": lineage, "metrics": 2, "evidence": [],
                            "expected_sha256": None},
            }  # fmt: skip
            digest = event_hash(fields, head)
            copy.write_row(
                (stream, seq, created, ACTOR, ACTOR_ROLE, None, "version.created", model, number,
                 None, "candidate", None, None, canonical_json(fields["details"]), head, digest)
            )  # fmt: skip
            head = digest
    conn.execute(
        "UPDATE audit_streams SET seq = %s, head_hash = %s WHERE stream = %s", (seq, head, stream)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/modelgate_bench",
        help="PostgreSQL URL (postgresql:// or postgresql+psycopg://).",
    )
    parser.add_argument("--model", required=True, help="Model name (created when missing).")
    parser.add_argument("--count", type=int, default=1_000_000, help="Versions to append.")
    parser.add_argument("--seed", type=int, default=1, help="Random seed of the data.")
    parser.add_argument("--no-audit", action="store_true", help="Write no audit events.")
    parser.add_argument("--no-vacuum", action="store_true", help="Skip VACUUM (ANALYZE).")
    parser.add_argument(
        "--check-fks",
        action="store_true",
        help="Keep foreign-key checks on (slower; they are skipped only for a superuser).",
    )
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    result = seed(
        args.database_url,
        args.model,
        args.count,
        audit=not args.no_audit,
        rng_seed=args.seed,
        vacuum=not args.no_vacuum,
        check_fks=args.check_fks,
    )
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
