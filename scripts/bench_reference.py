"""Reference points measured in the same run: what PostgreSQL and the S3 endpoint can do
on this machine without Modelgate in between.

- pgbench runs the transaction one version creation must run, on scratch tables in the
  benchmark database: bump a per-model counter with UPDATE ... RETURNING, insert the
  version row, insert its audit row, commit.
- a direct boto3 ``upload_fileobj`` of the same generated artifact to the same endpoint,
  with Modelgate's part size.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any, cast

from bench_load import latency_summary
from bench_workload import MIB, GeneratedArtifact

SCRATCH_SQL = """
DROP TABLE IF EXISTS pgbench_mg_audit, pgbench_mg_versions, pgbench_mg_models;
CREATE TABLE pgbench_mg_models (id integer PRIMARY KEY, last_version integer NOT NULL);
INSERT INTO pgbench_mg_models SELECT g, 0 FROM generate_series(1, {models}) AS g;
CREATE TABLE pgbench_mg_versions (
    id bigserial PRIMARY KEY,
    model_id integer NOT NULL REFERENCES pgbench_mg_models (id),
    version integer NOT NULL,
    stage varchar(16) NOT NULL,
    description text NOT NULL,
    lineage json NOT NULL,
    tags json NOT NULL,
    created_by varchar(256) NOT NULL,
    created_at timestamptz NOT NULL,
    UNIQUE (model_id, version)
);
CREATE INDEX ON pgbench_mg_versions (model_id, stage, version);
CREATE TABLE pgbench_mg_audit (
    id bigserial PRIMARY KEY,
    stream varchar(160) NOT NULL,
    seq bigint NOT NULL,
    occurred_at timestamptz NOT NULL,
    actor varchar(256) NOT NULL,
    action varchar(64) NOT NULL,
    model varchar(128),
    version integer,
    details json NOT NULL,
    prev_hash varchar(64) NOT NULL,
    hash varchar(64) NOT NULL,
    UNIQUE (stream, seq)
);
CREATE INDEX ON pgbench_mg_audit (model, id);
CREATE INDEX ON pgbench_mg_audit (action, id);
"""

_LINEAGE = (
    '{"code_commit": "3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39", '
    '"code_repository": "git.example.com/ml/fraud", "data_version": "transactions@2026-11-01", '
    '"feature_pipeline_version": "features-v12", '
    '"environment": "registry.example.com/train@0123456789abcdef", '
    '"hyperparameters": {"max_depth": 6, "eta": 0.3}, "seed": 42, "training_run_id": "run-123"}'
)
_DETAILS = '{"metrics": 3, "lineage": {"code_commit": "3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39"}}'

# One line per statement (pgbench's format). Literals hold no ":word": pgbench would
# read it as a variable.
PGBENCH_SCRIPT = "\n".join(
    [
        "\\set m random(1, {models})",
        "BEGIN;",
        "UPDATE pgbench_mg_models SET last_version = last_version + 1 WHERE id = :m "
        "RETURNING last_version AS v \\gset",
        "INSERT INTO pgbench_mg_versions (model_id, version, stage, description, lineage, "
        "tags, created_by, created_at) VALUES (:m, :v, 'candidate', 'benchmark version', "
        f"'{_LINEAGE}', '{{\"team\": \"risk\"}}', 'bench', now());",
        "INSERT INTO pgbench_mg_audit (stream, seq, occurred_at, actor, action, model, version, "
        "details, prev_hash, hash) VALUES ('model-' || :m, :v, now(), 'bench', "
        f"'version.created', 'model-' || :m, :v, '{_DETAILS}', "
        "md5(:v::text) || md5(:m::text), md5(:m::text) || md5(:v::text));",
        "COMMIT;",
        "",
    ]
)


def pgbench_binary() -> str | None:
    found = shutil.which("pgbench")
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True):
        return str(candidate)
    return None


def libpq_conninfo(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return "postgresql://" + rest if sep and scheme.startswith("postgres") else url


def run_pgbench(
    *, db_url: str, concurrency_levels: list[int], seconds: int, models: int, work_dir: Path
) -> dict[str, Any]:
    """pgbench at each concurrency; transactions/s and latency percentiles from its log."""
    binary = pgbench_binary()
    if binary is None:
        return {"skipped": "pgbench is not installed"}
    conninfo = libpq_conninfo(db_url)
    subprocess.run(
        ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo],
        input=SCRATCH_SQL.format(models=models),
        text=True,
        check=True,
        capture_output=True,
    )
    script = work_dir / "pgbench_create_version.sql"
    script.write_text(PGBENCH_SCRIPT.replace("{models}", str(models)))
    results: dict[str, Any] = {
        "script": PGBENCH_SCRIPT.replace("{models}", str(models)),
        "runs": [],
    }
    for concurrency in concurrency_levels:
        with tempfile.TemporaryDirectory(dir=work_dir) as log_dir:
            prefix = os.path.join(log_dir, "pgbench")
            threads = min(concurrency, os.cpu_count() or 1)
            argv = [
                binary, "-n", "-M", "prepared", "-f", str(script), "-c", str(concurrency),
                "-j", str(threads), "-T", str(seconds), "-l", "--log-prefix", prefix, conninfo,
            ]  # fmt: skip
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                results["runs"].append(
                    {"concurrency": concurrency, "error": done.stderr.strip()[-500:]}
                )
                continue
            latencies = []
            for log in Path(log_dir).glob("pgbench*"):
                for line in log.read_text().splitlines():
                    fields = line.split()
                    # client_id transaction_no time script_no time_epoch time_us
                    if len(fields) >= 3:
                        latencies.append(int(fields[2]) / 1e6)
        tps = _grab(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
        failed = _grab(r"number of failed transactions: (\d+)", done.stdout)
        results["runs"].append(
            {
                "concurrency": concurrency,
                "seconds": seconds,
                "tps": round(tps, 1) if tps is not None else None,
                "transactions": len(latencies),
                "failed": int(failed) if failed is not None else 0,
                **latency_summary(latencies),
            }
        )
    return results


def _grab(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text)
    return float(match.group(1)) if match else None


def run_boto3_upload(
    *, endpoint_url: str, bucket: str, artifact: GeneratedArtifact, part_size: int
) -> list[dict[str, Any]]:
    """upload_fileobj of the artifact with Modelgate's part size: with boto3's default
    concurrency (10 parts in flight), and with one part in flight as Modelgate does."""
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    client = boto3.session.Session(region_name="us-east-1").client(
        "s3",
        endpoint_url=endpoint_url,
        config=Config(
            max_pool_connections=32, signature_version="s3v4", s3={"addressing_style": "path"}
        ),
    )
    results = []
    for label, concurrency in (("boto3_upload", 10), ("boto3_upload_serial", 1)):
        config = TransferConfig(
            multipart_threshold=part_size,
            multipart_chunksize=part_size,
            max_concurrency=concurrency,
            use_threads=concurrency > 1,
        )
        key = f"reference/{label}-{time.time_ns()}"
        started = time.perf_counter()
        error = None
        try:
            client.upload_fileobj(cast("IO[bytes]", artifact.reader()), bucket, key, Config=config)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - started
        results.append(
            {
                "phase": label,
                "max_concurrency": concurrency,
                "part_size_mib": part_size // MIB,
                "bytes": artifact.size,
                "seconds": round(elapsed, 3),
                "mib_per_s": round(artifact.size / MIB / elapsed, 1),
                "errors": 0 if error is None else 1,
                "error_samples": [] if error is None else [error],
            }
        )
        # The reference object is only clutter in the store.
        with contextlib.suppress(Exception):
            client.delete_object(Bucket=bucket, Key=key)
    return results
