"""Documentation for people: Swagger UI and ReDoc from the server's own assets, a bearer
security scheme, readable operation ids, and the catalogue problem types point into."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from app.api.problems import catalogue
from app.errors import AppError
from app.main import create_app
from app.settings import Settings
from tests.support.api import API


def _urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html)


def test_swagger_and_redoc_load_nothing_from_elsewhere(app_client: TestClient) -> None:
    for page in ("docs", "redoc"):
        response = app_client.get(f"{API}/{page}")
        assert response.status_code == 200
        urls = _urls(response.text)
        assert urls, response.text
        for url in urls:
            assert url.startswith(("http://modelgate.test/", "/")), url
            asset = app_client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1000, url
    assert app_client.get(f"{API}/docs/assets/passwd").status_code == 404


def test_openapi_has_bearer_security_and_readable_operation_ids(app_client: TestClient) -> None:
    schema = app_client.get(f"{API}/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token: `modelgate tokens create` prints one.",
    }
    operations = [op for path in schema["paths"].values() for op in path.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][A-Za-z0-9]*", i) for i in ids), ids
    assert schema["paths"][f"{API}/models"]["post"]["operationId"] == "createModel"
    assert schema["paths"][f"{API}/models"]["post"]["security"] == [{"bearerAuth": []}]
    assert schema["paths"][f"{API}/healthz"]["get"]["security"] == []


def test_every_problem_type_links_into_the_catalogue(client: TestClient) -> None:
    listed = client.get(f"{API}/problems").json()["items"]
    codes = {entry["code"] for entry in listed}

    def every(cls: type[AppError]) -> set[str]:
        return {cls.code}.union(*(every(sub) for sub in cls.__subclasses__()))

    assert every(AppError) <= codes
    assert len(listed) == len(catalogue())
    problem = client.get(f"{API}/models/no-such-model").json()
    assert problem["type"] == f"http://modelgate.test{API}/problems/model-not-found"
    entry = client.get(problem["type"]).json()
    assert entry["code"] == "model-not-found"
    assert entry["status"] == 404
    assert entry["type"] == problem["type"]
    assert client.get(f"{API}/problems/no-such-code").json()["code"] == "not-found"


def test_the_problem_type_base_is_configurable(settings: Settings) -> None:
    custom = settings.model_copy(update={"problem_type_base_url": "https://errors.example/mg"})
    with TestClient(create_app(custom), base_url="http://modelgate.test") as http:
        problem = http.get(f"{API}/models").json()  # no token: 401
        assert problem["type"] == "https://errors.example/mg/unauthenticated"
        listed = http.get(f"{API}/problems").json()["items"]
        assert {e["type"] for e in listed} >= {"https://errors.example/mg/unauthenticated"}
