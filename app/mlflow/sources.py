"""Reading an MLflow model source: ``s3://``, and through a tracking server ``runs:/``,
``models:/m-...`` and ``mlflow-artifacts:/``; plus a run's metrics, parameters and tags.

Every failure is a :class:`SourceUnreadable` whose message says what could not be read
and why; the version then reports ``FAILED_REGISTRATION`` with it.
"""

from __future__ import annotations

import posixpath
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import quote, urlparse

import boto3
import httpx
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

HTTP_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class SourceUnreadable(Exception):
    """The source cannot be read; the message is shown to the MLflow client."""


@dataclass(frozen=True)
class Tracking:
    """An MLflow tracking server: its base URL and an optional bearer token."""

    uri: str
    token: str | None = None

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.uri.rstrip("/"), headers=headers, timeout=HTTP_TIMEOUT)

    def get_json(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            with self.client() as http:
                response = http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise SourceUnreadable(f"tracking server {self.uri} unreachable: {exc}") from None
        if response.status_code != 200:
            raise SourceUnreadable(
                f"tracking server {self.uri} answered {response.status_code} to "
                f"{path}: {response.text[:300]}"
            )
        data: dict[str, Any] = response.json()
        return data


@dataclass
class RunData:
    run_id: str
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)
    user_id: str | None = None


@dataclass(frozen=True)
class SourceFile:
    path: str
    """Relative to the model directory, ``/``-separated."""
    size: int | None
    opener: Any
    """Called with no argument: a readable binary file object."""


@dataclass(frozen=True)
class S3Access:
    endpoint_url: str | None
    region: str | None


def _need_tracking(tracking: Tracking | None, source: str) -> Tracking:
    if tracking is None:
        raise SourceUnreadable(
            f"source {source!r} is on an MLflow tracking server, and none is configured "
            "(set MODELGATE_MLFLOW_TRACKING_URI)"
        )
    return tracking


def get_run(tracking: Tracking, run_id: str) -> RunData:
    data = tracking.get_json("/api/2.0/mlflow/runs/get", {"run_id": run_id})
    run = data.get("run", {})
    run_data = run.get("data", {})
    inputs = run.get("inputs", {}) or {}
    datasets = []
    for item in inputs.get("dataset_inputs", []) or []:
        ds = item.get("dataset", {})
        if ds.get("name"):
            datasets.append(f"{ds['name']}@{ds.get('digest', '')}".rstrip("@"))
    return RunData(
        run_id=run_id,
        metrics={m["key"]: float(m["value"]) for m in run_data.get("metrics", []) or []},
        params={p["key"]: str(p.get("value", "")) for p in run_data.get("params", []) or []},
        tags={t["key"]: str(t.get("value", "")) for t in run_data.get("tags", []) or []},
        datasets=datasets,
        user_id=run.get("info", {}).get("user_id"),
    )


def logged_model(tracking: Tracking, model_id: str) -> dict[str, Any]:
    data = tracking.get_json(f"/api/2.0/mlflow/logged-models/{quote(model_id)}", {})
    found: dict[str, Any] = data.get("model", {}).get("info", {})
    return found


def resolve(source: str, tracking: Tracking | None) -> tuple[str, str | None]:
    """A source as a storage URI (``s3://`` or ``mlflow-artifacts:``), and the run behind it."""
    if source.startswith("runs:/"):
        rest = source[len("runs:/") :].lstrip("/")
        run_id, _, path = rest.partition("/")
        t = _need_tracking(tracking, source)
        data = t.get_json("/api/2.0/mlflow/runs/get", {"run_id": run_id})
        root = data.get("run", {}).get("info", {}).get("artifact_uri")
        if not root:
            raise SourceUnreadable(f"run {run_id} has no artifact_uri on the tracking server")
        return (posixpath.join(root, path) if path else root), run_id
    if source.startswith("models:/m-"):
        model_id = source[len("models:/") :].strip("/")
        info = logged_model(_need_tracking(tracking, source), model_id)
        root = info.get("artifact_uri")
        if not root:
            raise SourceUnreadable(f"logged model {model_id} has no artifact_uri")
        return root, info.get("source_run_id")
    return source, None


def list_files(uri: str, tracking: Tracking | None, s3: S3Access) -> list[SourceFile]:
    """Every file under a storage URI, without reading them yet."""
    scheme = urlparse(uri).scheme
    if scheme == "s3":
        return _s3_files(uri, s3)
    if scheme == "mlflow-artifacts":
        return _artifact_files(uri, tracking)
    if scheme in ("http", "https") and "/mlflow-artifacts/artifacts" in uri:
        base, _, path = uri.partition("/api/2.0/mlflow-artifacts/artifacts")
        return _artifact_files("mlflow-artifacts:" + (path or "/"), Tracking(base))
    raise SourceUnreadable(
        f"Modelgate cannot read source {uri!r}: it reads s3://, and through a tracking "
        "server runs:/, models:/m-... and mlflow-artifacts:/ (not local paths or file:)"
    )


def _s3_files(uri: str, s3: S3Access) -> list[SourceFile]:
    parsed = urlparse(uri)
    bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint_url,
        region_name=s3.region,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )
    folder = prefix.rstrip("/") + "/" if prefix else ""
    files: list[SourceFile] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith("/"):
                    continue
                files.append(
                    SourceFile(
                        path=key[len(folder) :],
                        size=obj.get("Size"),
                        opener=_s3_opener(client, bucket, key),
                    )
                )
        if not files and prefix:
            head = client.head_object(Bucket=bucket, Key=prefix)
            files.append(
                SourceFile(
                    path=posixpath.basename(prefix),
                    size=head.get("ContentLength"),
                    opener=_s3_opener(client, bucket, prefix),
                )
            )
    except (ClientError, BotoCoreError) as exc:
        raise SourceUnreadable(f"cannot read {uri}: {exc}") from None
    return files


def _s3_opener(client: Any, bucket: str, key: str) -> Any:
    def open_object() -> IO[bytes]:
        try:
            body: IO[bytes] = client.get_object(Bucket=bucket, Key=key)["Body"]
        except (ClientError, BotoCoreError) as exc:
            raise SourceUnreadable(f"cannot read s3://{bucket}/{key}: {exc}") from None
        return body

    return open_object


def _artifact_root(uri: str, tracking: Tracking | None) -> tuple[Tracking, str]:
    parsed = urlparse(uri)
    if parsed.netloc:  # mlflow-artifacts://host:port/path names its server
        return Tracking(f"http://{parsed.netloc}", tracking.token if tracking else None), (
            parsed.path.strip("/")
        )
    return _need_tracking(tracking, uri), parsed.path.strip("/")


def _artifact_files(uri: str, tracking: Tracking | None) -> list[SourceFile]:
    server, root = _artifact_root(uri, tracking)
    files: list[SourceFile] = []
    pending = [""]
    while pending:
        sub = pending.pop()
        listing = server.get_json(
            "/api/2.0/mlflow-artifacts/artifacts",
            {"path": posixpath.join(root, sub) if sub else root},
        )
        for entry in listing.get("files", []) or []:
            rel = posixpath.join(sub, entry["path"]) if sub else entry["path"]
            if entry.get("is_dir"):
                pending.append(rel)
            else:
                size = entry.get("file_size")
                files.append(
                    SourceFile(
                        path=rel,
                        size=int(size) if size is not None else None,
                        opener=_http_opener(server, posixpath.join(root, rel)),
                    )
                )
    if not files:
        raise SourceUnreadable(f"no files under {uri} on the tracking server")
    return files


def _http_opener(server: Tracking, path: str) -> Any:
    def open_file() -> IO[bytes]:
        spool = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)  # noqa: SIM115
        try:
            with (
                server.client() as http,
                http.stream("GET", f"/api/2.0/mlflow-artifacts/artifacts/{quote(path)}") as r,
            ):
                if r.status_code != 200:
                    raise SourceUnreadable(
                        f"tracking server answered {r.status_code} for artifact {path}"
                    )
                for chunk in r.iter_bytes(1 << 20):
                    spool.write(chunk)
        except httpx.HTTPError as exc:
            spool.close()
            raise SourceUnreadable(f"cannot download artifact {path}: {exc}") from None
        spool.seek(0)
        return spool

    return open_file


def iter_files(files: list[SourceFile]) -> Iterator[SourceFile]:
    yield from sorted(files, key=lambda f: f.path)
