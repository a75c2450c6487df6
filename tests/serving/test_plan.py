"""The serving plan: revision, routes, aliases' and production's artifacts, ETag, 304,
and the bad input of the watch."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.serving.conftest import model_in_production
from tests.support.api import API, assert_problem, create_model
from tests.support.flows import new_version, promote


def plan_of(client: TestClient, model: str) -> dict:  # type: ignore[type-arg]
    response = client.get(f"{API}/models/{model}/serving")
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == f'"{response.json()["revision"]}"'
    return response.json()


def test_a_model_without_production_has_an_empty_plan_at_revision_0(client: TestClient) -> None:
    create_model(client, "empty-plan")
    plan = plan_of(client, "empty-plan")
    assert plan == {
        "model": "empty-plan",
        "revision": 0,
        "production": None,
        "routes": [],
        "shadows": [],
        "aliases": [],
    }


def test_promotion_and_rollback_each_bump_the_revision(client: TestClient) -> None:
    model = model_in_production(client, "plan-moves", versions=2)
    plan = plan_of(client, model)
    assert plan["revision"] == 2
    assert plan["production"]["version"] == 2
    [route] = plan["routes"]
    assert route["version"] == 2
    assert route["weight"] == 100.0
    version = client.get(f"{API}/models/{model}/versions/2").json()
    assert route["artifact"] == {
        "sha256": version["artifact"]["sha256"],
        "size": version["artifact"]["size"],
        "media_type": version["artifact"]["media_type"],
        "download_path": f"{API}/models/{model}/versions/2/artifact",
    }
    download = client.get(route["artifact"]["download_path"], follow_redirects=True)
    assert download.status_code == 200
    response = client.post(f"{API}/models/{model}/rollback", json={"reason": "bad latency"})
    assert response.status_code == 200, response.text
    plan = plan_of(client, model)
    assert plan["revision"] == 3
    assert [r["version"] for r in plan["routes"]] == [1]


def test_a_staging_promotion_does_not_change_the_revision(client: TestClient) -> None:
    model = model_in_production(client, "plan-staging", versions=1)
    number = new_version(client, model)
    promote(client, model, number, "staging", status="applied")
    assert plan_of(client, model)["revision"] == 1


def test_if_none_match_answers_304_with_the_revision(client: TestClient) -> None:
    model = model_in_production(client, "plan-etag", versions=1)
    response = client.get(f"{API}/models/{model}/serving", headers={"If-None-Match": '"1"'})
    assert response.status_code == 304
    assert response.headers["etag"] == '"1"'
    assert response.content == b""
    for other in ('"0"', 'W/"2"', "0"):
        response = client.get(f"{API}/models/{model}/serving", headers={"If-None-Match": other})
        assert response.status_code == 200
    for same in ('W/"1"', '"7", "1"', "*"):
        response = client.get(f"{API}/models/{model}/serving", headers={"If-None-Match": same})
        assert response.status_code == 304


def test_after_answers_at_once_when_newer_and_304_when_not(client: TestClient) -> None:
    model = model_in_production(client, "plan-after", versions=2)
    response = client.get(f"{API}/models/{model}/serving", params={"after": 1})
    assert response.status_code == 200
    assert response.json()["revision"] == 2
    response = client.get(f"{API}/models/{model}/serving", params={"after": 2})
    assert response.status_code == 304
    response = client.get(f"{API}/models/{model}/serving", params={"after": 2, "wait": 0.3})
    assert response.status_code == 304
    assert response.headers["etag"] == '"2"'


def test_many_models_answer_the_ones_that_are_newer(client: TestClient) -> None:
    a = model_in_production(client, "many-a", versions=1)
    b = model_in_production(client, "many-b", versions=2)
    response = client.get(f"{API}/models/-/serving", params={"after": [f"{a}:1", f"{b}:1"]})
    assert response.status_code == 200, response.text
    assert [(p["model"], p["revision"]) for p in response.json()["plans"]] == [(b, 2)]
    response = client.get(
        f"{API}/models/-/serving", params={"after": [f"{a}:1", f"{b}:2"], "wait": 0.2}
    )
    assert response.status_code == 304


def test_bad_watch_input_is_a_clear_problem(client: TestClient) -> None:
    model = model_in_production(client, "plan-bad", versions=1)
    path = f"{API}/models/{model}/serving"
    assert_problem(client.get(path, params={"after": 1, "wait": 61}), 422, "validation-failed")
    assert_problem(client.get(path, params={"after": 1, "wait": -1}), 422, "validation-failed")
    assert_problem(client.get(path, params={"after": -1}), 422, "validation-failed")
    # wait without after: nothing to wait past, so the plan at once (decision 0025)
    assert client.get(path, params={"wait": 5}).status_code == 200
    body = assert_problem(client.get(path, params={"after": 2}), 409, "revision-from-future")
    assert body["revision"] == 1
    assert_problem(client.get(f"{API}/models/nope/serving"), 404, "model-not-found")
    assert_problem(
        client.get(f"{API}/models/nope/serving", params={"after": 0, "wait": 1}),
        404,
        "model-not-found",
    )
    many = f"{API}/models/-/serving"
    assert_problem(client.get(many, params={"after": "plan-bad"}), 422, "validation-failed")
    # a model given twice counts once, at the older revision (decision 0025)
    twice = client.get(many, params={"after": [f"{model}:0", f"{model}:1"]})
    assert [(p["model"], p["revision"]) for p in twice.json()["plans"]] == [(model, 1)]
    # a revision in other digits than ASCII ones ("²" is a digit to str.isdigit)
    assert_problem(client.get(many, params={"after": f"{model}:²"}), 422, "validation-failed")
    assert_problem(client.get(many, params={"after": f"{model}:3000000000"}), 422)
    assert_problem(client.get(many, params={"after": "nope:0"}), 404, "model-not-found")
    assert_problem(client.get(many, params={"after": f"{model}:5"}), 409, "revision-from-future")
    assert_problem(client.get(many), 422, "validation-failed")


def test_a_scoped_token_watches_only_its_model(client: TestClient, make_token) -> None:  # type: ignore[no-untyped-def]
    model = model_in_production(client, "plan-scope", versions=1)
    create_model(client, "plan-other")
    token = make_token("reader", model_scope=model)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"{API}/models/{model}/serving", headers=headers).status_code == 200
    assert_problem(client.get(f"{API}/models/plan-other/serving", headers=headers), 403)
    response = client.get(
        f"{API}/models/-/serving", params={"after": "plan-other:0"}, headers=headers
    )
    assert_problem(response, 403)
