"""docker-compose.yml and the Dockerfile agree with the settings the app reads.

No Docker engine runs here, so these tests read the files: the compose services, their
wiring (images, ports, health-gated start order), and the modelgate service's
environment, which must name only settings that exist, set the required ones, point at
the postgres and minio services as they are configured, and validate as Settings. Values
are taken as `docker compose` would resolve them with a .env file that sets only the
required admin token (everything else at its default).
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
GITIGNORE = ROOT / ".gitignore"
DOT_ENV = {"MODELGATE_BOOTSTRAP_ADMIN_TOKEN": "a-secret-from-the-operators-dot-env"}
ENTRYPOINT = ROOT / "scripts" / "entrypoint"

SERVICES = {"modelgate", "postgres", "minio", "minio-init"}
REQUIRED_SETTINGS = {"database_url", "artifact_store", "s3_endpoint_url", "bootstrap_admin_token"}
APP_PORT = 8080

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, and $$.
_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Resolve compose variable syntax in every string of a loaded compose document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        current = env.get(name)
        if op in (":-", ":?") and not current:
            current = None
        if current is not None:
            return current
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise AssertionError(f"compose requires ${name}: {arg}")
        return ""

    return _INTERPOLATION.sub(substitute, value)


def load_compose(env: dict[str, str]) -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict), "docker-compose.yml must be a mapping"
    resolved: dict[str, Any] = interpolate(document, env=env)
    return resolved


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose(DOT_ENV)


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    services: dict[str, Any] = compose["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    svc: dict[str, Any] = services[name]
    return svc


def environment(svc: dict[str, Any]) -> dict[str, str]:
    """A service's environment, from the mapping or the KEY=VALUE list form."""
    raw = svc.get("environment") or {}
    if isinstance(raw, list):
        pairs = (item.split("=", 1) for item in raw)
        return {key: value for key, value in pairs}
    return {key: "" if value is None else str(value) for key, value in raw.items()}


def modelgate_settings_env(compose: dict[str, Any]) -> dict[str, str]:
    prefix = str(Settings.model_config.get("env_prefix", ""))
    env = environment(service(compose, "modelgate"))
    return {k: v for k, v in env.items() if k.upper().startswith(prefix.upper())}


def entrypoint_variables() -> set[str]:
    """MODELGATE_* variables the image's entrypoint reads itself (not settings)."""
    return set(re.findall(r"\$\{?(MODELGATE_[A-Z0-9_]+)", ENTRYPOINT.read_text()))


def settings_values(env: dict[str, str]) -> dict[str, Any]:
    """Settings keyword arguments from MODELGATE_* variables, nested on the delimiter."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    delimiter = str(Settings.model_config.get("env_nested_delimiter") or "")
    values: dict[str, Any] = {}
    for key, value in env.items():
        if key in entrypoint_variables():
            continue
        path = key[len(prefix) :].lower()
        parts = path.split(delimiter) if delimiter else [path]
        target = values
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return values


def published(ports: list[Any]) -> set[tuple[str, int, int]]:
    """(host ip, host port, container port) for each short- or long-syntax port entry."""
    result = set()
    for entry in ports:
        if isinstance(entry, dict):
            host_ip = str(entry.get("host_ip", ""))
            result.add((host_ip, int(entry["published"]), int(entry["target"])))
            continue
        fields = str(entry).split("/")[0].split(":")
        container = int(fields[-1])
        host = int(fields[-2]) if len(fields) >= 2 else container
        host_ip = fields[-3] if len(fields) == 3 else ""
        result.add((host_ip, host, container))
    return result


def depends_on(svc: dict[str, Any]) -> dict[str, str]:
    raw = svc.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in raw.items()}


# Compose: services and wiring --------------------------------------------------------


def test_compose_has_the_four_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES


def test_service_images_and_build(compose: dict[str, Any]) -> None:
    build = service(compose, "modelgate")["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    assert Path(ROOT, context).resolve() == ROOT
    assert (ROOT / context / "Dockerfile").is_file()

    assert service(compose, "postgres")["image"].split(":") == ["postgres", "16"]

    minio = service(compose, "minio")["image"]
    mc = service(compose, "minio-init")["image"]
    assert minio.split(":")[0].endswith("minio/minio")
    assert mc.split(":")[0].endswith("minio/mc")
    for image in (minio, mc):
        tag = image.split(":", 1)[1] if ":" in image else "latest"
        assert tag.startswith("RELEASE."), f"{image}: pin a release tag, not {tag!r}"


def test_ports(compose: dict[str, Any]) -> None:
    # Loopback unless the operator publishes it on purpose.
    ports = published(service(compose, "modelgate")["ports"])
    assert ports == {("127.0.0.1", APP_PORT, APP_PORT)}
    chosen = load_compose({**DOT_ENV, "MODELGATE_BIND": "192.0.2.10"})
    assert published(service(chosen, "modelgate")["ports"]) == {("192.0.2.10", APP_PORT, APP_PORT)}
    # The database is reached over the compose network only.
    assert not service(compose, "postgres").get("ports")
    # MinIO's API and console, if published, only on loopback.
    for host_ip, _, _ in published(service(compose, "minio").get("ports", [])):
        assert host_ip == "127.0.0.1"


def test_start_order_waits_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    assert depends_on(service(compose, "modelgate")) == {
        "postgres": "service_healthy",
        "minio": "service_healthy",
        "minio-init": "service_completed_successfully",
    }
    assert depends_on(service(compose, "minio-init")) == {"minio": "service_healthy"}
    # A dependency awaited as healthy must define how it is checked.
    for name in ("postgres", "minio"):
        test = service(compose, name).get("healthcheck", {}).get("test")
        assert test, f"{name} needs a healthcheck"
    assert "pg_isready" in " ".join(service(compose, "postgres")["healthcheck"]["test"])
    # A one-shot job that restarts never "completes successfully".
    assert str(service(compose, "minio-init").get("restart", "no")) == "no"


def test_postgres_keeps_its_data_in_a_volume(compose: dict[str, Any]) -> None:
    volumes = [str(v) for v in service(compose, "postgres").get("volumes", [])]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in volumes)
    named = volumes[0].split(":")[0]
    assert named in (compose.get("volumes") or {})


def test_minio_serves_the_console_and_minio_init_creates_the_bucket(
    compose: dict[str, Any],
) -> None:
    command = service(compose, "minio")["command"]
    args = command if isinstance(command, list) else shlex.split(command)
    assert args[0] == "server"
    assert "--console-address" in args

    minio_env = environment(service(compose, "minio"))
    assert len(minio_env["MINIO_ROOT_PASSWORD"]) >= 8, "MinIO refuses passwords under 8 chars"
    bucket = urlsplit(environment(service(compose, "modelgate"))["MODELGATE_ARTIFACT_STORE"])
    script = " ".join(str(part) for part in service(compose, "minio-init")["command"])
    created = re.findall(r"mc mb\b[^\n]*?\s\S+/([a-z0-9.-]+)\s*$", script, flags=re.MULTILINE)
    assert created == [bucket.netloc], f"minio-init must create the bucket {bucket.netloc!r}"
    # minio-init logs in with the same root credentials the server was given.
    assert environment(service(compose, "minio-init")) == {
        "MINIO_ROOT_USER": minio_env["MINIO_ROOT_USER"],
        "MINIO_ROOT_PASSWORD": minio_env["MINIO_ROOT_PASSWORD"],
    }


# Compose: the modelgate service's environment against the settings -------------------


def test_settings_config_is_what_the_environment_names_assume() -> None:
    assert Settings.model_config.get("env_prefix") == "MODELGATE_"
    assert Settings.model_config.get("env_nested_delimiter") == "__"


def test_every_modelgate_variable_is_a_setting(compose: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    extra = entrypoint_variables()
    assert extra <= {"MODELGATE_WORKERS"}, f"entrypoint reads unexpected variables: {extra}"
    unknown = []
    for key in modelgate_settings_env(compose):
        if key in extra:
            continue
        top = key[len("MODELGATE_") :].lower().split("__")[0]
        if top not in fields:
            unknown.append(key)
    # Settings ignores unknown variables, so a typo here would be silently dropped.
    assert not unknown, f"not settings the app reads (see app/settings.py): {unknown}"


def test_required_settings_are_set(compose: dict[str, Any]) -> None:
    values = settings_values(modelgate_settings_env(compose))
    missing = REQUIRED_SETTINGS - {k for k, v in values.items() if v not in ("", None)}
    assert not missing, f"docker-compose.yml must set: {sorted(missing)}"


def test_database_url_points_at_the_postgres_service(compose: dict[str, Any]) -> None:
    url = make_url(modelgate_settings_env(compose)["MODELGATE_DATABASE_URL"])
    pg = environment(service(compose, "postgres"))
    assert url.drivername == "postgresql+psycopg"
    assert url.host == "postgres"
    assert (url.port or 5432) == 5432
    assert url.database == pg.get("POSTGRES_DB", pg["POSTGRES_USER"])
    assert url.username == pg["POSTGRES_USER"]
    assert url.password == pg["POSTGRES_PASSWORD"]
    # The server must not start before the schema exists: the entrypoint migrates.
    assert "modelgate db upgrade" in ENTRYPOINT.read_text()


def test_artifact_store_points_at_the_minio_service(compose: dict[str, Any]) -> None:
    env = environment(service(compose, "modelgate"))
    endpoint = urlsplit(env["MODELGATE_S3_ENDPOINT_URL"])
    assert endpoint.scheme == "http"
    assert endpoint.hostname == "minio"
    assert (endpoint.port or 80) == 9000, "MinIO's S3 API listens on 9000 by default"
    minio_args = service(compose, "minio")["command"]
    assert "--address" not in minio_args, "the endpoint port assumes MinIO's default address"
    assert env["MODELGATE_ARTIFACT_STORE"].startswith("s3://")
    assert env.get("MODELGATE_S3_REGION")
    minio_env = environment(service(compose, "minio"))
    assert env["AWS_ACCESS_KEY_ID"] == minio_env["MINIO_ROOT_USER"]
    assert env["AWS_SECRET_ACCESS_KEY"] == minio_env["MINIO_ROOT_PASSWORD"]


def test_compose_values_validate_as_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.upper().startswith("MODELGATE_"):
            monkeypatch.delenv(key)
    values = settings_values(modelgate_settings_env(compose))

    settings = Settings(_env_file=None, **values)
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert not settings.is_sqlite
    assert not settings.should_auto_migrate, "PostgreSQL is migrated by the entrypoint"
    assert settings.artifact_store == values["artifact_store"]
    assert settings.log_format == "json"
    assert isinstance(settings.bootstrap_admin_token, SecretStr)
    assert settings.bootstrap_admin_token.get_secret_value() == values["bootstrap_admin_token"]

    # The same values read the way the container reads them: from the environment.
    for key, value in modelgate_settings_env(compose).items():
        monkeypatch.setenv(key, value)
    from_env = Settings(_env_file=None)
    assert from_env.model_dump() == settings.model_dump()


# Dockerfile ----------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, rest = full.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert len(starts) >= 2, "build the wheel in one stage and install it in another"
    return instructions[starts[-1] :]


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [args for keyword, args in final_stage() if keyword == "USER"]
    assert users, "the runtime stage must switch to an unprivileged USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_dockerfile_exposes_and_probes_the_app_port() -> None:
    stage = final_stage()
    exposed = {args.split("/")[0] for keyword, args in stage if keyword == "EXPOSE"}
    assert str(APP_PORT) in " ".join(exposed).split()
    healthchecks = [args for keyword, args in stage if keyword == "HEALTHCHECK"]
    assert healthchecks, "HEALTHCHECK on /healthz"
    assert f"127.0.0.1:{APP_PORT}/healthz" in healthchecks[-1]
    entrypoint = ENTRYPOINT.read_text()
    assert f"--port {APP_PORT}" in entrypoint
    assert "exec modelgate serve" in entrypoint


def test_dockerfile_uses_slim_python_and_no_compilers_at_runtime() -> None:
    instructions = dockerfile_instructions()
    args = {
        a.split("=", 1)[0]: a.split("=", 1)[1] for k, a in instructions if k == "ARG" and "=" in a
    }
    for keyword, value in instructions:
        if keyword == "FROM":
            image = value.split()[0]
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), image)
            assert re.fullmatch(r"python:3\.11[.\d]*-slim(-\w+)?", image), image
    runtime_runs = " ".join(args for keyword, args in final_stage() if keyword == "RUN")
    for compiler in ("gcc", "build-essential", "g++", "clang", "-dev "):
        assert compiler not in runtime_runs


def test_dockerfile_default_command_is_the_entrypoint_script() -> None:
    stage = final_stage()
    copies = [args for keyword, args in stage if keyword == "COPY"]
    copied = [c for c in copies if "scripts/entrypoint" in c]
    assert copied, "the runtime stage must copy scripts/entrypoint"
    target = copied[0].split()[-1]
    cmd = [args for keyword, args in stage if keyword == "CMD"][-1]
    assert Path(target).name in cmd
    text = ENTRYPOINT.read_text()
    assert text.startswith("#!")
    assert re.search(r"^set -eu", text, flags=re.MULTILINE)
    assert text.index("modelgate db upgrade") < text.index("exec modelgate serve")
    assert os.access(ENTRYPOINT, os.X_OK)


def test_build_context_holds_what_the_dockerfile_copies() -> None:
    allowed = [
        line[1:].strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.startswith("!")
    ]
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", ".dockerignore is an allow-list: it starts by excluding all"
    sources: list[str] = []
    for keyword, args in dockerfile_instructions():
        if keyword != "COPY" or "--from=" in args:
            continue
        words = [w for w in args.split() if not w.startswith("--")]
        sources.extend(words[:-1])
    assert sources
    for source in sources:
        path = source.rstrip("/")
        assert (ROOT / path).exists(), f"the Dockerfile copies {source}, which does not exist"
        assert any(path == a or path.startswith(a + "/") for a in allowed), (
            f".dockerignore excludes {source}, which the Dockerfile copies"
        )


# Secrets and health ------------------------------------------------------------------


def test_the_admin_token_has_no_default_and_compose_refuses_to_start_without_one() -> None:
    with pytest.raises(AssertionError, match="MODELGATE_BOOTSTRAP_ADMIN_TOKEN"):
        load_compose({})
    with pytest.raises(AssertionError, match="MODELGATE_BOOTSTRAP_ADMIN_TOKEN"):
        load_compose({"MODELGATE_BOOTSTRAP_ADMIN_TOKEN": ""})
    raw = COMPOSE_FILE.read_text(encoding="utf-8")
    assert "change-me" not in raw


def read_env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def test_env_example_names_every_variable_and_leaves_the_secrets_empty() -> None:
    example = read_env_example()
    lines = COMPOSE_FILE.read_text(encoding="utf-8").splitlines()
    raw = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    used = {m.group("name") or m.group("bare") for m in _INTERPOLATION.finditer(raw)} - {None}
    assert set(example) == used
    for secret in ("MODELGATE_BOOTSTRAP_ADMIN_TOKEN", "POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD"):
        assert example[secret] == "", f"{secret} must not ship with a value"
    # A copied .env.example still refuses to start until the token is filled in.
    with pytest.raises(AssertionError, match="MODELGATE_BOOTSTRAP_ADMIN_TOKEN"):
        load_compose(example)
    assert ".env" in GITIGNORE.read_text(encoding="utf-8").split()


def test_modelgate_health_is_readiness(compose: dict[str, Any]) -> None:
    test = service(compose, "modelgate").get("healthcheck", {}).get("test")
    assert test, "the modelgate service needs a healthcheck"
    assert test[0] == "CMD"
    assert f"http://127.0.0.1:{APP_PORT}/readyz" in " ".join(test)
