"""The serving plan's fast path (``app.api.serving.ServingFastPath``): the common
requests (a conditional read, a long poll) answered without FastAPI's machinery, with
the same answers, the same checks, and everything else left to the full route."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api import serving
from tests.serving.conftest import model_in_production
from tests.support.api import API, assert_problem, create_model


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether the fast path answered each request (in order)."""
    seen: list[bool] = []
    original = serving.ServingFastPath._try

    async def spy(self: serving.ServingFastPath, *args: Any) -> bool:
        result = await original(self, *args)
        seen.append(result)
        return result

    monkeypatch.setattr(serving.ServingFastPath, "_try", spy)
    return seen


def _same(a: Any, b: Any) -> None:
    assert a.status_code == b.status_code
    assert a.content == b.content
    for header in ("etag", "cache-control", "content-type", "content-length"):
        assert a.headers.get(header) == b.headers.get(header), header
    assert a.headers["x-request-id"] != b.headers["x-request-id"]


def test_the_fast_path_answers_as_the_route_does(
    client: TestClient, make_token: Any, taken: list[bool]
) -> None:
    model = model_in_production(client, "fast-same", versions=2)
    path = f"{API}/models/{model}/serving"
    headers = {"Authorization": f"Bearer {make_token('reader')}"}
    cases: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({}, {}),
        ({}, {"If-None-Match": '"2"'}),
        ({}, {"If-None-Match": 'W/"1", "7"'}),
        ({"after": 1}, {}),
        ({"after": 2}, {}),
        ({"after": 2, "wait": 0.2}, {}),
        ({"after": "0001", "wait": "0"}, {"If-None-Match": '"2"'}),
    ]
    for params, extra in cases:
        taken.clear()
        first = client.get(path, params=params, headers={**headers, **extra})
        second = client.get(path, params=params, headers={**headers, **extra})
        _same(first, second)
        if client.app.state.serving_hub.latest(model) is not None:  # type: ignore[attr-defined]
            assert taken[-1] is True, (params, extra)  # PostgreSQL: the hub knows
    assert client.get(path, params={"after": 2}, headers=headers).headers["etag"] == '"2"'


def test_what_the_fast_path_does_not_check_goes_to_the_route(
    client: TestClient, make_token: Any, taken: list[bool]
) -> None:
    model = model_in_production(client, "fast-rest", versions=1)
    create_model(client, "fast-other")
    path = f"{API}/models/{model}/serving"
    client.get(path)  # the admin token is remembered, the revision known
    taken.clear()
    assert_problem(client.get(path, params={"after": 1, "wait": 61}), 422, "validation-failed")
    assert_problem(client.get(path, params={"after": 1, "wait": 60.5}), 422)
    assert_problem(client.get(path, params={"after": 1, "wait": -1}), 422)
    # wait without after has nothing to wait past: the route answers at once (0025).
    assert client.get(path, params={"wait": 5}).status_code == 200
    assert_problem(client.get(path, params={"after": 2}), 409, "revision-from-future")
    assert_problem(client.get(path, params={"after": 1, "after ": 1}), 400)
    assert_problem(client.get(path, params={"after": 1, "x": 1}), 400)
    assert_problem(client.get(f"{API}/models/nope/serving"), 404, "model-not-found")
    assert not any(taken)
    # The longest wait is accepted (answered at once here: a newer revision exists).
    response = client.get(path, params={"after": 0, "wait": 60})
    assert response.status_code == 200
    assert response.json()["revision"] == 1

    # A token the process has not seen is looked up by the route; one that may not read
    # the model is refused there.
    scoped = {"Authorization": f"Bearer {make_token('reader', model_scope='fast-other')}"}
    taken.clear()
    assert_problem(client.get(path, headers=scoped), 403)
    assert client.get(f"{API}/models/fast-other/serving", headers=scoped).status_code == 200
    assert_problem(client.get(path, headers=scoped, params={"after": 0}), 403)
    assert taken[-1] is False
    assert_problem(client.get(path, headers={"Authorization": "Bearer mgt_nothing"}), 401)
    assert_problem(client.get(path, headers={"Authorization": "Basic abc"}), 401)
    assert_problem(client.get(path, headers={"Authorization": ""}), 401)


def test_a_revoked_token_is_refused_at_once(client: TestClient, make_token: Any) -> None:
    model = model_in_production(client, "fast-revoke", versions=1)
    path = f"{API}/models/{model}/serving"
    secret = make_token("reader", name="fast-revoke-reader")
    headers = {"Authorization": f"Bearer {secret}", "If-None-Match": '"1"'}
    assert client.get(path, headers=headers).status_code == 304
    assert client.get(path, headers=headers).status_code == 304  # remembered
    tokens = client.get(f"{API}/tokens").json()
    items = tokens["items"] if isinstance(tokens, dict) else tokens
    token_id = next(t["id"] for t in items if t["name"] == "fast-revoke-reader")
    assert client.delete(f"{API}/tokens/{token_id}").status_code == 200
    assert_problem(client.get(path, headers=headers), 401)
    assert_problem(client.get(path, headers=headers, params={"after": 1}), 401)
