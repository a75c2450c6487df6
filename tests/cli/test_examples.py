"""The CI examples: the training stand-in's files are accepted by a live server and pass
the default staging gates, and the workflow files run the documented commands."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.cli._server import REPO_ROOT
from tests.cli.conftest import Cli

EXAMPLES = REPO_ROOT / "examples"
GITHUB_RUN = {
    "GITHUB_RUN_ID": "5550001",
    "GITHUB_RUN_ATTEMPT": "1",
    "GITHUB_JOB": "train",
    "GITHUB_REPOSITORY": "acme/demo-classifier",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_SHA": "5" * 40,  # no checkout here: the commit comes from the CI variables
}


def train(out: Path) -> None:
    subprocess.run(
        [sys.executable, str(EXAMPLES / "train.py"), "--out", str(out)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def test_the_example_job_submits_passes_the_staging_gates_and_reruns_replay(
    cli: Cli, model: str, tmp_path: Path
) -> None:
    train(tmp_path / "a")
    train(tmp_path / "b")
    shas = {hashlib.sha256((tmp_path / d / "model.npz").read_bytes()).hexdigest() for d in "ab"}
    assert len(shas) == 1, "the same training run must give the same artifact bytes"

    def submit(out: Path) -> Any:
        return cli.json(
            "submit", model, "--artifact", str(out / "model.npz"),
            "--metrics", str(out / "metrics.json"), "--lineage", str(out / "lineage.json"),
            env=GITHUB_RUN,
        )  # fmt: skip

    version = submit(tmp_path / "a")
    sources = {m["name"]: m["source"] for m in version["metrics"]}
    assert sources["accuracy"] == "confusion_matrix"
    assert "log_loss" in sources
    assert version["evidence"][0]["kind"] == "correctness"
    assert submit(tmp_path / "b")["version"] == version["version"]  # a re-run: replayed

    number = str(version["version"])
    assert cli.run("evaluate", model, number, "--target", "staging").returncode == 0
    promoted = cli.json("promote", model, number, "--to", "staging")
    assert promoted["status"] == "applied"


def _commands(text: str) -> list[str]:
    found = []
    for word in ("models create", "submit", "evaluate", "promote"):
        if f"modelgate {word}" in text:
            found.append(word)
    return found


def test_the_github_workflow_trains_submits_evaluates_and_promotes() -> None:
    workflow: dict[str, Any] = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    assert workflow["env"]["MODELGATE_URL"] == "${{ secrets.MODELGATE_URL }}"
    assert workflow["env"]["MODELGATE_TOKEN"] == "${{ secrets.MODELGATE_TOKEN }}"
    train_steps = json.dumps(workflow["jobs"]["train"]["steps"])
    assert "actions/checkout" in train_steps
    assert "examples/train.py" in train_steps
    assert _commands(train_steps) == ["models create", "submit", "evaluate", "promote"]
    assert "--to staging" in train_steps
    production = workflow["jobs"]["production"]
    assert production["needs"] == "train"
    assert production["environment"] == "production"
    steps = json.dumps(production["steps"])
    assert "--to production" in steps
    assert "--wait --timeout 3600" in steps


def test_the_gitlab_pipeline_does_the_same() -> None:
    pipeline: dict[str, Any] = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())
    assert pipeline["stages"] == ["train", "staging", "production"]
    assert "modelgate submit" in json.dumps(pipeline["train"]["script"])
    assert pipeline["train"]["artifacts"]["reports"]["dotenv"] == "version.env"
    staging = json.dumps(pipeline["staging"]["script"])
    assert "--target staging" in staging
    assert "--to staging" in staging
    production = pipeline["production"]
    assert production["environment"]["name"] == "production"
    assert "--wait --timeout 3600" in json.dumps(production["script"])
