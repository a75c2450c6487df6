"""What ``submit`` finds by itself: CI runs, git state, credentials stripped, stable keys."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from modelgate_client import ci
from modelgate_client.cli.commands_registry import build_submission, load_evaluation

GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_RUN_ID": "123",
    "GITHUB_RUN_ATTEMPT": "1",
    "GITHUB_JOB": "train",
    "GITHUB_WORKFLOW": "ml",
    "GITHUB_REPOSITORY": "acme/fraud",
    "GITHUB_SERVER_URL": "https://github.example.com",
    "GITHUB_SHA": "a" * 40,
    "GITHUB_REF": "refs/heads/main",
}
GITLAB = {
    "GITLAB_CI": "true",
    "CI_PIPELINE_ID": "555",
    "CI_JOB_ID": "9001",
    "CI_JOB_NAME": "train",
    "CI_JOB_URL": "https://gitlab.example.com/ml/fraud/-/jobs/9001",
    "CI_PROJECT_URL": "https://gitlab.example.com/ml/fraud",
    "CI_COMMIT_SHA": "b" * 40,
}
JENKINS = {
    "JENKINS_URL": "https://jenkins.example.com/",
    "BUILD_TAG": "jenkins-fraud-train-17",
    "BUILD_URL": "https://jenkins.example.com/job/fraud-train/17/",
    "JOB_NAME": "fraud-train",
    "GIT_COMMIT": "c" * 40,
    "GIT_URL": "https://bot:hunter2@git.example.com/ml/fraud.git",
}


def test_github_actions_run() -> None:
    run = ci.detect_ci(GITHUB)
    assert run is not None
    assert (run.provider, run.run_id, run.job) == ("github", "123", "train")
    assert run.url == "https://github.example.com/acme/fraud/actions/runs/123"
    assert run.repository == "https://github.example.com/acme/fraud"
    assert run.commit == "a" * 40
    assert run.details == {"workflow": "ml", "job": "train", "ref": "refs/heads/main"}


def test_gitlab_run_uses_the_pipeline_which_a_retried_job_keeps() -> None:
    run = ci.detect_ci(GITLAB)
    assert run is not None
    assert (run.provider, run.run_id, run.job) == ("gitlab", "555", "train")
    assert run.url == "https://gitlab.example.com/ml/fraud/-/pipelines/555"
    assert run.commit == "b" * 40


def test_jenkins_build_without_credentials() -> None:
    run = ci.detect_ci(JENKINS)
    assert run is not None
    assert (run.provider, run.run_id) == ("jenkins", "jenkins-fraud-train-17")
    assert run.url == "https://jenkins.example.com/job/fraud-train/17/"
    assert run.repository == "https://git.example.com/ml/fraud.git"


def test_no_ci() -> None:
    assert ci.detect_ci({"HOME": "/root", "CI": "true"}) is None


@pytest.mark.parametrize(
    ("remote", "clean"),
    [
        ("https://gitlab-ci-token:glcbt-xyz@gitlab.com/ml/fraud.git", "https://gitlab.com/ml/fraud.git"),
        ("https://x-access-token@github.com/acme/fraud", "https://github.com/acme/fraud"),
        ("https://github.com/acme/fraud.git", "https://github.com/acme/fraud.git"),
        ("ssh://git:pw@host:2222/repo.git", "ssh://host:2222/repo.git"),
        ("git@github.com:acme/fraud.git", "git@github.com:acme/fraud.git"),
    ],
)  # fmt: skip
def test_credentials_are_stripped_from_remote_urls(remote: str, clean: str) -> None:
    assert ci.strip_credentials(remote) == clean


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def test_git_lineage_reads_commit_dirty_flag_and_origin(tmp_path: Path) -> None:
    assert ci.git_lineage(tmp_path) == {}  # not a checkout
    _git(tmp_path, "init", "-q")
    (tmp_path / "train.py").write_text("1\n")
    _git(tmp_path, "add", "train.py")
    _git(tmp_path, "commit", "-q", "-m", "x")
    head = _git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "model.npz").write_bytes(b"untracked output")
    assert ci.git_lineage(tmp_path) == {"code_commit": head, "code_dirty": False}
    _git(tmp_path, "remote", "add", "origin", "https://u:p@git.example.com/r.git")
    (tmp_path / "train.py").write_text("2\n")
    assert ci.git_lineage(tmp_path) == {
        "code_commit": head,
        "code_dirty": True,
        "code_repository": "https://git.example.com/r.git",
    }


def test_auto_lineage_falls_back_to_the_ci_commit_outside_a_checkout(tmp_path: Path) -> None:
    lineage = ci.auto_lineage(GITHUB, tmp_path)
    assert lineage == {
        "code_commit": "a" * 40,
        "code_repository": "https://github.example.com/acme/fraud",
        "ci_run_id": "123",
        "ci_run_url": "https://github.example.com/acme/fraud/actions/runs/123",
        "extra": {"ci": {"provider": "github", "workflow": "ml", "job": "train",
                         "ref": "refs/heads/main"}},
    }  # fmt: skip


def test_explicit_lineage_wins_and_extra_merges() -> None:
    auto = {"code_commit": "a", "ci_run_id": "1", "extra": {"ci": {"provider": "github"}}}
    explicit = {"ci_run_id": "manual", "extra": {"owner": "risk"}, "seed": 3}
    assert ci.merge_lineage(auto, explicit) == {
        "code_commit": "a",
        "ci_run_id": "manual",
        "extra": {"ci": {"provider": "github"}, "owner": "risk"},
        "seed": 3,
    }


def test_the_submit_key_survives_a_rerun_but_not_other_bytes_models_or_runs() -> None:
    runs = [
        ci.detect_ci(env)
        for env in (
            GITHUB,
            {**GITHUB, "GITHUB_RUN_ATTEMPT": "2"},
            {**GITHUB, "GITHUB_RUN_ID": "124"},
        )
    ]
    assert None not in runs
    first, rerun, other_run = (run for run in runs if run is not None)
    key = ci.submit_key(first, model="fraud", artifact_sha256="d" * 64)
    assert key == ci.submit_key(rerun, model="fraud", artifact_sha256="d" * 64)
    assert key.startswith("submit-")
    assert len(key) <= 255
    assert key != ci.submit_key(first, model="fraud", artifact_sha256="e" * 64)
    assert key != ci.submit_key(first, model="churn", artifact_sha256="d" * 64)
    assert key != ci.submit_key(other_run, model="fraud", artifact_sha256="d" * 64)


def test_a_rerun_sends_the_same_submission(tmp_path: Path) -> None:
    """Same key and same body on every attempt, so the server replays instead of
    refusing a reused key."""
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(b"weights")
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps([{"name": "accuracy", "value": 0.9, "dataset": "holdout"}]))
    made = [
        build_submission("fraud", artifact=artifact, metrics_file=str(metrics),
                         env={**GITLAB, "CI_JOB_ID": job_id, "CI_JOB_URL": f"u/{job_id}"},
                         cwd=tmp_path)
        for job_id in ("9001", "9002")
    ]  # fmt: skip
    assert made[0].key == made[1].key
    assert made[0].body == made[1].body
    assert made[0].body["artifact"]["sha256"] == made[0].sha256


def test_metrics_files_are_a_list_or_an_object_of_known_keys(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    metric = {"name": "accuracy", "value": 0.9, "dataset": "holdout"}
    path.write_text(json.dumps([metric]))
    assert load_evaluation(str(path)) == {"metrics": [metric]}
    matrix = {"dataset": "holdout", "matrix": [[5, 1], [2, 7]]}
    path.write_text(json.dumps({"confusion_matrices": [matrix], "evidence": []}))
    assert load_evaluation(str(path)) == {"confusion_matrices": [matrix]}
    path.write_text(json.dumps({"accuracy": 0.9}))
    with pytest.raises(SystemExit) as exited:
        load_evaluation(str(path))
    assert exited.value.code == 2
