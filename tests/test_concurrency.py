"""Two real server processes on one PostgreSQL database: version numbers, unique names and
the audit chain stay right when creates race across processes."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.api import ADMIN_TOKEN, API, auth, version_payload
from tests.support.pg import migrated_pg_database
from tests.support.servers import ServerProcess, running_servers

pytestmark = pytest.mark.postgres_only


@pytest.fixture(scope="module")
def own_database() -> Iterator[str]:
    """A migrated database of this module's own: the servers outlive single tests."""
    with migrated_pg_database("modelgate_concurrency") as url:
        yield url


@pytest.fixture(scope="module")
def two_servers(
    own_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    settings = {
        "DATABASE_URL": own_database,
        "ARTIFACT_STORE": str(tmp_path_factory.mktemp("concurrency") / "artifacts"),
        "BOOTSTRAP_ADMIN_TOKEN": ADMIN_TOKEN,
        "LOG_LEVEL": "WARNING",
        "DB_POOL_SIZE": "10",
    }
    # Started together on an empty database: both try to create the bootstrap admin.
    with running_servers(settings, count=2, timeout=180) as servers:
        yield servers


def race(calls: Sequence[tuple[str, str, Mapping[str, object]]]) -> list[httpx.Response]:
    """Send every (base_url, path, json) at once, one thread each, released together."""
    barrier = threading.Barrier(len(calls))
    with httpx.Client(headers=auth(ADMIN_TOKEN), timeout=60.0) as http:

        def send(call: tuple[str, str, dict[str, object]]) -> httpx.Response:
            base, path, body = call
            barrier.wait()
            return http.post(base + API + path, json=body)

        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            return list(pool.map(send, calls))


def test_both_servers_start_on_an_empty_database(two_servers: list[ServerProcess]) -> None:
    """Runs first: the database was empty when both servers started."""
    with httpx.Client(headers=auth(ADMIN_TOKEN)) as http:
        for server in two_servers:
            assert http.get(f"{server.base_url}{API}/models").status_code == 200
        tokens = http.get(f"{two_servers[0].base_url}{API}/tokens").json()["items"]
    assert [t["name"] for t in tokens] == ["bootstrap-admin"]


def test_fifty_version_creates_across_two_processes(two_servers: list[ServerProcess]) -> None:
    a, b = (server.base_url for server in two_servers)
    with httpx.Client(headers=auth(ADMIN_TOKEN)) as http:
        assert http.post(f"{a}{API}/models", json={"name": "raced"}).status_code == 201

    calls = [
        ((a, b)[i % 2], "/models/raced/versions", version_payload(0.5 + i / 100)) for i in range(50)
    ]
    responses = race(calls)

    assert [r.status_code for r in responses] == [201] * 50, [
        r.text for r in responses if r.status_code != 201
    ][:3]
    numbers = sorted(r.json()["version"] for r in responses)
    assert numbers == list(range(1, 51))
    with httpx.Client(headers=auth(ADMIN_TOKEN)) as http:
        listed = http.get(f"{b}{API}/models/raced/versions", params={"limit": 500}).json()
        assert sorted(v["version"] for v in listed["items"]) == list(range(1, 51))
        assert http.get(f"{a}{API}/models/raced").json()["latest_version"] == 50
        # Each version got its own metrics, not another request's.
        for response in responses:
            version = response.json()
            accuracy = next(
                m for m in version["metrics"] if m["name"] == "accuracy" and not m["slice"]
            )
            read = http.get(f"{a}{API}/models/raced/versions/{version['version']}").json()
            assert read["metrics"] == version["metrics"]
            assert accuracy["value"] in {0.5 + i / 100 for i in range(50)}
        verify = http.get(f"{b}{API}/audit/verify").json()
        assert verify["ok"] is True, verify
        events = http.get(
            f"{a}{API}/audit", params={"model": "raced", "action": "version.created", "limit": 500}
        ).json()["items"]
    assert sorted(e["version"] for e in events) == list(range(1, 51))
    assert sorted(e["seq"] for e in events) == list(range(2, 52))


def test_twenty_creates_of_one_name_make_one_model(two_servers: list[ServerProcess]) -> None:
    a, b = (server.base_url for server in two_servers)
    calls = [
        ((a, b)[i % 2], "/models", {"name": "contested", "owner": f"team-{i}"}) for i in range(20)
    ]
    responses = race(calls)

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 19, [
        r.text for r in responses if r.status_code not in (201, 409)
    ]
    for response in responses:
        if response.status_code == 409:
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["code"] == "model-exists"
    winner = next(r for r in responses if r.status_code == 201).json()
    with httpx.Client(headers=auth(ADMIN_TOKEN)) as http:
        listed = http.get(f"{b}{API}/models", params={"name_prefix": "contested"}).json()["items"]
        assert [m["name"] for m in listed] == ["contested"]
        assert listed[0]["owner"] == winner["owner"]
        created = http.get(
            f"{a}{API}/audit", params={"action": "model.created", "model": "contested"}
        ).json()["items"]
        assert len(created) == 1
        assert http.get(f"{a}{API}/audit/verify").json()["ok"] is True
