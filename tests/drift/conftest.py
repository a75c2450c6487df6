"""Fixtures of the drift tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.support.api import ADMIN_TOKEN


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"webhook_poll_interval_seconds": 0.05, "webhook_backoff_base_seconds": 0.02}
    )


@pytest.fixture
def make_client(settings: Settings) -> Iterator[Callable[..., TestClient]]:
    with ExitStack() as stack:

        def make(**overrides: Any) -> TestClient:
            app = create_app(settings.model_copy(update=overrides))
            client = stack.enter_context(TestClient(app, base_url="http://modelgate.test"))
            client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
            return client

        yield make
