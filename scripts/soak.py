"""The race workload of tests/reliability/test_race.py, for longer (run it through
``scripts/soak``).

Starts what it needs: moto's S3 server (or a directory store with ``--store local``), a
fresh database on the PostgreSQL server of ``MODELGATE_TEST_PG_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``; the server itself is only
used, never stopped), and ``--processes`` Modelgate server processes. Then it runs
``--ops`` seeded random operations from ``--concurrency`` clients in batches of
``--check-every``, checking every invariant of tests/support/invariants.py after each
batch, and prints the figures: operations run, by kind and outcome, bad answers (5xx,
4xx without a problem body, transport errors), and the invariants. Exits 1 when any
answer was bad or any invariant failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402

from app.db import migrate  # noqa: E402
from app.storage.factory import open_store  # noqa: E402
from tests.reliability.workload import MODELS, RaceResult, Workload  # noqa: E402
from tests.support.api import ADMIN_TOKEN  # noqa: E402
from tests.support.invariants import InvariantViolation, check_invariants  # noqa: E402
from tests.support.pg import create_pg_database, drop_pg_database  # noqa: E402
from tests.support.s3server import TEST_CREDENTIALS, start_moto_server  # noqa: E402
from tests.support.servers import running_servers  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/soak", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--ops", type=int, default=20_000, help="operations in all (20,000)")
    parser.add_argument("--processes", type=int, default=3, help="server processes (3)")
    parser.add_argument("--concurrency", type=int, default=16, help="clients at once (16)")
    parser.add_argument("--seed", type=int, default=20261126, help="seed of the operation mix")
    parser.add_argument(
        "--check-every", type=int, default=5_000, help="check the invariants every N ops (5,000)"
    )
    parser.add_argument("--store", choices=("s3", "local"), default="s3", help="artifact store")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    if args.ops < 1 or args.processes < 1 or args.concurrency < 1 or args.check_every < 1:
        parser.error("--ops, --processes, --concurrency and --check-every must be positive")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    os.environ.update({k: os.environ.get(k, v) for k, v in TEST_CREDENTIALS.items()})
    database = f"modelgate_soak_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    with ExitStack() as stack:
        url = create_pg_database(database)
        if not args.keep:
            stack.callback(drop_pg_database, database)
        engine = create_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        settings = {
            "DATABASE_URL": url,
            "BOOTSTRAP_ADMIN_TOKEN": ADMIN_TOKEN,
            "AUTO_MIGRATE": "false",
            "LOG_LEVEL": "WARNING",
            "DB_POOL_SIZE": str(max(4, args.concurrency // args.processes + 2)),
            "DB_POOL_OVERFLOW": "2",
        }
        if args.store == "s3":
            moto = stack.enter_context(start_moto_server())
            bucket = f"mg-soak-{uuid.uuid4().hex[:12]}"
            s3 = boto3.client("s3", endpoint_url=moto.endpoint_url, region_name="us-east-1")
            s3.create_bucket(Bucket=bucket)
            store_url = f"s3://{bucket}/artifacts"
            settings.update(S3_ENDPOINT_URL=moto.endpoint_url, S3_REGION="us-east-1")
            store = open_store(store_url, s3_endpoint_url=moto.endpoint_url, s3_region="us-east-1")
        else:
            store_url = str(Path(stack.enter_context(tempfile.TemporaryDirectory())) / "artifacts")
            store = open_store(store_url)
        settings["ARTIFACT_STORE"] = store_url
        print(
            f"soak: {args.ops} operations, {args.processes} server processes, concurrency "
            f"{args.concurrency}, seed {args.seed}, database {database}, store {store.describe()}",
            flush=True,
        )
        servers = stack.enter_context(running_servers(settings, count=args.processes, timeout=180))
        workload = Workload(
            [s.base_url for s in servers],
            ADMIN_TOKEN,
            seed=args.seed,
            concurrency=args.concurrency,
            database_url=url,
            log=lambda line: print(line, flush=True),
        )
        stack.callback(workload.close)
        workload.setup()
        result = RaceResult()
        checks = 0
        failure: InvariantViolation | None = None
        done = 0
        while done < args.ops and failure is None:
            batch = min(args.check_every, args.ops - done)
            workload.run(batch, start=done, result=result)
            done += batch
            try:
                invariants = check_invariants(
                    url,
                    base_url=servers[checks % len(servers)].base_url,
                    admin_token=ADMIN_TOKEN,
                    store=store,
                    models=MODELS,
                )
            except InvariantViolation as exc:
                failure = exc
                break
            checks += 1
            print(f"  invariants held after {done} operations: {invariants.summary()}", flush=True)
        print()
        print(result.table())
        if result.bad:
            print("bad answers (first 20):")
            for line in result.bad:
                print("  " + line)
        print()
        classes = result.by_class()
        print(f"ops run:          {result.ops}")
        print(f"by outcome:       2xx {classes['2xx']}, 4xx {classes['4xx']}, bad {classes['bad']}")
        if failure is not None:
            print(f"invariants:       VIOLATED after {done} operations\n{failure}")
        else:
            print(f"invariants held:  yes, checked {checks} times ({invariants.summary()})")
        print(f"wall time:        {time.monotonic() - started:.0f} s")
        ok = (
            failure is None
            and result.bad_count == 0
            and result.watcher_max_production == 1
            and result.watcher_min_production == 1
        )
        print(f"result:           {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
