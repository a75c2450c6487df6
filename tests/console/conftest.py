"""A live Modelgate server with realistic data, and headless Chromium driven by Playwright.

The browser is Debian's ``/usr/bin/chromium`` (scripts/setup installs it); Playwright
never downloads one. One server and one data set serve the whole module: building them
costs seconds, and each test acts on its own model or request. Screenshots of every page
visited go to ``test-artifacts/screenshots/`` (not committed).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import httpx
import pytest
from sqlalchemy import create_engine

from app.db import migrate
from tests.console.seed import Seeded, seed
from tests.support.api import ADMIN_TOKEN, auth
from tests.support.pg import create_pg_database, drop_pg_database
from tests.support.servers import ServerProcess, running_servers

playwright_sync = pytest.importorskip("playwright.sync_api")

TEST_DB = os.environ.get("MODELGATE_TEST_DB", "postgres")
TEST_STORE = os.environ.get("MODELGATE_TEST_STORE", "s3")

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--disable-domain-reliability",
]


@dataclass
class Console:
    """The live server, its data, and a record of every URL the browser asked for."""

    base_url: str
    api: httpx.Client
    seeded: Seeded
    settings: dict[str, str]
    database_url: str
    requested: list[str] = field(default_factory=list)

    def token(self, role: str, name: str | None = None) -> str:
        response = self.api.post(
            "/api/v1/tokens", json={"name": name or f"{role}-{uuid.uuid4().hex[:6]}", "role": role}
        )
        assert response.status_code == 201, response.text
        secret: str = response.json()["token"]
        return secret

    def secret_of(self, headers: dict[str, str]) -> str:
        return headers["Authorization"].removeprefix("Bearer ")


@pytest.fixture(scope="module")
def console_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of the console tests' own, built by the migrations."""
    if TEST_DB != "postgres":
        yield f"sqlite:///{tmp_path_factory.mktemp('console-db')}/modelgate.db"
        return
    name = f"modelgate_console_{os.getpid()}"
    url = create_pg_database(name)
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    drop_pg_database(name)


@pytest.fixture(scope="module")
def console_settings(
    request: pytest.FixtureRequest,
    console_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    env = {
        "DATABASE_URL": console_database,
        "BOOTSTRAP_ADMIN_TOKEN": ADMIN_TOKEN,
        "AUTO_MIGRATE": "false" if TEST_DB == "postgres" else "true",
        "LOG_LEVEL": "WARNING",
        "WEBHOOK_DISPATCHER_ENABLED": "false",
    }
    if TEST_STORE == "s3":
        endpoint: str = request.getfixturevalue("s3_endpoint")
        bucket = f"mg-console-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket=bucket
        )
        env.update(
            ARTIFACT_STORE=f"s3://{bucket}/artifacts", S3_ENDPOINT_URL=endpoint,
            S3_REGION="us-east-1",
        )  # fmt: skip
    else:
        env["ARTIFACT_STORE"] = str(tmp_path_factory.mktemp("console-artifacts"))
    return env


@pytest.fixture(scope="module")
def console_server(console_settings: dict[str, str]) -> Iterator[ServerProcess]:
    with running_servers(console_settings) as servers:
        yield servers[0]


@pytest.fixture(scope="module")
def console(
    console_server: ServerProcess, console_settings: dict[str, str], console_database: str
) -> Iterator[Console]:
    with httpx.Client(
        base_url=console_server.base_url, headers=auth(ADMIN_TOKEN), timeout=60.0
    ) as api:
        seeded = seed(api)
        yield Console(
            base_url=console_server.base_url,
            api=api,
            seeded=seeded,
            settings=console_settings,
            database_url=console_database,
        )


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup (apt-get install chromium)")
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(browser: object, console: Console) -> Iterator[object]:
    """A fresh browser profile (no cookies), recording every request it makes."""
    ctx = browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": 1280, "height": 900}, timezone_id="Europe/Berlin", locale="en-GB"
    )
    ctx.on("request", lambda r: console.requested.append(r.url))
    ctx.set_default_timeout(20_000)
    try:
        yield ctx
    finally:
        ctx.close()


def shoot(page: object, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
