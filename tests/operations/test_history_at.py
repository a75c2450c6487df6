"""``GET /models/{model}/history?at=T``: what the model's pointers held at time T (the
production version, every version's stage, every alias), read back at instants taken
from the moves themselves, one microsecond before and at each move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.api import API, assert_problem, create_model
from tests.support.flows import (
    Team,
    history,
    new_version,
    permissive_policy,
    promote,
    put_policy,
    read_version,
    rollback,
)

MODEL = "fraud"
TICK = timedelta(microseconds=1)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def at(client: TestClient, when: datetime, **headers: str) -> dict[str, Any]:
    response = client.get(f"{API}/models/{MODEL}/history", params={"at": _iso(when)},
                          headers=headers)  # fmt: skip
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def set_alias(client: TestClient, alias: str, version: int) -> dict[str, Any]:
    response = client.put(f"{API}/models/{MODEL}/aliases/{alias}", json={"version": version})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def alias_moves(client: TestClient) -> list[dict[str, Any]]:
    response = client.get(f"{API}/models/{MODEL}/aliases/challenger/history")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return list(reversed(items))  # oldest first


def test_pointers_at_each_instant(client: TestClient, team: Team) -> None:
    create_model(client, MODEL)
    put_policy(client, MODEL, permissive_policy())
    v1, v2, v3 = (new_version(client, MODEL) for _ in range(3))
    created = _time(read_version(client, MODEL, v1)["created_at"])

    promote(client, MODEL, v1, "production", status="applied")
    set_alias(client, "challenger", v2)
    promote(client, MODEL, v2, "staging", status="applied")
    staged = _time(read_version(client, MODEL, v2)["stage_changed_at"])
    promote(client, MODEL, v2, "production", status="applied")
    set_alias(client, "challenger", v3)
    assert client.delete(f"{API}/models/{MODEL}/aliases/challenger").status_code in (200, 204)
    assert rollback(client, MODEL, reason="incident", headers=team.operator).status_code == 200

    periods = list(reversed(history(client, MODEL)))  # oldest first
    assert [(p["version"], p["via"]) for p in periods] == [
        (v1, "promotion"), (v2, "promotion"), (v1, "rollback"),
    ]  # fmt: skip
    p1, p2, p3 = (_time(p["started_at"]) for p in periods)
    a_set, a_moved, a_removed = (_time(m["occurred_at"]) for m in alias_moves(client))

    # Before anything existed: no versions, nothing served.
    before = at(client, created - TICK)
    assert before["production"] is None
    assert before["stages"] == {"candidate": [], "staging": [], "production": [], "archived": []}
    assert before["aliases"] == []

    # Created, nothing promoted yet.
    first = at(client, p1 - TICK)
    assert first["production"] is None
    assert first["stages"]["candidate"] == [v1, v2, v3]

    # v1 serves from the instant of its promotion.
    serving_v1 = at(client, p1)
    assert serving_v1["production"]["version"] == v1
    assert serving_v1["production"]["via"] == "promotion"
    assert serving_v1["stages"] == {
        "candidate": [v2, v3], "staging": [], "production": [v1], "archived": [],
    }  # fmt: skip
    assert serving_v1["aliases"] == []

    aliased = at(client, a_set)
    assert [(a["alias"], a["version"]) for a in aliased["aliases"]] == [("challenger", v2)]
    assert _time(aliased["aliases"][0]["since"]) == a_set

    assert at(client, staged - TICK)["stages"]["staging"] == []
    in_staging = at(client, staged)
    assert in_staging["stages"]["staging"] == [v2]
    assert in_staging["production"]["version"] == v1

    # The hand-over: one microsecond before, v1; at the instant, v2 (and v1 archived).
    assert at(client, p2 - TICK)["production"]["version"] == v1
    handed = at(client, p2)
    assert handed["production"]["version"] == v2
    assert handed["production"]["replaced_version"] == v1
    assert handed["stages"] == {
        "candidate": [v3], "staging": [], "production": [v2], "archived": [v1],
    }  # fmt: skip

    assert [(a["alias"], a["version"]) for a in at(client, a_moved)["aliases"]] == [
        ("challenger", v3)
    ]
    assert at(client, a_removed - TICK)["aliases"][0]["version"] == v3
    assert at(client, a_removed)["aliases"] == []

    # The rollback: v1 serves again, v2 archived; the entry says how.
    back = at(client, p3, **team.reader)
    assert back["production"]["version"] == v1
    assert back["production"]["via"] == "rollback"
    assert back["stages"]["production"] == [v1]
    assert back["stages"]["archived"] == [v2]
    assert back["model"] == MODEL

    # Now (or any time since): the same as the live state.
    latest = at(client, datetime.now(UTC))
    assert latest["production"]["version"] == v1
    assert latest["production"]["ended_at"] is None


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2026-11-26",  # a date without a time
        "1764144000",  # a Unix time
        "2026-11-26T08:00:00",  # no offset: a guess
        "2026-11-26 08:00:00Z",  # a space is not RFC 3339's T
        "2026-02-30T08:00:00Z",  # no such day
        "2026-11-26T25:00:00Z",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "",
    ],
)
def test_malformed_at_is_a_400(client: TestClient, value: str) -> None:
    create_model(client, MODEL)
    response = client.get(f"{API}/models/{MODEL}/history", params={"at": value})
    assert_problem(response, 400)
    assert "at" in response.json()["detail"]


def test_future_at_is_now_and_paging_with_at_is_ignored(client: TestClient) -> None:
    # Decision 0025: a future time is answered as of now (the answer's `at` says so), and
    # cursor and limit, which page the timeline, are ignored with at=.
    create_model(client, MODEL)
    future = datetime.now(UTC) + timedelta(days=1)
    response = client.get(f"{API}/models/{MODEL}/history", params={"at": _iso(future)})
    assert response.status_code == 200, response.text
    answered = datetime.fromisoformat(response.json()["at"].replace("Z", "+00:00"))
    assert answered < future
    now = _iso(datetime.now(UTC) - timedelta(seconds=1))
    for extra in ({"limit": 5}, {"cursor": "x"}):
        response = client.get(f"{API}/models/{MODEL}/history", params={"at": now, **extra})
        assert response.status_code == 200, response.text
        assert "stages" in response.json()
    # Offsets other than Z name the same instant.
    response = client.get(
        f"{API}/models/{MODEL}/history", params={"at": "2026-01-01T09:30:00+09:30"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["at"] in ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00+00:00")


def test_at_on_unknown_model_is_404(client: TestClient) -> None:
    response = client.get(f"{API}/models/nope/history", params={"at": "2026-01-01T00:00:00Z"})
    assert_problem(response, 404)
