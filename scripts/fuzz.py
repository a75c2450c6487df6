"""Fuzz a live Modelgate server with schemathesis (run it through ``scripts/fuzz``).

Starts a server of its own (SQLite and a local artifact directory in a temporary
directory, unless ``--database-url`` names another database), seeds the example model the
spec names (``fraud-detector``, a version with an artifact) so that generated requests
also reach existing resources, creates a token of every role, and runs ``schemathesis
run`` against the server's ``/api/v1/openapi.json`` in rounds, each with a new seed and
the next role's token, until at least ``--cases`` test cases have been sent.

Every phase runs (examples, coverage, fuzzing, and stateful sequences along the
document's links) and every check schemathesis has: no 5xx; status, content type,
headers and body as declared; valid requests accepted and invalid ones refused; 405s
with an ``Allow`` header that is true; no answer without authentication; deleted
resources gone and created ones reachable. Statuses that depend on state, not on the
request's shape (401, 403, 404, 409, 412), count as an acceptance of valid data, and so do
the declared redirects and not-modified answers (307, 304). The one disagreement excused
(a made-up opaque cursor) is named in :func:`_excused`; a scenario schemathesis could not
generate cases for is a failure too.

Prints the number of test cases per round and in total, and the failures; exits 1 when
any check failed. Reports (JUnit, NDJSON) stay in ``--report-dir``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
API = "/api/v1"
ROLES = ("admin", "reader", "submitter", "reviewer", "operator", "auditor")
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "304", "307", "401", "403", "404", "409", "412"]
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(
    workdir: Path, token: str, database_url: str | None, port: int = 0
) -> tuple[Any, str]:
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
    env.update(
        {
            "MODELGATE_DATABASE_URL": database_url or f"sqlite:///{workdir / 'modelgate.db'}",
            "MODELGATE_ARTIFACT_STORE": str(workdir / "artifacts"),
            "MODELGATE_BOOTSTRAP_ADMIN_TOKEN": token,
            "MODELGATE_AUTO_MIGRATE": "true",
            "MODELGATE_LOG_LEVEL": "WARNING",
            "MODELGATE_WEBHOOK_DISPATCHER_ENABLED": "false",
            # webhooks seal their secrets under it (without it they cannot be created)
            "MODELGATE_SECRET_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "PYTHONPATH": str(ROOT),
        }
    )
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=workdir,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"fuzz: the server exited: {(workdir / 'server.log').read_text()}")
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("fuzz: the server did not become ready in 60 s")


# A serving long poll (?after=&wait=) may hold up to 60 s, as documented: longer than
# schemathesis's default request timeout (which then reports an error) and than its
# max_response_time check's default limit of 10 s (which then reports a failure: a 304
# after 59 s was one, decision 0026).
LONGEST_ANSWER_SECONDS = 75


def timing_options() -> list[str]:
    """How long ``schemathesis run`` waits for an answer, and how long one may take."""
    limit = str(LONGEST_ANSWER_SECONDS)
    return ["--request-timeout", limit, "--max-response-time", limit]


def schemathesis_env() -> dict[str, str]:
    """The environment of ``schemathesis run``: with :mod:`scripts.fuzz_hooks` loaded, which
    makes ``ast.parse`` one call at a time (a CPython 3.11 race between its worker threads,
    explained there)."""
    return {**os.environ, "SCHEMATHESIS_HOOKS": str(ROOT / "scripts" / "fuzz_hooks.py")}


def seed(base: str, token: str) -> None:
    """The spec's example model, with a version and its artifact."""
    with httpx.Client(base_url=base + API, headers={"Authorization": f"Bearer {token}"}) as http:
        http.post("/models", json={"name": "fraud-detector"})
        created = http.post("/models/fraud-detector/versions", json={"description": "seed"})
        number = created.json().get("version", 1)
        http.put(
            f"/models/fraud-detector/versions/{number}/artifact",
            content=b"fuzz seed artifact",
            headers={"Content-Type": "application/octet-stream"},
        )


def _problem(interaction: dict[str, Any]) -> dict[str, Any]:
    content = (interaction.get("response") or {}).get("content")
    if isinstance(content, dict) and "$base64" in content:
        try:
            body = json.loads(base64.b64decode(content["$base64"]))
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}
    return {}


def _problem_code(interaction: dict[str, Any]) -> str | None:
    code = _problem(interaction).get("code")
    return code if isinstance(code, str) else None


def _excused(check: dict[str, Any], interaction: dict[str, Any], status: int | None) -> bool:
    """The one refusal of valid-looking data the document states but no schema can: a
    made-up cursor (in the query or, for the scrub, in the body) answered 400. Cursors are
    opaque: only a ``next_cursor`` the server gave is valid (documented on every cursor).
    Everything else that depends on state, not on the request's shape, answers a status
    counted as acceptance (404, 409...; see CONFIG)."""
    if check.get("name") != "positive_data_acceptance":
        return False
    problem = _problem(interaction)
    code = problem.get("code")
    return status == 400 and code == "bad-request" and "cursor" in str(problem.get("detail", ""))


def count_cases(ndjson: Path) -> tuple[int, list[str]]:
    """Test cases sent and failure summaries, from schemathesis's NDJSON event stream."""
    cases = 0
    failures: list[str] = []
    for line in ndjson.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        event = json.loads(line)
        scenario = event.get("ScenarioFinished")
        if not scenario:
            continue
        recorder = scenario.get("recorder") or {}
        label = recorder.get("label", "?")
        cases += len(recorder.get("cases") or {})
        if scenario.get("status") == "error":
            failures.append(f"{label}: error in the {scenario.get('phase')} phase")
        for case_id, checks in (recorder.get("checks") or {}).items():
            interaction = (recorder.get("interactions") or {}).get(case_id) or {}
            status = (interaction.get("response") or {}).get("status_code")
            for check in checks:
                if check.get("status") == "success" or _excused(check, interaction, status):
                    continue
                failure = (check.get("failure_info") or {}).get("failure") or {}
                operation = failure.get("operation") or label
                detail = _problem_code(interaction) or failure.get("title") or ""
                failures.append(f"{operation}: {check.get('name')} ({status} {detail})")
    return cases, failures


def make_tokens(base: str, admin: str) -> dict[str, str]:
    """One token per role (the admin one is the bootstrap token)."""
    tokens = {"admin": admin}
    with httpx.Client(base_url=base + API, headers={"Authorization": f"Bearer {admin}"}) as http:
        for role in ROLES[1:]:
            body = {"name": f"fuzz-{role}", "role": role, "principal": f"fuzz-{role}"}
            response = http.post("/tokens", json=body)
            response.raise_for_status()
            tokens[role] = response.json()["token"]
    return tokens


def token_works(base: str, token: str) -> bool:
    """The fuzzer may revoke its own token (DELETE /tokens/{id} with an id it has read)."""
    response = httpx.get(f"{base}{API}/models", headers={"Authorization": f"Bearer {token}"})
    return response.status_code == 200


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="at least this many")
    parser.add_argument("--max-examples", type=int, default=100, help="per operation and round")
    parser.add_argument("--max-rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", default="2")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument("--port", type=int, default=0, help="default: a free one")
    parser.add_argument("--report-dir", default=None, help="default: a temporary directory")
    parser.add_argument(
        "--roles", default=",".join(ROLES), help="tokens to fuzz with, one role per round"
    )
    parser.add_argument(
        "--phases", default="examples,coverage,fuzzing,stateful", help="schemathesis phases"
    )
    args = parser.parse_args(argv)

    token = "mgt_fuzz_" + secrets.token_hex(16)
    workdir = Path(tempfile.mkdtemp(prefix="modelgate-fuzz-"))
    reports = Path(args.report_dir) if args.report_dir else workdir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    process, base = start_server(workdir, token, args.database_url, args.port)
    total = 0
    failures: list[str] = []
    roles = [r for r in args.roles.split(",") if r]
    config = workdir / "schemathesis.toml"
    config.write_text(CONFIG, encoding="utf-8")
    try:
        seed(base, token)
        tokens = make_tokens(base, token)
        for round_number in range(1, args.max_rounds + 1):
            if total >= args.cases and round_number > len(roles):
                break
            role = roles[(round_number - 1) % len(roles)]
            if round_number > 1 and not token_works(base, token):
                # Another admin (made by the fuzzer) revoked ours, which the last-admin rule
                # allows: a fresh server and database, or the rest would be 401s.
                print("fuzz: the admin token was revoked by a fuzzed call; restarting", flush=True)
                process.terminate()
                process.wait(timeout=15)
                workdir = Path(tempfile.mkdtemp(prefix="modelgate-fuzz-"))
                process, base = start_server(workdir, token, args.database_url, args.port)
                seed(base, token)
                tokens = make_tokens(base, token)
            ndjson = reports / f"round-{round_number}.ndjson"
            command = [
                str(Path(sys.executable).parent / "schemathesis"),
                "--config-file", str(config), "run",
                f"{base}{API}/openapi.json",
                "--checks", "all",
                "--header", f"Authorization: Bearer {tokens[role]}",
                "--max-examples", str(args.max_examples),
                "--seed", str(args.seed + round_number - 1),
                "--workers", args.workers,
                "--phases", args.phases,
                "--suppress-health-check", "all",
                *timing_options(),
                "--report", "junit,ndjson",
                "--report-ndjson-path", str(ndjson),
                "--report-junit-path", str(reports / f"round-{round_number}.xml"),
                "--continue-on-failure",
                "--output-sanitize", "true",
                "--no-color",
            ]  # fmt: skip
            started = time.monotonic()
            result = subprocess.run(
                command, capture_output=True, text=True, check=False, env=schemathesis_env()
            )
            if not ndjson.is_file():
                print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")
                print("fuzz: schemathesis produced no report", file=sys.stderr)
                return 2
            cases, found = count_cases(ndjson)
            total += cases
            failures += found
            print(
                f"round {round_number} ({role}): {cases} test cases in "
                f"{time.monotonic() - started:.0f} s, {len(found)} failed checks (total {total})",
                flush=True,
            )
            if found:
                print(result.stdout[-6000:])
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
    print(f"fuzz: {total} test cases against {base}, {len(failures)} failed checks")
    for failure in sorted(set(failures)):
        print(f"  FAILED {failure}")
    print(f"fuzz: reports in {reports}")
    if total < args.cases:
        print(f"fuzz: fewer test cases than asked ({total} < {args.cases})", file=sys.stderr)
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
