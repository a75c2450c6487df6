"""The race suite: three real server processes on one PostgreSQL database and one S3
server (moto, over HTTP), 1,000 seeded random concurrent operations from 16 clients,
then every invariant of tests/support/invariants.py.

Every answer must be a 2xx or a clean 4xx problem; a database watcher polls the committed
state during the run and must never see two production versions of a model. The counts
of operations by kind and outcome are printed (``scripts/soak`` runs the same workload
for longer).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import boto3
import pytest

from app.storage.factory import open_store
from tests.reliability.workload import MODELS, Workload
from tests.support.api import ADMIN_TOKEN
from tests.support.invariants import check_invariants
from tests.support.pg import migrated_pg_database
from tests.support.servers import ServerProcess, running_servers

pytestmark = [pytest.mark.postgres_only, pytest.mark.timeout(240)]

OPS = int(os.environ.get("MODELGATE_RACE_OPS", "1000"))
SEED = int(os.environ.get("MODELGATE_RACE_SEED", "20261126"))
CONCURRENCY = 16


@pytest.fixture
def race_database() -> Iterator[str]:
    with migrated_pg_database("modelgate_race") as url:
        yield url


@pytest.fixture
def race_bucket(s3_endpoint: str) -> str:
    name = f"mg-race-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture
def three_servers(
    race_database: str, race_bucket: str, s3_endpoint: str
) -> Iterator[list[ServerProcess]]:
    settings = {
        "DATABASE_URL": race_database,
        "ARTIFACT_STORE": f"s3://{race_bucket}/artifacts",
        "S3_ENDPOINT_URL": s3_endpoint,
        "S3_REGION": "us-east-1",
        "BOOTSTRAP_ADMIN_TOKEN": ADMIN_TOKEN,
        "AUTO_MIGRATE": "false",
        "LOG_LEVEL": "WARNING",
        # 16 clients over three processes: about 6 requests per process at once, each
        # holding a connection. Small pools keep the run well under max_connections of a
        # PostgreSQL server that other test runs share.
        "DB_POOL_SIZE": "6",
        "DB_POOL_OVERFLOW": "2",
    }
    with running_servers(settings, count=3, timeout=120) as servers:
        yield servers


def test_a_thousand_random_concurrent_operations_keep_every_invariant(
    three_servers: list[ServerProcess],
    race_database: str,
    race_bucket: str,
    s3_endpoint: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines: list[str] = []
    workload = Workload(
        [s.base_url for s in three_servers],
        ADMIN_TOKEN,
        seed=SEED,
        concurrency=CONCURRENCY,
        database_url=race_database,
        log=lines.append,
    )
    started = time.monotonic()
    try:
        workload.setup()
        setup_seconds = time.monotonic() - started
        result = workload.run(OPS)
    finally:
        workload.close()
    checked = time.monotonic()
    store = open_store(
        f"s3://{race_bucket}/artifacts", s3_endpoint_url=s3_endpoint, s3_region="us-east-1"
    )
    report = check_invariants(
        race_database,
        base_url=three_servers[1].base_url,
        admin_token=ADMIN_TOKEN,
        store=store,
        models=MODELS,
    )
    with capsys.disabled():
        print(  # noqa: T201
            f"\n[race] {OPS} operations, seed {SEED}, concurrency {CONCURRENCY}, "
            f"{len(three_servers)} server processes (set-up {setup_seconds:.1f} s)\n"
            f"{result.table()}\n[race] invariants held ({time.monotonic() - checked:.1f} s): "
            f"{report.summary()}"
        )

    if result.bad_count:
        logs = "\n".join(f"--- {s.base_url}\n{s.log()[-3000:]}" for s in three_servers)
        pytest.fail("bad answers:\n" + "\n".join(result.bad) + "\nserver logs:\n" + logs)
    assert result.watcher_polls > 0
    assert result.watcher_max_production == 1, "two production versions of a model at once"
    assert result.watcher_min_production == 1, "a model without a production version"
    # The run did what it is for: promotions applied at once and after approvals, gates
    # and reviewers said no, rollbacks happened, the freeze refused promotions.
    outcomes = result.outcomes
    assert outcomes["promote_production"]["201 applied"] > 0, outcomes["promote_production"]
    assert outcomes["promote_production"]["201 pending_approval"] > 0
    assert outcomes["promote_staging"]["201 applied"] > 0
    assert outcomes["approve"]["200 applied"] > 0, outcomes["approve"]
    assert outcomes["reject"]["200"] > 0, outcomes["reject"]
    assert outcomes["rollback"]["200"] > 0, outcomes["rollback"]
    assert outcomes["upload_artifact"]["200"] > 0
    assert outcomes["archive"]["200"] > 0
    assert report.models_with_production == len(MODELS)
