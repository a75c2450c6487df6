"""The CLI read as a CI log (no TTY): progress lines, problem JSON on stderr, a field
selector, exit codes in every command's help, CLI commands named in errors."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from modelgate_client.cli.common import cli_words
from tests.cli.conftest import Cli, write_job_files


def test_submit_a_directory_with_progress_lines_and_a_query(
    cli: Cli, model: str, tmp_path: Path
) -> None:
    job = write_job_files(tmp_path / "job", size=3 * 1024 * 1024 + 17)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    shutil.copy(job.artifact, model_dir / "weights.bin")
    done = cli.run(
        "submit", model, "--artifact", str(model_dir), "--metrics", str(job.metrics),
        "--lineage", str(job.lineage), "--query", "version",
        env={"MODELGATE_PROGRESS_INTERVAL": "0"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    number = int(done.stdout.strip())
    assert number >= 1
    log = done.stderr.splitlines()
    hashing = [line for line in log if line.startswith("modelgate: hashing model:")]
    uploading = [line for line in log if line.startswith("modelgate: uploading ")]
    assert hashing, done.stderr
    assert uploading, done.stderr
    assert "MiB of 3.0 MiB" in uploading[-1]
    assert "/s" in uploading[-1]

    sha = cli.run("versions", "show", model, str(number), "--query", "artifact.sha256")
    assert sha.returncode == 0, sha.stderr
    dest = tmp_path / "copy.tar"
    got = cli.run(
        "versions", "download", model, "--stage", "candidate", "--dest", str(dest),
        "--output", "json", env={"MODELGATE_PROGRESS_INTERVAL": "0"},
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == sha.stdout.strip()
    assert json.loads(got.stdout)["sha256"] == sha.stdout.strip()
    assert any(line.startswith("modelgate: downloading") for line in got.stderr.splitlines())


def test_errors_under_output_json_are_problem_json_on_stderr(cli: Cli) -> None:
    done = cli.run("models", "show", "no-such-model", "--output", "json")
    assert done.returncode == 3
    assert done.stdout == ""
    problem = json.loads(done.stderr)
    assert problem["code"] == "model-not-found"
    assert problem["status"] == 404
    assert problem["exit_code"] == 3

    usage = cli.run("models", "show", "x", "--output", "json", token=None)
    assert usage.returncode == 2
    assert json.loads(usage.stderr)["code"] == "usage-error"

    missing = cli.run("models", "show", "no-such-model", "--query", "name")
    assert missing.returncode == 3
    assert missing.stderr.startswith("modelgate: 404")


def test_every_command_documents_the_exit_codes(cli: Cli) -> None:
    for command in (["submit"], ["promote"], ["versions", "download"], ["audit", "verify"]):
        done = cli.run(*command, "--help")
        assert done.returncode == 0, done.stderr
        assert "Exit codes: 0 success" in " ".join(done.stdout.split()), command


def test_errors_name_cli_commands_not_api_paths() -> None:
    text = "production only by rollback (POST /api/v1/models/fraud/rollback)"
    assert cli_words(text) == "production only by rollback (modelgate rollback fraud)"
    assert cli_words("see POST /api/v1/promotions/42/approve") == (
        "see modelgate promotions approve 42"
    )
