"""Fixtures of the webhook tests: a receiver on loopback and a fast dispatcher."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.support.api import ADMIN_TOKEN
from tests.support.receiver import Receiver

# Retries in tens of milliseconds instead of seconds to minutes.
FAST: dict[str, Any] = {
    "webhook_poll_interval_seconds": 0.05,
    "webhook_backoff_base_seconds": 0.02,
    "webhook_backoff_cap_seconds": 0.2,
    "webhook_timeout_seconds": 2.0,
    "webhook_lease_seconds": 5.0,
    "webhook_max_attempts": 200,
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update=FAST)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def make_client(settings: Settings) -> Iterator[Callable[..., TestClient]]:
    """Another app (own engine, own dispatcher) on the same database, with overrides."""
    with ExitStack() as stack:

        def make(**overrides: Any) -> TestClient:
            app = create_app(settings.model_copy(update=overrides))
            client = stack.enter_context(TestClient(app, base_url="http://modelgate.test"))
            client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
            return client

        yield make
