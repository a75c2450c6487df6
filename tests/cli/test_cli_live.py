"""The ``modelgate`` command against a live server, as a CI job, a reviewer and an on-call
engineer use it: separate processes, real HTTP, the suite's database and store."""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from modelgate_client.cli.commands_registry import build_submission
from modelgate_client.cli.main import main
from modelgate_client.client import ModelgateClient
from tests.cli._server import LiveServer
from tests.cli.conftest import FULL_LINEAGE, Cli, Tokens, clean_env, write_job_files
from tests.support.s3server import free_port

GITHUB_RUN = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_RUN_ID": "9182736450",
    "GITHUB_RUN_ATTEMPT": "1",
    "GITHUB_JOB": "train",
    "GITHUB_WORKFLOW": "train-and-promote",
    "GITHUB_REPOSITORY": "acme/fraud-model",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
    "GITHUB_REF": "refs/heads/main",
}


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("modelgate: "), done.stderr
    return lines[0]


def big_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes in 1 MiB blocks; return their sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        left = size
        while left:
            block = os.urandom(min(left, 1024 * 1024))
            fh.write(block)
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def add_version(client: ModelgateClient, model: str, *, accuracy: float = 0.9) -> int:
    """A version with full lineage and an uploaded artifact, made through the client."""
    payload = os.urandom(2048)
    digest = hashlib.sha256(payload).hexdigest()
    body = {
        "lineage": {"code_commit": "c0ffee" * 6, **FULL_LINEAGE},
        "metrics": [{"name": "accuracy", "value": accuracy, "dataset": "holdout"}],
        "artifact": {"sha256": digest},
    }
    number: int = client.create_version(model, body).body["version"]
    path = Path(f"/tmp/mg-cli-{model}-{number}.bin")
    path.write_bytes(payload)
    try:
        client.upload_artifact(model, number, path, sha256=digest)
    finally:
        path.unlink()
    return number


def to_production(admin: ModelgateClient, reviewer: ModelgateClient, model: str, v: int) -> None:
    assert admin.request_promotion(model, v, target="staging").body["status"] == "applied"
    pending = admin.request_promotion(model, v, target="production").body
    assert pending["status"] == "pending_approval", pending
    assert reviewer.approve_promotion(pending["id"])["status"] == "applied"


@pytest.fixture
def reviewer_client(live_server: LiveServer, tokens: Tokens) -> ModelgateClient:
    return ModelgateClient(live_server.url, tokens.reviewer)


# submit ----------------------------------------------------------------------------------


def test_submit_100mb_twice_with_the_same_ci_run_creates_one_version(
    cli: Cli, admin: ModelgateClient, model: str, tmp_path: Path
) -> None:
    artifact = tmp_path / "big-model.bin"
    digest = big_file(artifact, 100 * 1024 * 1024)
    job = write_job_files(tmp_path)
    args = (
        "submit", model, "--artifact", str(artifact), "--metrics", str(job.metrics),
        "--lineage", str(job.lineage), "--tag", "team=risk", "--output", "json",
    )  # fmt: skip

    first = cli.run(*args, env=GITHUB_RUN)
    assert first.returncode == 0, first.stderr
    created = json.loads(first.stdout)
    assert created["version"] == 1
    assert created["artifact"]["status"] == "verified"
    assert created["artifact"]["sha256"] == digest
    assert created["artifact"]["size"] == 100 * 1024 * 1024
    assert "replayed" not in first.stderr

    # The job is retried with the same CI variables: nothing new is created.
    second = cli.run(*args, env=GITHUB_RUN)
    assert second.returncode == 0, second.stderr
    assert "replayed" in second.stderr
    again = json.loads(second.stdout)
    assert again["version"] == 1
    assert again["artifact"]["sha256"] == digest

    # A re-run of the job (a new attempt of the same run) replays too.
    rerun = cli.run(*args, env={**GITHUB_RUN, "GITHUB_RUN_ATTEMPT": "2"})
    assert rerun.returncode == 0, rerun.stderr
    assert "replayed" in rerun.stderr

    versions = admin.list_versions(model)["items"]
    assert [v["version"] for v in versions] == [1]

    # The stored bytes are the ones sent.
    copy = tmp_path / "copy.bin"
    done = cli.json("versions", "download", model, "1", "--dest", str(copy))
    assert done["sha256"] == digest
    assert done["size"] == 100 * 1024 * 1024


def test_a_replayed_submit_still_uploads_an_artifact_the_first_attempt_never_sent(
    cli: Cli, admin: ModelgateClient, tokens: Tokens, live_server: LiveServer, model: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    job = write_job_files(tmp_path, size=300_000)
    # The first attempt created the version and died before its upload.
    submission = build_submission(
        model,
        artifact=job.artifact,
        metrics_file=str(job.metrics),
        lineage_file=str(job.lineage),
        env=clean_env(**GITHUB_RUN),
        cwd=cli.workdir,
    )
    with ModelgateClient(live_server.url, tokens.submitter) as ci_client:
        first = ci_client.create_version(model, submission.body, idempotency_key=submission.key)
    assert first.body["artifact"]["status"] == "missing"

    done = cli.run(
        "submit", model, "--artifact", str(job.artifact), "--metrics", str(job.metrics),
        "--lineage", str(job.lineage), "--output", "json", env=GITHUB_RUN,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "replayed" in done.stderr
    assert "uploaded" in done.stderr
    version = json.loads(done.stdout)
    assert version["version"] == first.body["version"]
    assert version["artifact"]["status"] == "verified"
    assert version["artifact"]["sha256"] == submission.sha256
    assert len(admin.list_versions(model)["items"]) == 1


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=CI", "-c", "user.email=ci@example.com", *args],
        cwd=cwd, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def test_submit_fills_lineage_from_git_and_gitlab_and_the_lineage_file_wins(
    cli: Cli, model: str, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "train.py").write_text("print('training')\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "train")
    remote = "https://gitlab-ci-token:s3cr3t@gitlab.example.com/ml/fraud.git"
    _git(repo, "remote", "add", "origin", remote)
    head = _git(repo, "rev-parse", "HEAD")
    job = write_job_files(repo / "out")  # untracked output does not make the tree dirty
    gitlab = {
        "GITLAB_CI": "true",
        "CI_PIPELINE_ID": "4242",
        "CI_PIPELINE_URL": "https://gitlab.example.com/ml/fraud/-/pipelines/4242",
        "CI_JOB_ID": "777001",
        "CI_JOB_NAME": "train",
        "CI_JOB_URL": "https://gitlab.example.com/ml/fraud/-/jobs/777001",
        "CI_PROJECT_URL": "https://gitlab.example.com/ml/fraud",
        "CI_COMMIT_REF_NAME": "main",
    }
    lineage = json.loads(job.lineage.read_text())
    lineage["training_run_id"] = "mlflow-run-17"
    lineage["extra"] = {"owner": "risk-team"}
    job.lineage.write_text(json.dumps(lineage))

    clean = cli.json(
        "submit", model, "--artifact", str(job.artifact), "--metrics", str(job.metrics),
        "--lineage", str(job.lineage), env=gitlab, cwd=repo,
    )["lineage"]  # fmt: skip
    assert clean["code_commit"] == head
    assert clean["code_dirty"] is False
    assert clean["code_repository"] == "https://gitlab.example.com/ml/fraud.git"
    assert "s3cr3t" not in json.dumps(clean)
    assert clean["ci_run_id"] == "4242"
    assert clean["ci_run_url"] == "https://gitlab.example.com/ml/fraud/-/pipelines/4242"
    assert clean["extra"] == {
        "ci": {"provider": "gitlab", "job": "train", "ref": "main"},
        "owner": "risk-team",
    }
    assert clean["training_run_id"] == "mlflow-run-17"
    assert clean["data_version"] == FULL_LINEAGE["data_version"]

    # A tracked file changed: dirty. The lineage file overrides the CI run URL.
    (repo / "train.py").write_text("print('changed')\n")
    lineage["ci_run_url"] = "https://ci.example.com/custom/1"
    job.lineage.write_text(json.dumps(lineage))
    other = write_job_files(repo / "out2")
    dirty = cli.json(
        "submit", model, "--artifact", str(other.artifact), "--metrics", str(other.metrics),
        "--lineage", str(job.lineage), env=gitlab, cwd=repo,
    )["lineage"]  # fmt: skip
    assert dirty["code_dirty"] is True
    assert dirty["ci_run_url"] == "https://ci.example.com/custom/1"


def test_submit_reports_bad_input_files_as_usage_errors(
    cli: Cli, model: str, tmp_path: Path
) -> None:
    job = write_job_files(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"metrics": [], "accuracy": 0.9}')
    done = cli.run("submit", model, "--artifact", str(job.artifact), "--metrics", str(bad))
    assert done.returncode == 2
    assert "unknown key(s) accuracy" in one_error_line(done)
    bad.write_text("{not json")
    done = cli.run("submit", model, "--artifact", str(job.artifact), "--metrics", str(bad))
    assert done.returncode == 2
    assert "not valid JSON" in one_error_line(done)


# evaluate and promote -------------------------------------------------------------------------


def test_evaluate_exits_1_with_the_failing_rule_and_0_when_every_gate_passes(
    cli: Cli, model: str, tmp_path: Path
) -> None:
    job = write_job_files(tmp_path)
    bare = cli.json(
        "submit", model, "--artifact", str(job.artifact), "--metrics", str(job.metrics), "--no-git"
    )  # fmt: skip
    failing = cli.run("evaluate", model, str(bare["version"]), "--target", "staging")
    assert failing.returncode == 1, failing.stderr
    assert "lineage_complete" in failing.stdout
    assert "FAIL" in failing.stdout
    assert "FAILED lineage_complete: lineage is missing 'code_commit'" in failing.stdout

    as_json = cli.run(
        "evaluate", model, str(bare["version"]), "--target", "staging", "--output", "json"
    )
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["passed"] is False
    assert report["failed"] == ["lineage_complete"]

    full = write_job_files(tmp_path / "full")
    complete = cli.json(
        "submit", model, "--artifact", str(full.artifact), "--metrics", str(full.metrics),
        "--lineage", str(full.lineage), env=GITHUB_RUN,
    )  # fmt: skip
    passing = cli.run("evaluate", model, str(complete["version"]), "--target", "staging")
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "all gates pass" in passing.stdout

    usage = cli.run("evaluate", model, "seven", "--target", "staging")
    assert usage.returncode == 2


def test_promote_wait_returns_when_a_reviewer_approves_from_another_terminal(
    cli: Cli, admin: ModelgateClient, tokens: Tokens, model: str, tmp_path: Path
) -> None:
    job = write_job_files(tmp_path)
    version = cli.json(
        "submit", model, "--artifact", str(job.artifact), "--metrics", str(job.metrics),
        "--lineage", str(job.lineage), env=GITHUB_RUN,
    )["version"]  # fmt: skip
    staged = cli.run("promote", model, str(version), "--to", "staging", env=GITHUB_RUN)
    assert staged.returncode == 0, staged.stderr
    assert "applied" in staged.stdout

    waiting = cli.start(
        "promote", model, str(version), "--to", "production", "--comment", "nightly",
        "--wait", "--timeout", "90", "--interval", "0.3", "--output", "json",
        env={**GITHUB_RUN, "GITHUB_JOB": "production"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        pending: list[Any] = []
        while not pending and time.monotonic() < deadline:
            pending = list(admin.list_promotions(status="pending_approval", model=model)["items"])
            time.sleep(0.2)
        assert pending, "the promotion request never appeared"
        assert waiting.poll() is None, "promote --wait returned before anyone decided"

        queue = cli.run("promotions", "list", "--status", "pending_approval", "--model", model,
                        token=tokens.reviewer)  # fmt: skip
        assert queue.returncode == 0
        assert str(pending[0]["id"]) in queue.stdout
        approved = cli.run(
            "promotions", "approve", str(pending[0]["id"]), "--comment", "slices checked",
            token=tokens.reviewer,
        )  # fmt: skip
        assert approved.returncode == 0, approved.stderr
        assert "applied" in approved.stdout

        out, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    assert waiting.returncode == 0, err
    assert "waiting up to 90 s" in err
    final = json.loads(out)
    assert final["status"] == "applied"
    assert final["approvals"][0]["reviewer"] == tokens.names["reviewer"]
    assert admin.get_model(model)["production_version"] == version


def test_promote_wait_times_out_with_exit_1_and_decisions_end_requests(
    cli: Cli, admin: ModelgateClient, tokens: Tokens, model: str, tmp_path: Path
) -> None:
    version = add_version(admin, model)
    assert cli.run("promote", model, str(version), "--to", "staging").returncode == 0

    timed_out = cli.run(
        "promote", model, str(version), "--to", "production", "--wait", "--timeout", "1",
        "--interval", "0.2", "--output", "json",
    )  # fmt: skip
    assert timed_out.returncode == 1
    assert "timed out after 1 s" in timed_out.stderr
    assert "still pending_approval" in timed_out.stderr
    pending = admin.list_promotions(status="pending_approval", model=model)["items"]
    assert len(pending) == 1
    assert json.loads(timed_out.stdout)["id"] == pending[0]["id"]  # scripts get the id

    # Without --wait a pending request is a success (exit 0); asking again follows it.
    again = cli.run("promote", model, str(version), "--to", "production", "--output", "json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["id"] == pending[0]["id"]
    assert "already pending" in again.stderr

    rejected = cli.run(
        "promotions", "reject", str(pending[0]["id"]), "--comment", "not this week",
        token=tokens.reviewer,
    )  # fmt: skip
    assert rejected.returncode == 0, rejected.stderr
    assert "rejected" in rejected.stdout
    shown = cli.json("promotions", "show", str(pending[0]["id"]))
    assert shown["status"] == "rejected"
    assert shown["decision_comment"] == "not this week"

    # A request the gates reject: promote exits 1 and shows why.
    bare = admin.create_version(model, {"metrics": []}).body["version"]
    refused = cli.run("promote", model, str(bare), "--to", "staging")
    assert refused.returncode == 1
    assert "rejected" in refused.stdout
    assert "artifact_intact" in refused.stdout


# on call --------------------------------------------------------------------------------


def test_a_promotion_refused_by_a_freeze_exits_1_and_evaluate_shows_the_freeze(
    cli: Cli, admin: ModelgateClient, tokens: Tokens, model: str
) -> None:
    version = add_version(admin, model)
    assert cli.run("promote", model, str(version), "--to", "staging").returncode == 0
    frozen = cli.run("freeze", model, "--reason", "INC-9: hold", token=tokens.operator)
    assert frozen.returncode == 0, frozen.stderr

    refused = cli.run("promote", model, str(version), "--to", "production")
    assert refused.returncode == 1, (refused.returncode, refused.stderr)
    assert "INC-9: hold" in refused.stderr
    evaluated = cli.run("evaluate", model, str(version), "--target", "production")
    assert evaluated.returncode == 1, evaluated.stdout
    assert "model_not_frozen" in evaluated.stdout
    # Other server errors keep exit 3.
    assert cli.run("models", "show", "no-such-model").returncode == 3


def test_rollback_then_history_shows_the_switch(
    cli: Cli, admin: ModelgateClient, reviewer_client: ModelgateClient, tokens: Tokens,
    model: str,
) -> None:  # fmt: skip
    first = add_version(admin, model)
    to_production(admin, reviewer_client, model, first)
    second = add_version(admin, model, accuracy=0.95)
    to_production(admin, reviewer_client, model, second)

    denied = cli.run("rollback", model, "--reason", "INC-42")  # a submitter may not
    assert denied.returncode == 3
    assert "403" in one_error_line(denied)

    done = cli.run("rollback", model, "--reason", "INC-42: precision dropped",
                   token=tokens.operator)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"production is now version {first} (was {second})" in done.stdout

    table = cli.run("history", model)
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["VERSION", "FROM", "UNTIL", "VIA"]
    assert lines[1].split()[0] == str(first)
    for word in ("serving", "rollback", "INC-42"):
        assert word in lines[1]

    timeline = cli.json("history", model)["items"]
    assert [(h["version"], h["via"]) for h in timeline] == [
        (first, "rollback"), (second, "promotion"), (first, "promotion"),
    ]  # fmt: skip
    assert timeline[0]["ended_at"] is None
    assert timeline[0]["replaced_version"] == second
    assert timeline[1]["ended_by"] == "rollback"
    assert admin.get_model(model)["production_version"] == first


def test_audit_tail_follow_prints_new_events_as_json_lines(
    cli: Cli, admin: ModelgateClient, tokens: Tokens, model: str
) -> None:
    follower = cli.start(
        "audit", "tail", "--model", model, "--limit", "1", "--follow", "--interval", "0.3",
        "--output", "json", token=tokens.auditor,
    )  # fmt: skip
    try:
        assert follower.stdout is not None
        first = json.loads(follower.stdout.readline())
        assert first["action"] == "model.created"
        admin.freeze(model, reason="watch me")
        deadline = time.monotonic() + 30
        ready, _, _ = select.select([follower.stdout], [], [], deadline - time.monotonic())
        assert ready, "no new event within 30 s"
        event = json.loads(follower.stdout.readline())
        assert event["action"] == "model.frozen"
        assert event["reason"] == "watch me"
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=30)
    assert follower.returncode == 0


# output and errors ----------------------------------------------------------------------------


def test_every_command_prints_parseable_json(
    cli: Cli, admin: ModelgateClient, reviewer_client: ModelgateClient, tokens: Tokens,
    model: str, tmp_path: Path,
) -> None:  # fmt: skip
    job = write_job_files(tmp_path)
    name = f"{model}-json"
    assert cli.json("models", "create", name, "--tag", "team=risk")["tags"] == {"team": "risk"}
    assert cli.json("models", "create", name, "--exist-ok")["name"] == name  # exists: shown
    assert any(m["name"] == model for m in cli.json("models", "list", "--all")["items"])
    assert cli.json("models", "show", model)["name"] == model

    submitted = cli.json(
        "submit", model, "--artifact", str(job.artifact), "--metrics", str(job.metrics),
        "--lineage", str(job.lineage), env=GITHUB_RUN,
    )  # fmt: skip
    version = str(submitted["version"])
    assert cli.json("versions", "list", model)["items"][0]["version"] == submitted["version"]
    assert cli.json("versions", "show", model, version)["version"] == submitted["version"]
    # versions download: see test_submit_100mb_twice_with_the_same_ci_run_creates_one_version
    assert cli.json("evaluate", model, version, "--target", "staging")["passed"] is True
    assert cli.json("promote", model, version, "--to", "staging")["status"] == "applied"
    pending = cli.json("promote", model, version, "--to", "production")
    assert pending["status"] == "pending_approval"
    assert cli.json("promotions", "list", "--model", model)["items"]
    assert cli.json("promotions", "show", str(pending["id"]))["id"] == pending["id"]
    assert cli.json("promotions", "cancel", str(pending["id"]))["status"] == "cancelled"
    again = cli.json("promote", model, version, "--to", "production", "--idempotency-key", "k2")
    reject = cli.json("promotions", "reject", str(again["id"]), "--comment", "no",
                      token=tokens.reviewer)  # fmt: skip
    assert reject["status"] == "rejected"
    third = cli.json("promote", model, version, "--to", "production", "--idempotency-key", "k3")
    approved = cli.json("promotions", "approve", str(third["id"]), token=tokens.reviewer)
    assert approved["status"] == "applied"

    previous = add_version(admin, model)
    to_production(admin, reviewer_client, model, previous)
    rolled = cli.json("rollback", model, "--reason", "json check", token=tokens.operator)
    assert rolled["serving_version"] == submitted["version"]
    assert cli.json("history", model)["items"][0]["via"] == "rollback"
    assert cli.json("freeze", model, "--reason", "incident", token=tokens.operator)["frozen"]
    assert not cli.json("unfreeze", model, "--reason", "over", token=tokens.operator)["frozen"]
    spare = add_version(admin, model)
    assert cli.json("archive", model, str(spare), "--reason", "unused")["stage"] == "archived"

    shown = cli.json("policy", "show", model, token=tokens.admin)
    assert shown["is_default"] is True
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(shown))  # `policy show` output is accepted back
    assert (
        cli.json("policy", "set", model, "--file", str(policy_file), token=tokens.admin)["revision"]
        == 1
    )

    tail = cli.json("audit", "tail", "--model", model, "--limit", "5", token=tokens.auditor)
    assert len(tail["items"]) == 5
    assert tail["items"][-1]["action"] == "policy.updated"
    assert cli.json("audit", "verify", token=tokens.auditor)["ok"] is True
    exported = cli.run("audit", "export", "--model", model, "--output", "json",
                       token=tokens.auditor)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    events = [json.loads(line) for line in exported.stdout.splitlines()]
    assert events
    assert all(e["model"] == model for e in events)
    dest = tmp_path / "audit.jsonl"
    written = cli.run("audit", "export", "--model", model, "--dest", str(dest),
                      token=tokens.auditor)  # fmt: skip
    assert written.returncode == 0
    assert len(dest.read_text().splitlines()) == len(events)

    listed = cli.json("tokens", "list", "--all", token=tokens.admin)["items"]
    spare_token = admin.create_token(f"spare-{model}", "reader")
    assert any(t["name"] == tokens.names["submitter"] for t in listed)
    revoked = cli.json("tokens", "revoke", spare_token["id"], token=tokens.admin)
    assert revoked["revoked_at"] is not None


def test_errors_print_one_line_and_exit_3(
    cli: Cli, tokens: Tokens, model: str, tmp_path: Path
) -> None:
    missing = cli.run("models", "show", "no-such-model")
    assert missing.returncode == 3
    assert missing.stdout == ""
    assert one_error_line(missing).startswith("modelgate: 404 Model not found: ")

    # Under --output json (issue 19): the problem itself, as one JSON line on stderr.
    as_json = cli.run("versions", "show", model, "99", "--output", "json")
    assert as_json.returncode == 3
    assert as_json.stdout == ""
    assert "Traceback" not in as_json.stderr
    (line,) = as_json.stderr.splitlines()
    problem = json.loads(line)
    assert (problem["status"], problem["code"]) == (404, "version-not-found")

    bad_token = cli.run("models", "list", token="mgt_not-a-real-token")
    assert bad_token.returncode == 3
    assert one_error_line(bad_token).startswith("modelgate: 401 ")

    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps({"staging": {"approvals_required": -1}}))
    invalid = cli.run("policy", "set", model, "--file", str(policy_file), token=tokens.admin)
    assert invalid.returncode == 3
    assert "Traceback" not in invalid.stderr
    head, *fields = invalid.stderr.splitlines()
    assert head.startswith("modelgate: 4")
    assert all(line.startswith("  ") for line in fields)


def test_usage_and_connection_errors_exit_2(cli: Cli) -> None:
    no_token = cli.run("models", "list", token=None)
    assert no_token.returncode == 2
    assert "MODELGATE_TOKEN" in one_error_line(no_token)

    refused = cli.run("models", "list", "--url", f"http://127.0.0.1:{free_port()}")
    assert refused.returncode == 2
    assert "cannot connect to" in one_error_line(refused)
    assert "Connection refused" in refused.stderr

    bad_url = cli.run("models", "list", "--url", "ftp://example.com")
    assert bad_url.returncode == 2
    assert "http://" in one_error_line(bad_url)


def test_bootstrap_token_create_and_db_current_are_direct_database_commands(
    server_settings: dict[str, str], cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tokens create --bootstrap`` and ``db current`` read the server's database, not
    MODELGATE_URL. (In process: they import the whole server, already loaded here.)"""
    for key, value in server_settings.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    created = runner.invoke(
        main, ["tokens", "create", "--bootstrap", "--name", "bootstrap-check", "--role", "reader"]
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[0]
    assert "using database" in created.stderr
    assert "items" in cli.json("models", "list", token=secret)
    current = runner.invoke(main, ["db", "current"])
    assert current.exit_code == 0, current.output
    assert "needed:" in current.stdout


@pytest.mark.postgres_only
def test_retried_submits_on_two_server_processes_create_one_version(
    server_settings: dict[str, str], live_server: LiveServer, cli: Cli, admin: ModelgateClient,
    model: str, tmp_path: Path,
) -> None:  # fmt: skip
    """Two attempts of one CI job racing through two API processes on one database."""
    artifact = tmp_path / "big-model.bin"
    big_file(artifact, 8 * 1024 * 1024)
    job = write_job_files(tmp_path)
    with LiveServer(server_settings, tmp_path / "second") as second:
        args = (
            "submit", model, "--artifact", str(artifact), "--metrics", str(job.metrics),
            "--lineage", str(job.lineage), "--output", "json",
        )  # fmt: skip
        procs = [
            cli.start(*args, env={**GITHUB_RUN, "MODELGATE_URL": url})
            for url in (live_server.url, second.url)
        ]
        results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    numbers = {json.loads(out)["version"] for out, _ in results}
    assert numbers == {1}
    assert sum("replayed" in err for _, err in results) == 1
    assert [v["version"] for v in admin.list_versions(model)["items"]] == [1]
    assert admin.get_version(model, 1)["artifact"]["status"] == "verified"
