"""``models``, ``versions``, ``submit`` and ``policy``: what a CI job and a model owner type."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from modelgate_client import ci
from modelgate_client.api_types import PolicyRead, VersionRead
from modelgate_client.artifacts import PreparedArtifact, prepare_artifact, sha256_file
from modelgate_client.cli.common import (
    api_options,
    client,
    emit,
    fail,
    fetch_page,
    kv,
    more_hint,
    note,
    page_options,
    parse_tags,
    read_json_file,
    table,
    ts,
)
from modelgate_client.cli.progress import progress
from modelgate_client.client import ModelgateClient, ModelgateError

EVALUATION_KEYS = ("metrics", "confusion_matrices", "regression", "evidence")
STAGES = ("candidate", "staging", "production", "archived")


# Rendering ------------------------------------------------------------------------------


def render_model(m: dict[str, Any]) -> str:
    frozen = f"yes, by {m.get('frozen_by')}: {m.get('frozen_reason')}" if m.get("frozen") else "no"
    return kv(
        [
            ("model", m["name"]),
            ("description", m.get("description")),
            ("owner", m.get("owner")),
            ("tags", m.get("tags")),
            ("primary metric", m.get("primary_metric")),
            ("primary dataset", m.get("primary_dataset")),
            ("latest version", m.get("latest_version")),
            ("production version", m.get("production_version")),
            ("frozen", frozen),
            ("created", f"{ts(m.get('created_at'))} by {m.get('created_by')}"),
        ]
    )


def render_models(page: dict[str, Any]) -> str:
    if not page["items"]:
        return "no models"
    return table(
        ["NAME", "LATEST", "PRODUCTION", "FROZEN", "OWNER", "PRIMARY METRIC", "DESCRIPTION"],
        [
            [
                m["name"], m.get("latest_version"), m.get("production_version"), m.get("frozen"),
                m.get("owner"), m.get("primary_metric"), m.get("description"),
            ]
            for m in page["items"]
        ],
        max_width=50,
    )  # fmt: skip


def _metric_label(metric: dict[str, Any]) -> str:
    where = metric.get("dataset") or "-"
    if metric.get("slice"):
        where += f"[{metric['slice']}]"
    return f"{metric['name']}@{where}"


def render_version(v: dict[str, Any]) -> str:
    artifact = v.get("artifact") or {}
    lineage = v.get("lineage") or {}
    art = artifact.get("status", "-")
    if artifact.get("sha256"):
        art += f" sha256 {artifact['sha256']} ({_size(artifact.get('size'))})"
    elif artifact.get("expected_sha256"):
        art += f" (expecting sha256 {artifact['expected_sha256']})"
    lines = [
        kv(
            [
                ("model", v["model"]),
                ("version", v["version"]),
                ("stage", v["stage"] + (" (rolled back)" if v.get("rolled_back") else "")),
                ("description", v.get("description")),
                ("artifact", art),
                ("code commit", _commit(lineage)),
                ("repository", lineage.get("code_repository")),
                ("data version", lineage.get("data_version")),
                ("ci run", lineage.get("ci_run_url") or lineage.get("ci_run_id")),
                ("tags", v.get("tags")),
                ("created", f"{ts(v.get('created_at'))} by {v.get('created_by')}"),
            ]
        )
    ]
    metrics = v.get("metrics") or []
    if metrics:
        lines.append("")
        lines.append(
            table(
                ["METRIC", "VALUE", "SAMPLES", "SOURCE"],
                [
                    [
                        _metric_label(m),
                        m.get("value")
                        if m.get("value") is not None
                        else f"undefined: {m.get('undefined_reason')}",
                        m.get("sample_count"),
                        m.get("source"),
                    ]
                    for m in metrics
                ],
            )
        )
    return "\n".join(lines)


def _commit(lineage: dict[str, Any]) -> str | None:
    commit = lineage.get("code_commit")
    if commit and lineage.get("code_dirty"):
        return f"{commit} (dirty)"
    return commit if isinstance(commit, str) else None


def _size(size: Any) -> str:
    if not isinstance(size, int):
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover


def render_versions(page: dict[str, Any]) -> str:
    if not page["items"]:
        return "no versions"
    rows = []
    for v in page["items"]:
        metrics = " ".join(
            f"{m['name']}={m['value']:.4g}"
            for m in (v.get("metrics") or [])
            if m.get("value") is not None and not m.get("slice")
        )
        rows.append(
            [
                v["version"],
                v["stage"] + ("*" if v.get("rolled_back") else ""),
                (v.get("artifact") or {}).get("status"),
                (v.get("lineage") or {}).get("code_commit", "")[:12],
                metrics,
                ts(v.get("created_at")),
                v.get("created_by"),
            ]
        )
    return table(
        ["VERSION", "STAGE", "ARTIFACT", "COMMIT", "METRICS", "CREATED", "BY"], rows, max_width=70
    )


def render_policy(p: dict[str, Any]) -> str:
    source = "built-in default" if p.get("is_default") else f"revision {p.get('revision')}"
    head = f"{p['model']}: gate policy {source}"
    if p.get("created_by"):
        head += f", set by {p['created_by']} at {ts(p.get('created_at'))}"
    doc = p.get("policy") or {}
    rows = []
    for stage in ("staging", "production"):
        stage_policy = doc.get(stage) or {}
        for rule in stage_policy.get("rules") or []:
            params = {k: v for k, v in rule.items() if k not in ("kind", "name") and v is not None}
            rows.append([stage, rule.get("name") or rule.get("kind"), rule.get("kind"), params])
    out = [head, ""]
    out.append(table(["STAGE", "RULE", "KIND", "PARAMETERS"], rows, max_width=80) if rows else
               "no rules")  # fmt: skip
    out.append("")
    for stage in ("staging", "production"):
        sp = doc.get(stage) or {}
        extra = f", require staging: {'yes' if sp.get('require_staging') else 'no'}" if (
            stage == "production") else ""  # fmt: skip
        out.append(
            f"{stage}: approvals required {sp.get('approvals_required', 0)}, "
            f"auto-promote {'on' if sp.get('auto_promote') else 'off'}{extra}"
        )
    return "\n".join(out)


# models ---------------------------------------------------------------------------------


@click.group()
def models() -> None:
    """Registered models."""


@models.command("create")
@click.argument("name")
@click.option("--description", default="", help="What the model does.")
@click.option("--owner", default=None, help="Team or person responsible.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@click.option("--primary-metric", default=None, help="Metric the default production gate compares.")
@click.option("--primary-dataset", default=None, help="Dataset that metric is compared on.")
@click.option("--exist-ok", is_flag=True, help="Succeed (and show it) when the model exists.")
@api_options
def models_create(
    name: str,
    description: str,
    owner: str | None,
    tags: tuple[str, ...],
    primary_metric: str | None,
    primary_dataset: str | None,
    exist_ok: bool,
) -> None:
    """Register model NAME."""
    mg = client()
    try:
        created = mg.create_model(
            name,
            description=description,
            owner=owner,
            tags=parse_tags(tags),
            primary_metric=primary_metric,
            primary_dataset=primary_dataset,
        )
        body: Any = created.body
    except ModelgateError as exc:
        if not (exist_ok and exc.code == "model-exists"):
            raise
        note(f"model {name} already exists")
        body = mg.get_model(name)
    emit(body, render_model)


@models.command("list")
@click.option("--owner", default=None)
@click.option("--prefix", "name_prefix", default=None, help="Names starting with this.")
@page_options
@api_options
def models_list(
    owner: str | None, name_prefix: str | None, limit: int, cursor: str | None, all_pages: bool
) -> None:
    """List models by name."""
    mg = client()
    page = fetch_page(
        lambda c, n: mg.list_models(cursor=c, limit=n, owner=owner, name_prefix=name_prefix),
        limit=limit,
        cursor=cursor,
        all_pages=all_pages,
    )
    emit(page, render_models)
    more_hint(page)


@models.command("show")
@click.argument("name")
@api_options
def models_show(name: str) -> None:
    """Show one model, with its latest and production versions."""
    emit(client().get_model(name), render_model)


# versions -------------------------------------------------------------------------------


@click.group()
def versions() -> None:
    """Model versions."""


@versions.command("list")
@click.argument("model")
@click.option("--stage", type=click.Choice(STAGES), default=None)
@click.option(
    "--order-by", default=None, help="version, -version (default), metric:NAME or -metric:NAME."
)
@click.option("--dataset", default=None, help="Dataset of the metric to order by.")
@page_options
@api_options
def versions_list(
    model: str,
    stage: str | None,
    order_by: str | None,
    dataset: str | None,
    limit: int,
    cursor: str | None,
    all_pages: bool,
) -> None:
    """List MODEL's versions, newest first."""
    mg = client()
    page = fetch_page(
        lambda c, n: mg.list_versions(
            model, stage=stage, order_by=order_by, dataset=dataset, cursor=c, limit=n
        ),
        limit=limit,
        cursor=cursor,
        all_pages=all_pages,
    )
    emit(page, render_versions)
    more_hint(page)


@versions.command("show")
@click.argument("model")
@click.argument("version", type=click.IntRange(1))
@api_options
def versions_show(model: str, version: int) -> None:
    """Show one version: stage, artifact, lineage and metrics."""
    emit(client().get_version(model, version), render_version)


@versions.command("download")
@click.argument("model")
@click.argument("version", type=click.IntRange(1), required=False)
@click.option("--stage", type=click.Choice(STAGES), default=None, help="The version in STAGE.")
@click.option("--alias", default=None, help="The version an alias points at.")
@click.option(
    "--dest",
    default=None,
    type=click.Path(dir_okay=False, writable=True),
    help="File to write (checked against the artifact's sha256) [default: MODEL-vN].",
)
@api_options
def versions_download(
    model: str, version: int | None, stage: str | None, alias: str | None, dest: str | None
) -> None:
    """Download the artifact of VERSION, or of the version in --stage or at --alias,
    verified by its sha256 (nothing is left behind when it does not match)."""
    if sum(x is not None for x in (version, stage, alias)) != 1:
        raise click.UsageError("name exactly one of VERSION, --stage or --alias")
    with progress("downloading") as downloading:
        done = client().download(
            model, version=version, stage=stage, alias=alias, dest=dest, progress=downloading
        )
    emit(dict(done), lambda d: f"wrote {d['path']} ({_size(d['size'])}, sha256 {d['sha256']})")


# submit ---------------------------------------------------------------------------------


def load_evaluation(path: str) -> dict[str, Any]:
    """A metrics file: a JSON list of metrics, or an object with any of
    metrics / confusion_matrices / regression / evidence."""
    data = read_json_file(path, "metrics")
    if isinstance(data, list):
        return {"metrics": data}
    if not isinstance(data, dict):
        fail(f"the metrics file {path} must hold a JSON list of metrics or an object")
    unknown = sorted(set(data) - set(EVALUATION_KEYS))
    if unknown:
        fail(
            f"the metrics file {path} has unknown key(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(EVALUATION_KEYS)}"
        )
    return {k: v for k, v in data.items() if v}


def sha256_of(path: Path) -> str:
    return sha256_file(path)


@dataclass(frozen=True)
class Submission:
    """What ``submit`` sends: the version body, its Idempotency-Key, the artifact's sha256."""

    body: dict[str, Any]
    key: str
    sha256: str
    run: ci.CiRun | None


def build_submission(
    model: str,
    *,
    artifact: Path,
    metrics_file: str,
    lineage_file: str | None = None,
    signature_file: str | None = None,
    tags: dict[str, str] | None = None,
    description: str = "",
    media_type: str = "application/octet-stream",
    idempotency_key: str | None = None,
    sha256: str | None = None,
    env: dict[str, str],
    cwd: Path,
    use_git: bool = True,
) -> Submission:
    """The request ``submit`` makes, from its files, git and the CI environment."""
    body: dict[str, Any] = load_evaluation(metrics_file)
    explicit = read_json_file(lineage_file, "lineage") if lineage_file else {}
    if not isinstance(explicit, dict):
        fail(f"the lineage file {lineage_file} must hold a JSON object")
    body["lineage"] = ci.merge_lineage(ci.auto_lineage(env, cwd, use_git=use_git), explicit)
    if signature_file:
        signature = read_json_file(signature_file, "signature")
        if not isinstance(signature, dict):
            fail(f"the signature file {signature_file} must hold a JSON object")
        body["signature"] = signature
    if tags:
        body["tags"] = tags
    if description:
        body["description"] = description
    digest = sha256 or sha256_of(artifact)
    body["artifact"] = {"sha256": digest, "media_type": media_type}
    run = ci.detect_ci(env)
    if idempotency_key:
        key = idempotency_key
    elif run is not None:
        key = ci.submit_key(run, model=model, artifact_sha256=digest)
    else:
        # Outside CI each invocation is a new submission; the key still makes the
        # client's own retries of this one safe.
        key = f"submit-{uuid.uuid4().hex}"
    return Submission(body=body, key=key, sha256=digest, run=run)


@click.command()
@click.argument("model")
@click.option(
    "--artifact",
    required=True,
    type=click.Path(exists=True, readable=True),
    help="The model file to upload, or a directory (packed into a deterministic tar).",
)
@click.option(
    "--metrics",
    "metrics_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="JSON: a list of metrics, or {metrics, confusion_matrices, regression, evidence}.",
)
@click.option(
    "--lineage",
    "lineage_file",
    type=click.Path(exists=True, dir_okay=False),
    help="JSON object of lineage fields; overrides what is found automatically.",
)
@click.option(
    "--signature",
    "signature_file",
    type=click.Path(exists=True, dir_okay=False),
    help="JSON: {inputs: [columns], outputs: [columns]}.",
)
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@click.option("--description", default="", help="What changed in this version.")
@click.option(
    "--media-type",
    default=None,
    help="Artifact type [default: application/x-tar for a directory, else octet-stream].",
)
@click.option(
    "--idempotency-key",
    default=None,
    help="Override the key derived from the CI run (default outside CI: a fresh one).",
)
@click.option("--no-git", is_flag=True, help="Do not read lineage from git.")
@api_options
def submit(
    model: str,
    artifact: str,
    metrics_file: str,
    lineage_file: str | None,
    signature_file: str | None,
    tags: tuple[str, ...],
    description: str,
    media_type: str | None,
    idempotency_key: str | None,
    no_git: bool,
) -> None:
    """Submit a candidate version of MODEL: create it with its metrics and lineage, then
    stream the artifact, checked by sha256.

    \b
    The metrics file is JSON, either a list of metrics
      [{"name": "accuracy", "value": 0.93, "dataset": "holdout", "sample_count": 2000}]
    or an object with any of these keys (see the API's VersionCreate):
      {"metrics": [...],
       "confusion_matrices": [{"dataset": "holdout", "matrix": [[50, 3], [4, 43]]}],
       "regression": [{"dataset": "holdout", "targets": [...], "predictions": [...]}],
       "evidence": [{"kind": "correctness", "dataset": "holdout", "values": [true, ...]}]}

    Lineage is filled from git (commit, dirty flag, origin URL without credentials) and
    from GitHub Actions, GitLab CI or Jenkins variables (run id and URL); values in
    --lineage win. In CI the Idempotency-Key is derived from the model, the run, the
    job and the artifact's sha256, so a retried job replays the version it created
    instead of making a second one (and still makes sure the artifact is uploaded).
    """
    mg = client()
    with progress(f"hashing {Path(artifact).name}") as hashing:
        prepared = prepare_artifact(artifact, media_type=media_type, progress=hashing)
    with prepared:
        _submit(
            mg,
            model,
            prepared,
            metrics_file=metrics_file,
            lineage_file=lineage_file,
            signature_file=signature_file,
            tags=parse_tags(tags),
            description=description,
            idempotency_key=idempotency_key,
            use_git=not no_git,
        )


def _submit(
    mg: ModelgateClient,
    model: str,
    prepared: PreparedArtifact,
    *,
    metrics_file: str,
    lineage_file: str | None,
    signature_file: str | None,
    tags: dict[str, str],
    description: str,
    idempotency_key: str | None,
    use_git: bool,
) -> None:
    artifact_path = prepared.path
    media_type = prepared.media_type
    submission = build_submission(
        model,
        artifact=artifact_path,
        metrics_file=metrics_file,
        lineage_file=lineage_file,
        signature_file=signature_file,
        tags=tags,
        description=description,
        media_type=media_type,
        idempotency_key=idempotency_key,
        sha256=prepared.sha256,
        env=dict(os.environ),
        cwd=Path.cwd(),
        use_git=use_git,
    )
    body, key, digest, run = submission.body, submission.key, submission.sha256, submission.run
    try:
        created = mg.create_version(model, body, idempotency_key=key)
    except ModelgateError as exc:
        if exc.code != "idempotency-key-reused" or idempotency_key:
            raise
        raise ModelgateError(
            exc.status,
            exc.code,
            exc.title,
            f"{exc.detail} (this CI job already submitted this artifact with other metrics, "
            "lineage or tags; pass --idempotency-key to submit it as a new version)",
            exc.problem,
        ) from None
    number = created.body["version"]
    if created.replayed:
        note(
            f"replayed: this {'CI run' if run else 'Idempotency-Key'} already created "
            f"{model} version {number}; no new version"
        )
        current: VersionRead = mg.get_version(model, number)
    else:
        note(f"created {model} version {number} ({created.body['stage']})")
        current = created.body

    stored = current["artifact"]
    if stored["status"] == "verified" and stored["sha256"] == digest:
        note(f"artifact already uploaded (sha256 {digest})")
        final: VersionRead = current
    else:
        size = prepared.size
        with progress(f"uploading {artifact_path.name}") as uploading:
            final = mg.upload_artifact(
                model, number, artifact_path, sha256=digest, media_type=media_type,
                progress=uploading,
            )  # fmt: skip
        note(f"uploaded {_size(size)}, sha256 {digest}")
    emit(final, render_version)


# policy ---------------------------------------------------------------------------------


@click.group()
def policy() -> None:
    """Gate policies."""


@policy.command("show")
@click.argument("model")
@api_options
def policy_show(model: str) -> None:
    """Show the gate policy in force (the built-in default until one is set)."""
    found: PolicyRead = client().get_policy(model)
    emit(found, render_policy)


@policy.command("set")
@click.argument("model")
@click.option(
    "--file",
    "policy_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="JSON policy document (or the output of `policy show --output json`).",
)
@api_options
def policy_set(model: str, policy_file: str) -> None:
    """Replace MODEL's gate policy (a new, audited revision)."""
    document = read_json_file(policy_file, "policy")
    if not isinstance(document, dict):
        fail(f"the policy file {policy_file} must hold a JSON object")
    if isinstance(document.get("policy"), dict) and "revision" in document:
        document = document["policy"]
    emit(client().put_policy(model, document), render_policy)
