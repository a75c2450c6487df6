"""The token endpoints' HTTP surface: paging the list and refusing malformed create bodies.

Who may use a token and what it lets through is tests/auth's.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.support.api import API, assert_problem

MakeToken = Callable[..., str]


def test_token_list_paginates(client: TestClient, make_token: MakeToken) -> None:
    for i in range(5):
        make_token("reader", name=f"r{i}")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get(f"{API}/tokens", params=params).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 6


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "role": "superuser"}, "role"),
        ({"name": "", "role": "reader"}, "name"),
        ({"name": "x", "role": "reader", "model_scope": "../x"}, "model_scope"),
        ({"name": "x", "role": "reader", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "x", "role": "reader", "expires_in_days": "soon"}, "expires_in_days"),
        ({"name": "x", "role": "reader", "secret": "chosen"}, "secret"),
        ({"role": "reader"}, "name"),
    ],
)
def test_token_create_validation(client: TestClient, body: dict[str, object], field: str) -> None:
    problem = assert_problem(client.post(f"{API}/tokens", json=body), 422)
    assert ["body", field] in [e["loc"][:2] for e in problem["errors"]]
