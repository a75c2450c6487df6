"""What ``modelgate submit`` finds out by itself: git state, the CI run, idempotency keys.

Lineage filled automatically (a ``--lineage`` file overrides any of it):

- ``code_commit``: ``git rev-parse HEAD`` (else GITHUB_SHA, CI_COMMIT_SHA or GIT_COMMIT);
- ``code_dirty``: whether ``git status --porcelain --untracked-files=no`` lists anything.
  Untracked files do not count: a training job writes its model and metrics into the
  checkout, and that does not make the code that trained it uncommitted;
- ``code_repository``: ``git config --get remote.origin.url`` with any user name and
  password removed (GitLab puts a job token there), else the CI's project URL;
- ``ci_run_id`` and ``ci_run_url``, and ``extra.ci`` (provider, job, workflow, ref), from
  GitHub Actions, GitLab CI or Jenkins variables.

Everything recorded is the same on every attempt of a job: a retried job sends the same
request under the same Idempotency-Key, and the server replays the first answer. (Values
that change per attempt, such as GITHUB_RUN_ATTEMPT, CI_JOB_ID or CI_JOB_URL, would make
the retry a different request, which the server refuses under a reused key.)
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True)
class CiRun:
    """A CI run, as its environment variables describe it."""

    provider: str
    run_id: str
    job: str = ""
    """Stable across retries of the same job (its name, not its id)."""
    url: str | None = None
    commit: str | None = None
    repository: str | None = None
    details: dict[str, str] = field(default_factory=dict)


def _get(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def detect_ci(env: Mapping[str, str]) -> CiRun | None:
    """The CI run this process is part of: GitHub Actions, GitLab CI or Jenkins."""
    if _get(env, "GITHUB_RUN_ID"):
        run_id = _get(env, "GITHUB_RUN_ID")
        server = _get(env, "GITHUB_SERVER_URL") or "https://github.com"
        repo = _get(env, "GITHUB_REPOSITORY")
        return CiRun(
            provider="github",
            run_id=run_id,
            job=_get(env, "GITHUB_JOB"),
            url=f"{server}/{repo}/actions/runs/{run_id}" if repo else None,
            commit=_get(env, "GITHUB_SHA") or None,
            repository=f"{server}/{repo}" if repo else None,
            details=_nonempty(
                workflow=_get(env, "GITHUB_WORKFLOW"),
                job=_get(env, "GITHUB_JOB"),
                ref=_get(env, "GITHUB_REF"),
            ),
        )
    if _get(env, "GITLAB_CI") or _get(env, "CI_PIPELINE_ID"):
        pipeline = _get(env, "CI_PIPELINE_ID")
        project = _get(env, "CI_PROJECT_URL")
        url = _get(env, "CI_PIPELINE_URL") or (
            f"{project}/-/pipelines/{pipeline}" if project and pipeline else ""
        )
        return CiRun(
            provider="gitlab",
            run_id=pipeline or _get(env, "CI_JOB_ID"),
            job=_get(env, "CI_JOB_NAME"),
            url=url or None,
            commit=_get(env, "CI_COMMIT_SHA") or None,
            repository=project or None,
            details=_nonempty(
                job=_get(env, "CI_JOB_NAME"),
                ref=_get(env, "CI_COMMIT_REF_NAME"),
                project=_get(env, "CI_PROJECT_PATH"),
            ),
        )
    if _get(env, "BUILD_TAG") or (_get(env, "JENKINS_URL") and _get(env, "BUILD_URL")):
        return CiRun(
            provider="jenkins",
            run_id=_get(env, "BUILD_TAG") or _get(env, "BUILD_URL"),
            job=_get(env, "JOB_NAME"),
            url=_get(env, "BUILD_URL") or None,
            commit=_get(env, "GIT_COMMIT") or None,
            repository=strip_credentials(_get(env, "GIT_URL")) or None,
            details=_nonempty(job=_get(env, "JOB_NAME"), branch=_get(env, "BRANCH_NAME")),
        )
    return None


def _nonempty(**values: str) -> dict[str, str]:
    return {k: v for k, v in values.items() if v}


def strip_credentials(url: str) -> str:
    """``https://user:secret@host/x.git`` -> ``https://host/x.git``. scp-style remotes
    (``git@host:org/repo.git``) carry no secret and are kept."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=15, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_lineage(cwd: Path) -> dict[str, Any]:
    """Commit, dirty flag and repository URL of the git checkout around ``cwd``."""
    found: dict[str, Any] = {}
    head = _git(cwd, "rev-parse", "HEAD")
    if head is None or not head.strip():
        return found
    found["code_commit"] = head.strip()
    status = _git(cwd, "status", "--porcelain", "--untracked-files=no")
    if status is not None:
        found["code_dirty"] = bool(status.strip())
    remote = _git(cwd, "config", "--get", "remote.origin.url")
    if remote and remote.strip():
        found["code_repository"] = strip_credentials(remote.strip())
    return found


def auto_lineage(env: Mapping[str, str], cwd: Path, *, use_git: bool = True) -> dict[str, Any]:
    """The lineage fields this process can find by itself."""
    lineage: dict[str, Any] = git_lineage(cwd) if use_git else {}
    run = detect_ci(env)
    if run is None:
        return lineage
    if run.commit and "code_commit" not in lineage:
        lineage["code_commit"] = run.commit
    if run.repository and "code_repository" not in lineage:
        lineage["code_repository"] = run.repository
    lineage["ci_run_id"] = run.run_id
    if run.url:
        lineage["ci_run_url"] = run.url
    lineage["extra"] = {"ci": {"provider": run.provider, **run.details}}
    return lineage


def merge_lineage(auto: Mapping[str, Any], explicit: Mapping[str, Any]) -> dict[str, Any]:
    """Explicit values win; ``extra`` and ``hyperparameters`` merge key by key."""
    merged = dict(auto)
    for key, value in explicit.items():
        current = merged.get(key)
        mergeable = key in ("extra", "hyperparameters")
        if mergeable and isinstance(current, dict) and isinstance(value, dict):
            merged[key] = {**current, **value}
            continue
        merged[key] = value
    return merged


def derive_key(kind: str, *parts: str) -> str:
    """A stable Idempotency-Key: the kind, then a sha256 of the parts (never secrets)."""
    digest = hashlib.sha256("\x1f".join((kind, *parts)).encode()).hexdigest()
    return f"{kind}-{digest}"


def submit_key(run: CiRun, *, model: str, artifact_sha256: str) -> str:
    """One key per (model, CI run, job, artifact): a retried or re-run job that built the
    same bytes replays the version it already created; different bytes are a new model."""
    return derive_key("submit", model, run.provider, run.run_id, run.job, artifact_sha256)


def promote_key(run: CiRun, *, model: str, version: int, target: str) -> str:
    """One key per (model, version, stage, CI run, job): a re-run job follows the request
    its first attempt made (and sees its current status) instead of asking twice."""
    return derive_key("promote", model, str(version), target, run.provider, run.run_id, run.job)
