"""A typed, synchronous Python client for the Modelgate REST API (built on httpx).

::

    from modelgate_client.client import ModelgateClient, ModelgateError

    with ModelgateClient("https://modelgate.example.com", token) as mg:
        created = mg.create_version("fraud", {"metrics": [...]}, idempotency_key="ci-1234")
        number = created.body["version"]
        mg.upload_artifact("fraud", number, "model.npz", sha256=digest)
        report = mg.evaluate("fraud", number, target="staging")

Methods return the JSON the API answered, as plain dicts typed by the TypedDicts of
:mod:`modelgate_client.api_types`. Creates that accept an ``Idempotency-Key`` return
:class:`Created`, which also says whether the server replayed an earlier answer.

Errors
    Every answer outside 2xx raises :class:`ModelgateError`, carrying the problem+json
    document (``status``, ``code``, ``title``, ``detail``, and all of it in
    ``problem``). Branch on ``code``; ``detail`` is for people. When no answer arrives
    (refused, reset, timed out, or a download whose bytes do not match their sha256)
    the error is a :class:`ModelgateConnectionError`, whose ``status`` is ``None``.

Retries
    Connection failures and 502, 503 and 504 answers are retried ``retries`` times with
    exponential backoff and jitter (a ``Retry-After`` is honoured), but only where
    sending the request twice cannot do anything twice: ``GET``, ``DELETE``, the
    artifact ``PUT`` (content-addressed: the same bytes again are a no-op), and POSTs
    that carry an ``Idempotency-Key`` (the server answers a repeat with the first
    answer). Everything else is sent once, so a timed-out approve or freeze is
    reported, never repeated behind the caller's back.
"""

from __future__ import annotations

import hashlib
import json as _json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Generic, TypeVar, cast
from urllib.parse import quote

import httpx

from modelgate_client import __version__, ci
from modelgate_client.api_types import (
    AuditEvent,
    AuditVerification,
    Download,
    FreezeRead,
    GateReport,
    HistoryEntry,
    ModelRead,
    Page,
    PolicyRead,
    PrincipalRead,
    PromotionRead,
    RollbackRead,
    RolloutRead,
    StageRead,
    TokenCreated,
    TokenRead,
    VersionRead,
)
from modelgate_client.artifacts import prepare_artifact

__all__ = [
    "Created",
    "ModelgateClient",
    "ModelgateConnectionError",
    "ModelgateError",
    "Progress",
    "SubmittedVersion",
    "all_items",
]

T = TypeVar("T")
Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes in total) as an artifact streams."""

API_PREFIX = "/api/v1"
DEFAULT_URL = "http://127.0.0.1:8080"
RETRY_STATUSES = frozenset({502, 503, 504})
CHUNK_SIZE = 1024 * 1024
_MAX_RETRY_AFTER = 60.0
# Failures where the request may or may not have reached the server; a malformed URL or
# a local protocol error would fail the same way again.
_NOT_TRANSIENT = (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL)


class ModelgateError(Exception):
    """The server answered with an error (``status`` set), or no answer arrived."""

    def __init__(
        self,
        status: int | None,
        code: str,
        title: str,
        detail: str,
        problem: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.problem: dict[str, Any] = problem if problem is not None else {}
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.status} {self.title}" if self.status is not None else self.title
        return f"{head}: {self.detail}" if self.detail and self.detail != self.title else head

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The failing fields of a validation problem (``loc`` and ``msg`` each)."""
        found = self.problem.get("errors")
        return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []

    @property
    def request_id(self) -> str | None:
        value = self.problem.get("request_id")
        return value if isinstance(value, str) else None


class ModelgateConnectionError(ModelgateError):
    """No usable answer: the server could not be reached, the connection broke, it timed
    out, or a downloaded artifact did not match its sha256."""

    def __init__(self, detail: str, *, code: str = "connection-error") -> None:
        super().__init__(None, code, "cannot reach the server", detail)


@dataclass(frozen=True)
class Created(Generic[T]):
    """The answer to a create sent with an optional ``Idempotency-Key``."""

    body: T
    replayed: bool
    """True when the server answered with the stored result of an earlier request with
    the same key (response header ``Idempotent-Replayed: true``): nothing new was made."""


@dataclass(frozen=True)
class SubmittedVersion:
    """What :meth:`ModelgateClient.submit` made (or found made by an earlier attempt)."""

    model: str
    version: int
    stage: str
    sha256: str
    size: int
    replayed: bool
    """True when this CI run had already submitted these bytes: no new version was made."""
    record: VersionRead
    """The version as the API answered it, artifact verified."""


def metrics_body(
    metrics: Mapping[str, float] | Iterable[Mapping[str, Any]], dataset: str
) -> list[dict[str, Any]]:
    """``{"accuracy": 0.93}`` (measured on ``dataset``), or the API's metric objects."""
    if isinstance(metrics, Mapping):
        return [{"name": str(k), "value": v, "dataset": dataset} for k, v in metrics.items()]
    return [{"dataset": dataset, **dict(m)} for m in metrics]


def rollout_mark(rollout: Mapping[str, Any] | RolloutRead) -> tuple[Any, ...]:
    """What changes when a rollout does: state, step, weights, looks and decisions."""
    looks = rollout.get("looks") or []
    return (
        rollout.get("state"),
        rollout.get("step"),
        json_text(rollout.get("weights")),
        rollout.get("shadow_share"),
        looks[-1].get("number") if looks else None,
        len(rollout.get("decisions") or []),
        rollout.get("updated_at"),
    )


def json_text(value: Any) -> str:
    return _json.dumps(value, sort_keys=True, default=str)


def all_items(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
    """Every item of a list, following cursors:
    ``all_items(lambda c: mg.list_models(cursor=c))``."""
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield from page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return


def _segment(value: str | int) -> str:
    return quote(str(value), safe="")


def _params(values: Mapping[str, Any]) -> dict[str, str | int | float | bool]:
    """Query parameters without the unset ones (httpx would send ``?name=``)."""
    out: dict[str, str | int | float | bool] = {}
    for key, value in values.items():
        if value is None:
            continue
        out[key] = value.isoformat() if isinstance(value, datetime) else value
    return out


def normalize_base_url(base_url: str) -> str:
    """``http://host:8080``, with or without a trailing ``/api/v1``, to the API root."""
    url = base_url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"the server URL must start with http:// or https://, not {base_url!r}")
    if not url.endswith(API_PREFIX):
        url += API_PREFIX
    return url


def _problem_from(response: httpx.Response) -> ModelgateError:
    status = response.status_code
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("title"), str):
        problem = cast(dict[str, Any], body)
        code = problem.get("code")
        detail = problem.get("detail")
        return ModelgateError(
            status,
            code if isinstance(code, str) else f"http-{status}",
            problem["title"],
            detail if isinstance(detail, str) else "",
            problem,
        )
    # Not ours: a proxy's HTML error page, or a plain-text answer.
    title = response.reason_phrase or "HTTP error"
    text = " ".join(response.text.split())[:200] if response.text else ""
    detail = text or f"{response.request.method} {response.request.url} answered {status}"
    problem = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return ModelgateError(status, f"http-{status}", title, detail, problem)


def _describe(exc: Exception, url: str) -> str:
    reason = str(exc).strip() or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return f"{url}: timed out ({reason})"
    if isinstance(exc, httpx.ConnectError):
        # "[Errno 111] Connection refused" reads better without the errno.
        if "] " in reason:
            reason = reason.split("] ", 1)[1]
        return f"cannot connect to {url}: {reason}"
    return f"{url}: {reason}"


class ModelgateClient:
    """One client per server and token. Thread-safe as httpx.Client is; close it (or use
    it as a context manager) to release its connections."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        user_agent: str | None = None,
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        self.retries = max(0, retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        headers = {
            "User-Agent": user_agent or f"modelgate-client/{__version__} httpx/{httpx.__version__}",
            "Accept": "application/json, application/problem+json",
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> ModelgateClient:
        """A client for ``MODELGATE_URL`` (default http://127.0.0.1:8080) with
        ``MODELGATE_TOKEN``; other keyword arguments go to the constructor."""
        values = os.environ if env is None else env
        url = values.get("MODELGATE_URL") or DEFAULT_URL
        token = values.get("MODELGATE_TOKEN") or None
        return cls(url, token, **kwargs)

    def __enter__(self) -> ModelgateClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # Transport ---------------------------------------------------------------------------

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        cap = min(self.max_backoff, self.backoff * (2.0**attempt))
        delay = cap / 2 + random.uniform(0, cap / 2)  # "equal jitter": never a stampede at 0
        if retry_after:
            wait: float | None = None
            try:
                wait = float(retry_after)
            except ValueError:
                try:
                    when = parsedate_to_datetime(retry_after)
                    wait = when.timestamp() - time.time()
                except (TypeError, ValueError):
                    wait = None
            if wait is not None:
                delay = max(delay, min(wait, _MAX_RETRY_AFTER))
        return delay

    def _request(
        self,
        method: str,
        path: str,
        *,
        retry: bool,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: Callable[[], Iterable[bytes]] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        stream: bool = False,
        follow_redirects: bool = False,
    ) -> httpx.Response:
        """Send, retrying when ``retry`` allows it; raise ModelgateError unless 2xx.

        ``content`` is a factory so that every attempt streams the body from the start."""
        send_headers = dict(headers or {})
        if idempotency_key is not None:
            send_headers["Idempotency-Key"] = idempotency_key
        attempts = 1 + (self.retries if retry else 0)
        url = self.base_url + path
        for attempt in range(attempts):
            last = attempt + 1 >= attempts
            request = self._http.build_request(
                method,
                path,
                params=_params(params or {}),
                json=json,
                content=content() if content is not None else None,
                headers=send_headers,
            )
            try:
                response = self._http.send(
                    request, stream=stream, follow_redirects=follow_redirects
                )
            except _NOT_TRANSIENT as exc:
                raise ModelgateConnectionError(_describe(exc, url)) from exc
            except httpx.TransportError as exc:
                if last:
                    raise ModelgateConnectionError(_describe(exc, url)) from exc
                self._sleep(self._delay(attempt, None))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                retry_after = response.headers.get("Retry-After")
                response.close()
                self._sleep(self._delay(attempt, retry_after))
                continue
            if response.is_success:
                return response
            try:
                if stream:
                    response.read()
                raise _problem_from(response)
            finally:
                if stream:
                    response.close()
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _json(self, method: str, path: str, *, retry: bool, **kwargs: Any) -> Any:
        return self._request(method, path, retry=retry, **kwargs).json()

    def _get(self, path: str, **params: Any) -> Any:
        return self._json("GET", path, retry=True, params=params)

    def _post(self, path: str, body: Any = None, *, params: Mapping[str, Any] | None = None) -> Any:
        """A POST without an Idempotency-Key: sent exactly once."""
        return self._json("POST", path, retry=False, json=body, params=params)

    def _create(self, path: str, body: Any, idempotency_key: str | None) -> Created[Any]:
        response = self._request(
            "POST",
            path,
            retry=idempotency_key is not None,
            json=body,
            idempotency_key=idempotency_key,
        )
        replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
        return Created(body=response.json(), replayed=replayed)

    # Health ------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Liveness: ``{"status": "ok"}`` when the process answers."""
        return cast(dict[str, Any], self._get("/healthz"))

    def ready(self) -> dict[str, Any]:
        """Readiness; a 503 (database or store down) raises, the checks in ``problem``."""
        return cast(dict[str, Any], self._get("/readyz"))

    # Models ------------------------------------------------------------------------------

    def create_model(
        self,
        name: str,
        *,
        description: str = "",
        owner: str | None = None,
        tags: Mapping[str, str] | None = None,
        primary_metric: str | None = None,
        primary_dataset: str | None = None,
        idempotency_key: str | None = None,
    ) -> Created[ModelRead]:
        body: dict[str, Any] = {"name": name, "description": description, "tags": dict(tags or {})}
        if owner is not None:
            body["owner"] = owner
        if primary_metric is not None:
            body["primary_metric"] = primary_metric
        if primary_dataset is not None:
            body["primary_dataset"] = primary_dataset
        return self._create("/models", body, idempotency_key)

    def list_models(
        self,
        *,
        cursor: str | None = None,
        limit: int | None = None,
        owner: str | None = None,
        name_prefix: str | None = None,
    ) -> Page[ModelRead]:
        return cast(
            Page[ModelRead],
            self._get("/models", cursor=cursor, limit=limit, owner=owner, name_prefix=name_prefix),
        )

    def get_model(self, name: str) -> ModelRead:
        return cast(ModelRead, self._get(f"/models/{_segment(name)}"))

    def update_model(self, name: str, changes: Mapping[str, Any]) -> ModelRead:
        """PATCH: only the fields in ``changes`` change. Sent once (no retries)."""
        return cast(
            ModelRead,
            self._json("PATCH", f"/models/{_segment(name)}", retry=False, json=dict(changes)),
        )

    # Versions ----------------------------------------------------------------------------

    def create_version(
        self, model: str, body: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Created[VersionRead]:
        """Submit a candidate: ``body`` as ``VersionCreate`` in the API (lineage, signature,
        metrics, confusion_matrices, regression, evidence, tags, artifact expectation)."""
        return self._create(f"/models/{_segment(model)}/versions", dict(body), idempotency_key)

    def list_versions(
        self,
        model: str,
        *,
        stage: str | None = None,
        order_by: str | None = None,
        dataset: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[VersionRead]:
        return cast(
            Page[VersionRead],
            self._get(
                f"/models/{_segment(model)}/versions",
                stage=stage,
                order_by=order_by,
                dataset=dataset,
                cursor=cursor,
                limit=limit,
            ),
        )

    def get_version(self, model: str, version: int) -> VersionRead:
        return cast(
            VersionRead, self._get(f"/models/{_segment(model)}/versions/{_segment(version)}")
        )

    def add_metrics(self, model: str, version: int, body: Mapping[str, Any]) -> VersionRead:
        """Add metrics, confusion matrices, regression pairs or evidence (sent once)."""
        return cast(
            VersionRead,
            self._post(f"/models/{_segment(model)}/versions/{_segment(version)}/metrics", body),
        )

    def versions_in_stage(
        self, model: str, stage: str, *, cursor: str | None = None, limit: int | None = None
    ) -> StageRead:
        return cast(
            StageRead,
            self._get(
                f"/models/{_segment(model)}/stages/{_segment(stage)}", cursor=cursor, limit=limit
            ),
        )

    # Artifacts ---------------------------------------------------------------------------

    def upload_artifact(
        self,
        model: str,
        version: int,
        path: str | os.PathLike[str],
        *,
        sha256: str | None = None,
        media_type: str = "application/octet-stream",
        progress: Progress | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> VersionRead:
        """Stream a file as the version's artifact, never holding it in memory.

        ``sha256`` (hex) is sent as ``X-Artifact-SHA256``: the server refuses other bytes
        and keeps nothing. A retry streams the file again from its start (``progress``
        then restarts from 0)."""
        source = Path(path)
        size = source.stat().st_size

        def body() -> Iterator[bytes]:
            sent = 0
            if progress is not None:
                progress(0, size)
            with source.open("rb") as fh:
                while chunk := fh.read(chunk_size):
                    yield chunk
                    sent += len(chunk)
                    if progress is not None:
                        progress(sent, size)

        headers = {"Content-Type": media_type, "Content-Length": str(size)}
        if sha256 is not None:
            headers["X-Artifact-SHA256"] = sha256.lower()
        response = self._request(
            "PUT",
            f"/models/{_segment(model)}/versions/{_segment(version)}/artifact",
            retry=True,
            content=body,
            headers=headers,
        )
        return cast(VersionRead, response.json())

    def download_artifact(
        self,
        model: str,
        version: int,
        dest: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> Download:
        """Stream the artifact into ``dest`` (through a ``.part`` file, renamed when its
        sha256 matches the server's), following a redirect to a presigned store URL."""
        target = Path(dest)
        response = self._request(
            "GET",
            f"/models/{_segment(model)}/versions/{_segment(version)}/artifact",
            retry=True,
            stream=True,
            follow_redirects=True,
        )
        expected = response.headers.get("X-Artifact-SHA256")
        for earlier in response.history:
            expected = expected or earlier.headers.get("X-Artifact-SHA256")
        total = int(response.headers.get("Content-Length") or 0)
        partial = target.with_name(target.name + ".part")
        digest = hashlib.sha256()
        done = 0
        try:
            with partial.open("wb") as fh:
                for chunk in response.iter_bytes(chunk_size):
                    fh.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total or done)
        except httpx.TransportError as exc:
            partial.unlink(missing_ok=True)
            raise ModelgateConnectionError(
                f"the download of {model} version {version} broke off after {done} bytes: {exc}"
            ) from exc
        finally:
            response.close()
        actual = digest.hexdigest()
        if expected and actual != expected.lower():
            partial.unlink(missing_ok=True)
            raise ModelgateConnectionError(
                f"the downloaded artifact has sha256 {actual}, the server declared {expected}",
                code="download-corrupt",
            )
        partial.replace(target)
        return Download(path=str(target), sha256=actual, size=done)

    # Gates and promotions ----------------------------------------------------------------

    def get_policy(self, model: str) -> PolicyRead:
        return cast(PolicyRead, self._get(f"/models/{_segment(model)}/policy"))

    def put_policy(self, model: str, policy: Mapping[str, Any]) -> PolicyRead:
        """Replace the gate policy. Sent once: every PUT makes a new revision."""
        return cast(
            PolicyRead,
            self._json("PUT", f"/models/{_segment(model)}/policy", retry=False, json=dict(policy)),
        )

    def evaluate(self, model: str, version: int, *, target: str) -> GateReport:
        """Dry-run the gates of ``target`` (staging or production); changes no stage."""
        return cast(
            GateReport,
            self._post(
                f"/models/{_segment(model)}/versions/{_segment(version)}/evaluate",
                params={"target": target},
            ),
        )

    def request_promotion(
        self,
        model: str,
        version: int,
        *,
        target: str,
        comment: str | None = None,
        idempotency_key: str | None = None,
    ) -> Created[PromotionRead]:
        body: dict[str, Any] = {"version": version, "target": target}
        if comment is not None:
            body["comment"] = comment
        return self._create(f"/models/{_segment(model)}/promotions", body, idempotency_key)

    def list_promotions(
        self,
        *,
        status: str | None = None,
        model: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[PromotionRead]:
        return cast(
            Page[PromotionRead],
            self._get("/promotions", status=status, model=model, cursor=cursor, limit=limit),
        )

    def get_promotion(self, promotion_id: int) -> PromotionRead:
        return cast(PromotionRead, self._get(f"/promotions/{_segment(promotion_id)}"))

    def approve_promotion(self, promotion_id: int, *, comment: str | None = None) -> PromotionRead:
        body = {"comment": comment} if comment is not None else None
        return cast(
            PromotionRead, self._post(f"/promotions/{_segment(promotion_id)}/approve", body)
        )

    def reject_promotion(self, promotion_id: int, *, comment: str) -> PromotionRead:
        return cast(
            PromotionRead,
            self._post(f"/promotions/{_segment(promotion_id)}/reject", {"comment": comment}),
        )

    def cancel_promotion(self, promotion_id: int, *, comment: str | None = None) -> PromotionRead:
        body = {"comment": comment} if comment is not None else None
        return cast(PromotionRead, self._post(f"/promotions/{_segment(promotion_id)}/cancel", body))

    def archive_version(
        self, model: str, version: int, *, reason: str | None = None
    ) -> VersionRead:
        body = {"reason": reason} if reason is not None else None
        return cast(
            VersionRead,
            self._post(f"/models/{_segment(model)}/versions/{_segment(version)}/archive", body),
        )

    # Operations --------------------------------------------------------------------------

    def rollback(
        self,
        model: str,
        *,
        reason: str,
        to_version: int | None = None,
        deep_check: bool = False,
        idempotency_key: str | None = None,
    ) -> Created[RollbackRead]:
        """Production back to the previous stable version (or ``to_version``). Send an
        ``idempotency_key``: a rollback repeated without one would roll back twice."""
        body: dict[str, Any] = {"reason": reason, "deep_check": deep_check}
        if to_version is not None:
            body["to_version"] = to_version
        return self._create(f"/models/{_segment(model)}/rollback", body, idempotency_key)

    def freeze(self, model: str, *, reason: str) -> FreezeRead:
        return cast(FreezeRead, self._post(f"/models/{_segment(model)}/freeze", {"reason": reason}))

    def unfreeze(self, model: str, *, reason: str) -> FreezeRead:
        return cast(
            FreezeRead, self._post(f"/models/{_segment(model)}/unfreeze", {"reason": reason})
        )

    def history(
        self, model: str, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[HistoryEntry]:
        return cast(
            Page[HistoryEntry],
            self._get(f"/models/{_segment(model)}/history", cursor=cursor, limit=limit),
        )

    # Audit -------------------------------------------------------------------------------

    def query_audit(
        self,
        *,
        model: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[AuditEvent]:
        return cast(
            Page[AuditEvent],
            self._get(
                "/audit",
                model=model,
                actor=actor,
                action=action,
                since=since,
                until=until,
                cursor=cursor,
                limit=limit,
            ),
        )

    def scrub_artifacts(
        self, *, cursor: str | None = None, limit: int = 100, rehash: bool = False
    ) -> dict[str, Any]:
        """One batch of ``POST /artifacts/scrub`` (admin): pass ``next_cursor`` back."""
        body = {"cursor": cursor, "limit": limit, "rehash": rehash}
        return cast("dict[str, Any]", self._post("/artifacts/scrub", body))

    def verify_audit(self) -> AuditVerification:
        return cast(AuditVerification, self._get("/audit/verify"))

    def export_audit(
        self,
        *,
        model: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> Iterator[str]:
        """The matching events as JSON lines, streamed. The request is sent when iteration
        starts; a connection that breaks mid-stream raises ModelgateConnectionError."""
        response = self._request(
            "GET",
            "/audit/export",
            retry=True,
            params={"model": model, "since": since, "until": until},
            stream=True,
        )
        try:
            for line in response.iter_lines():
                if line:
                    yield line
        except httpx.TransportError as exc:
            raise ModelgateConnectionError(f"the audit export broke off: {exc}") from exc
        finally:
            response.close()

    # Tokens ------------------------------------------------------------------------------

    def create_token(
        self,
        name: str,
        role: str,
        *,
        model_scope: str | None = None,
        expires_in_days: int | None = None,
        principal: str | None = None,
        principal_kind: str | None = None,
    ) -> TokenCreated:
        """A new token; its secret (``token``) is in this answer only. Sent once."""
        body: dict[str, Any] = {"name": name, "role": role}
        if principal is not None:
            body["principal"] = principal
        if principal_kind is not None:
            body["principal_kind"] = principal_kind
        if model_scope is not None:
            body["model_scope"] = model_scope
        if expires_in_days is not None:
            body["expires_in_days"] = expires_in_days
        return cast(TokenCreated, self._post("/tokens", body))

    def list_tokens(
        self, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[TokenRead]:
        return cast(Page[TokenRead], self._get("/tokens", cursor=cursor, limit=limit))

    def list_principals(
        self, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[PrincipalRead]:
        return cast(Page[PrincipalRead], self._get("/principals", cursor=cursor, limit=limit))

    def revoke_token(self, token_id: str) -> TokenRead:
        return cast(TokenRead, self._json("DELETE", f"/tokens/{_segment(token_id)}", retry=True))

    # From a training script --------------------------------------------------------------

    def submit(
        self,
        model: str,
        *,
        artifact: str | os.PathLike[str],
        metrics: Mapping[str, float] | Iterable[Mapping[str, Any]] = (),
        dataset: str = "holdout",
        lineage: str | Mapping[str, Any] | None = "auto",
        description: str = "",
        tags: Mapping[str, str] | None = None,
        signature: Mapping[str, Any] | None = None,
        evaluation: Mapping[str, Any] | None = None,
        media_type: str | None = None,
        idempotency_key: str | None = None,
        progress: Progress | None = None,
        hash_progress: Progress | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> SubmittedVersion:
        """Submit a candidate version: create it with its metrics and lineage, then stream
        the artifact (a file, or a directory packed deterministically into a tar), checked
        by sha256 on the server.

        ``metrics``: ``{"accuracy": 0.93}`` measured on ``dataset``, or the API's metric
        objects; ``evaluation`` adds confusion_matrices, regression or evidence.
        ``lineage="auto"`` reads git and the CI environment as ``modelgate submit`` does;
        a mapping is merged over that (its values win); ``None`` sends none.
        In CI the Idempotency-Key comes from the run, the job and the artifact's sha256:
        a retried job gets the version it already created (``replayed``), not a second.
        """
        values = os.environ if env is None else env
        workdir = Path(cwd) if cwd is not None else Path.cwd()
        body: dict[str, Any] = {k: v for k, v in dict(evaluation or {}).items() if v}
        listed = metrics_body(metrics, dataset)
        if listed:
            body["metrics"] = [*body.get("metrics", []), *listed]
        if lineage is not None:
            explicit = {} if isinstance(lineage, str) else dict(lineage)
            if isinstance(lineage, str) and lineage != "auto":
                raise ValueError(f"lineage must be 'auto', a mapping or None, not {lineage!r}")
            body["lineage"] = ci.merge_lineage(ci.auto_lineage(values, workdir), explicit)
        if description:
            body["description"] = description
        if tags:
            body["tags"] = dict(tags)
        if signature is not None:
            body["signature"] = dict(signature)
        with prepare_artifact(artifact, media_type=media_type, progress=hash_progress) as prepared:
            body["artifact"] = {"sha256": prepared.sha256, "media_type": prepared.media_type}
            run = ci.detect_ci(values)
            key = idempotency_key
            if key is None:
                key = (
                    ci.submit_key(run, model=model, artifact_sha256=prepared.sha256)
                    if run is not None
                    else f"submit-{uuid.uuid4().hex}"
                )
            created = self.create_version(model, body, idempotency_key=key)
            number = created.body["version"]
            current = self.get_version(model, number) if created.replayed else created.body
            stored = current["artifact"]
            if stored["status"] != "verified" or stored["sha256"] != prepared.sha256:
                current = self.upload_artifact(
                    model,
                    number,
                    prepared.path,
                    sha256=prepared.sha256,
                    media_type=prepared.media_type,
                    progress=progress,
                )
            return SubmittedVersion(
                model=model,
                version=number,
                stage=current["stage"],
                sha256=prepared.sha256,
                size=prepared.size,
                replayed=created.replayed,
                record=current,
            )

    def resolve_version(
        self,
        model: str,
        *,
        version: int | None = None,
        stage: str | None = None,
        alias: str | None = None,
    ) -> int:
        """The version number named by exactly one of ``version``, ``stage`` or ``alias``."""
        if sum(x is not None for x in (version, stage, alias)) != 1:
            raise ValueError("name exactly one of version=, stage= or alias=")
        if version is not None:
            return version
        if stage is not None:
            found = self.versions_in_stage(model, stage, limit=1)["items"]
            if not found:
                raise ModelgateError(
                    404,
                    "stage-empty",
                    "No version in this stage",
                    f"{model} has no version in {stage}",
                )
            return int(found[0]["version"])
        assert alias is not None
        # GET /models/{model}/aliases (the serving issue): a list, or a page of items.
        answer = self._get(f"/models/{_segment(model)}/aliases")
        items = answer.get("items", []) if isinstance(answer, dict) else answer
        number = next(
            (
                item.get("version")
                for item in items
                if isinstance(item, dict) and alias in (item.get("alias"), item.get("name"))
            ),
            None,
        )
        if not isinstance(number, int):
            raise ModelgateError(
                404, "alias-unknown", "No such alias", f"{model} has no alias {alias}"
            )
        return number

    def download(
        self,
        model: str,
        *,
        version: int | None = None,
        stage: str | None = None,
        alias: str | None = None,
        dest: str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
    ) -> Download:
        """Download the artifact of a version named by number, stage or alias into
        ``dest`` (default ``<model>-v<version>`` in the current directory), verified by
        its sha256 (a mismatch raises and leaves nothing behind)."""
        number = self.resolve_version(model, version=version, stage=stage, alias=alias)
        target = Path(dest) if dest is not None else Path(f"{model}-v{number}")
        return self.download_artifact(model, number, target, progress=progress)

    # Webhooks ----------------------------------------------------------------------------

    def create_webhook(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Subscribe ``url`` (with ``secret``, optional ``event_types`` and ``model``).
        Sent once."""
        return cast(dict[str, Any], self._post("/webhooks", dict(body)))

    def list_webhooks(
        self,
        *,
        include_deleted: bool | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[dict[str, Any]]:
        return cast(
            Page[dict[str, Any]],
            self._get("/webhooks", include_deleted=include_deleted, cursor=cursor, limit=limit),
        )

    def get_webhook(self, webhook_id: int) -> dict[str, Any]:
        return cast(dict[str, Any], self._get(f"/webhooks/{_segment(webhook_id)}"))

    def delete_webhook(self, webhook_id: int) -> dict[str, Any]:
        return cast(
            dict[str, Any], self._json("DELETE", f"/webhooks/{_segment(webhook_id)}", retry=True)
        )

    def list_deliveries(
        self,
        webhook_id: int,
        *,
        status: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[dict[str, Any]]:
        return cast(
            Page[dict[str, Any]],
            self._get(
                f"/webhooks/{_segment(webhook_id)}/deliveries",
                status=status,
                cursor=cursor,
                limit=limit,
            ),
        )

    def redeliver(self, webhook_id: int, delivery_id: int) -> dict[str, Any]:
        path = f"/webhooks/{_segment(webhook_id)}/deliveries/{_segment(delivery_id)}/redeliver"
        return cast(dict[str, Any], self._post(path))

    # Rollouts ----------------------------------------------------------------------------

    def start_rollout(
        self,
        model: str,
        version: int,
        *,
        steps: Iterable[Mapping[str, Any]],
        strategy: str = "canary",
        analysis: Mapping[str, Any] | None = None,
        promote_on_complete: bool | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> Created[RolloutRead]:
        """Start moving traffic to ``version`` (``canary``, ``blue_green``, ``shadow`` or
        ``ab``) in ``steps`` (``{"weight": 5, "hold": {"duration_seconds": 300}}``; see
        :func:`modelgate_client.rollouts.parse_steps` for the short form), judged by
        ``analysis`` (server defaults when None)."""
        body: dict[str, Any] = {
            "version": version,
            "strategy": strategy,
            "steps": [dict(step) for step in steps],
        }
        if analysis is not None:
            body["analysis"] = dict(analysis)
        if promote_on_complete is not None:
            body["promote_on_complete"] = promote_on_complete
        if reason is not None:
            body["reason"] = reason
        return self._create(f"/models/{_segment(model)}/rollouts", body, idempotency_key)

    def rollout(self, rollout_id: int) -> RolloutRead:
        """One rollout: state, step, weights, looks (the analysis) and decisions."""
        return cast(RolloutRead, self._get(f"/rollouts/{_segment(rollout_id)}"))

    def rollouts(
        self,
        model: str,
        *,
        state: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[RolloutRead]:
        """A model's rollouts, newest first (``state``: running, paused, completed,
        aborted)."""
        return cast(
            Page[RolloutRead],
            self._get(
                f"/models/{_segment(model)}/rollouts", state=state, cursor=cursor, limit=limit
            ),
        )

    def _rollout_action(self, rollout_id: int, action: str, body: dict[str, Any]) -> Any:
        return self._post(f"/rollouts/{_segment(rollout_id)}/{action}", body)

    def advance_rollout(
        self, rollout_id: int, *, reason: str | None = None, from_step: int | None = None
    ) -> RolloutRead:
        """The next step now, whatever its hold other than an approval (not while the model
        is frozen). ``from_step``: the step index the caller saw; when the rollout has
        moved on meanwhile the server answers 409 and nothing moves."""
        body: dict[str, Any] = {"reason": reason}
        if from_step is not None:
            body["step"] = from_step
        return cast(RolloutRead, self._rollout_action(rollout_id, "advance", body))

    def pause_rollout(self, rollout_id: int, *, reason: str | None = None) -> RolloutRead:
        """Hold the current weights; no look advances or aborts it until resumed."""
        return cast(RolloutRead, self._rollout_action(rollout_id, "pause", {"reason": reason}))

    def resume_rollout(self, rollout_id: int, *, reason: str | None = None) -> RolloutRead:
        return cast(RolloutRead, self._rollout_action(rollout_id, "resume", {"reason": reason}))

    def abort_rollout(self, rollout_id: int, *, reason: str) -> RolloutRead:
        """All traffic back to the incumbent; stages unchanged; ``reason`` is required."""
        return cast(RolloutRead, self._rollout_action(rollout_id, "abort", {"reason": reason}))

    def approve_rollout(self, rollout_id: int, *, comment: str | None = None) -> RolloutRead:
        """Satisfy the ``approval`` hold of the current step (a reviewer other than the
        rollout's starter)."""
        return cast(RolloutRead, self._rollout_action(rollout_id, "approve", {"comment": comment}))

    def wait_rollout(
        self,
        rollout_id: int,
        *,
        timeout: float | None = None,
        interval: float = 2.0,
        on_change: Callable[[RolloutRead], None] | None = None,
    ) -> RolloutRead:
        """Poll the rollout until it is completed or aborted (returned), calling
        ``on_change`` with each new state of it; TimeoutError after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: tuple[Any, ...] | None = None
        while True:
            current = self.rollout(rollout_id)
            mark = rollout_mark(current)
            if mark != seen:
                seen = mark
                if on_change is not None:
                    on_change(current)
            if current.get("state") in ("completed", "aborted"):
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"rollout {rollout_id} still {current.get('state')} after {timeout} s"
                )
            pause = interval if deadline is None else min(interval, deadline - time.monotonic())
            self._sleep(max(0.0, pause))

    # Drift -------------------------------------------------------------------------------

    def put_reference_profile(
        self, model: str, version: int, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The training-data profile drift is measured against (a sample or features)."""
        path = f"/models/{_segment(model)}/versions/{_segment(version)}/reference-profile"
        return cast(dict[str, Any], self._post(path, dict(body)))

    def get_reference_profile(
        self, model: str, version: int, *, include_sample: bool | None = None
    ) -> dict[str, Any]:
        path = f"/models/{_segment(model)}/versions/{_segment(version)}/reference-profile"
        return cast(dict[str, Any], self._get(path, include_sample=include_sample))

    def create_drift_report(self, model: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A production window checked for drift against the reference profile."""
        return cast(
            dict[str, Any], self._post(f"/models/{_segment(model)}/drift-reports", dict(body))
        )

    def list_drift_reports(
        self,
        model: str,
        *,
        drifted: bool | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[dict[str, Any]]:
        return cast(
            Page[dict[str, Any]],
            self._get(
                f"/models/{_segment(model)}/drift-reports",
                drifted=drifted,
                cursor=cursor,
                limit=limit,
            ),
        )

    def get_drift_report(self, model: str, report_id: int) -> dict[str, Any]:
        return cast(
            dict[str, Any],
            self._get(f"/models/{_segment(model)}/drift-reports/{_segment(report_id)}"),
        )

    def get_drift_settings(self, model: str) -> dict[str, Any]:
        """The model's drift thresholds (``tau``, ``max_null_rate``, ``alpha``; the
        defaults until an admin sets them)."""
        return cast(dict[str, Any], self._get(f"/models/{_segment(model)}/drift-settings"))

    def put_drift_settings(
        self, model: str, *, tau: float, max_null_rate: float, alpha: float
    ) -> dict[str, Any]:
        """Replace the model's drift thresholds (all three; admin). Idempotent."""
        body = {"tau": tau, "max_null_rate": max_null_rate, "alpha": alpha}
        return cast(
            dict[str, Any],
            self._json("PUT", f"/models/{_segment(model)}/drift-settings", retry=True, json=body),
        )
