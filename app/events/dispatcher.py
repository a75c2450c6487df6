"""The webhook dispatcher: a background thread in every server process.

Each round it claims due deliveries, sends them, and records the outcome:

1. **Claim** (one short transaction): select due deliveries, each the earliest open one
   of its webhook and model (so events of a model arrive in order), with
   ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so that dispatchers of several processes
   never take the same row; count the attempt and set a lease (``claimed_until``);
   commit. No transaction stays open during the HTTP call.
2. **Send**: POST the event's JSON, signed (:mod:`app.events.signing`), with a timeout.
3. **Record** (another short transaction): delivered on 2xx; otherwise failed, retried
   after an exponential backoff with equal jitter, or dead after the last attempt.

A process that dies between 1 and 3 leaves a lease that expires; the delivery is then
claimed again by any dispatcher. So every event is delivered at least once (receivers
deduplicate by ``Modelgate-Event-Id``), and a healthy receiver gets it exactly once.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import ssl
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app import __version__
from app.db.base import utcnow
from app.events import repository, signing, wakeup
from app.events.models import OPEN_STATUSES, DeliveryStatus, OutboxEvent
from app.events.secretbox import SecretKeyError
from app.events.urls import Resolver, UrlPolicy, UrlRefused, pin, resolve
from app.observability import metrics
from app.settings import Settings

log = logging.getLogger("modelgate.webhooks")

MAX_ERROR_LENGTH = 1000


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): "equal jitter",
    uniform in ``[c/2, c]`` with ``c = min(cap, base * 2**(attempt-1))``. The jitter keeps
    many deliveries that failed together from retrying in lockstep; the floor keeps a
    struggling receiver from being hit again at once (full jitter can draw ~0 s)."""
    ceiling = min(cap, base * 2.0 ** max(attempt - 1, 0))
    return rng.uniform(ceiling / 2.0, ceiling)


def event_body(event: OutboxEvent) -> bytes:
    """The request body: the same bytes on every attempt and redelivery of an event."""
    envelope: dict[str, Any] = {
        "id": event.event_id,
        "type": event.type,
        "occurred_at": event.occurred_at.isoformat(),
        "model": event.model,
        "version": event.version,
        "data": event.payload,
    }
    return json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    webhook_id: int
    attempt: int
    url: str
    secret: str | None
    """The webhook's secret, opened; None when it could not be (``secret_error`` says why)."""
    event_id: str
    event_type: str
    body: bytes
    secret_error: str | None = None


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None
    error: str | None
    seconds: float


class Dispatcher:
    """Claims, sends and records webhook deliveries; :meth:`start` runs it in a thread."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        settings: Settings,
        read_bind: Engine | None = None,
        worker_id: str | None = None,
        rng: random.Random | None = None,
        resolver: Resolver = resolve,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """``resolver`` and ``verify`` (the TLS trust) are the system's unless a test gives
        its own."""
        self.sessions = sessions
        self.read_bind = read_bind
        self.settings = settings
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.policy = UrlPolicy(
            allow_private_networks=settings.webhook_allow_private_networks,
            allow_link_local=settings.webhook_allow_link_local,
        )
        # The lease must outlast an attempt, or a slow but live sender loses its claim.
        self.lease = timedelta(
            seconds=max(settings.webhook_lease_seconds, settings.webhook_timeout_seconds + 1)
        )
        self.resolver = resolver
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._client = httpx.Client(
            timeout=settings.webhook_timeout_seconds,
            follow_redirects=False,
            verify=verify,
            # Deliveries connect to the address that was checked, never to one the
            # environment's proxy variables name.
            trust_env=False,
            headers={"User-Agent": f"modelgate-webhooks/{__version__}"},
        )
        self._pool = ThreadPoolExecutor(
            max_workers=settings.webhook_concurrency, thread_name_prefix="modelgate-webhook-send"
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = False  # no delivery open at the last look
        self._thread: threading.Thread | None = None

    # Lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        wakeup.register(self._wake)
        self._thread = threading.Thread(
            target=self._loop, name="modelgate-webhook-dispatcher", daemon=True
        )
        self._thread.start()
        log.info("webhook dispatcher %s started", self.worker_id)

    def stop(self) -> None:
        """Finish the attempts in flight (recording their outcome), then stop."""
        self._stop.set()
        self._wake.set()
        wakeup.unregister(self._wake)
        if self._thread is not None:
            self._thread.join(timeout=self.settings.webhook_timeout_seconds + 10)
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        poll = self.settings.webhook_poll_interval_seconds
        idle_cap = max(poll, self.settings.webhook_idle_poll_seconds)
        wait = poll
        while not self._stop.is_set():
            self._wake.clear()
            try:
                attempted = self.run_once()
            except Exception:  # the database is down, say: keep polling, never die
                log.exception("webhook dispatcher round failed; retrying")
                attempted = 0
            if attempted:
                wait = poll
                continue
            # Nothing open anywhere: look less and less often (up to the idle cap), since
            # this process's own commits wake it at once and only another process's new
            # deliveries can wait. Anything open (a retry later, a lease to run out):
            # keep the normal pace.
            wait = min(wait * 2, idle_cap) if self._idle else poll
            self._wake.wait(wait)

    # One round ----------------------------------------------------------------------------

    def run_once(self) -> int:
        """Claim a batch, send it, record the outcomes; returns how many were attempted."""
        claims = self.claim()
        if not claims:
            return 0
        futures = [(claim, self._pool.submit(self.send, claim)) for claim in claims]
        for claim, future in futures:
            try:
                self.record(claim, future.result())
            except Exception:  # its lease runs out and it is sent again: at least once
                log.exception(
                    "webhook delivery %s: could not record the outcome",
                    claim.delivery_id,
                    extra={"delivery_id": claim.delivery_id, "event_id": claim.event_id},
                )
        return len(claims)

    def _anything_due(self) -> bool:
        factory = self.sessions
        session = factory(bind=self.read_bind) if self.read_bind is not None else factory()
        with session, session.begin():
            # Nothing open is the idle registry's answer, and the cheaper question.
            self._idle = not repository.any_open(session)
            return not self._idle and repository.any_due(session, utcnow())

    def claim(self) -> list[Claim]:
        # A read first: on SQLite a claim takes the database write lock, which an idle
        # poll has no business taking twice a second.
        if not self._anything_due():
            return []
        now = utcnow()
        claims: list[Claim] = []
        with self.sessions() as session, session.begin():
            rows = repository.claimable(session, now, self.settings.webhook_batch_size)
            if not rows:
                return []
            hooks = repository.webhooks_by_id(session, sorted({r.webhook_id for r in rows}))
            events = repository.outbox_by_id(session, sorted({r.outbox_id for r in rows}))
            box = self.settings.secret_box
            for row in rows:
                hook = hooks[row.webhook_id]
                secret: str | None = None
                secret_error: str | None = None
                try:
                    if box is None:
                        raise SecretKeyError(
                            "no MODELGATE_SECRET_KEY is configured to open the webhook's secret"
                        )
                    secret = box.open(hook.secret_sealed)
                except SecretKeyError as exc:
                    secret_error = str(exc)
                row.attempts += 1
                row.claimed_until = now + self.lease
                row.claimed_by = self.worker_id
                row.last_attempt_at = now
                claims.append(
                    Claim(
                        delivery_id=row.id,
                        webhook_id=row.webhook_id,
                        attempt=row.attempts,
                        url=hook.url,
                        secret=secret,
                        secret_error=secret_error,
                        event_id=row.event_id,
                        event_type=row.event_type,
                        body=event_body(events[row.outbox_id]),
                    )
                )
        return claims

    def send(self, claim: Claim) -> Outcome:
        started = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        try:
            if claim.secret is None:
                raise SecretKeyError(claim.secret_error or "the webhook's secret is unavailable")
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "Modelgate-Event-Id": claim.event_id,
                "Modelgate-Event-Type": claim.event_type,
                "Modelgate-Timestamp": str(timestamp),
                signing.SIGNATURE_HEADER: signing.header_value(claim.secret, timestamp, claim.body),
                "Modelgate-Delivery-Id": str(claim.delivery_id),
                "Modelgate-Delivery-Attempt": str(claim.attempt),
            }
            # Again at send time (the name may resolve somewhere else than at creation),
            # once: the connection goes to the address checked here, named as the URL
            # names it in Host and in TLS (server name and certificate check).
            target = pin(claim.url, self.policy, resolver=self.resolver)
            headers["Host"] = target.host_header
            extensions = {"sni_hostname": target.server_name} if target.server_name else {}
            response = self._client.post(
                target.url, content=claim.body, headers=headers, extensions=extensions
            )
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}: {response.text[:200]}"
        except UrlRefused as exc:
            error = f"refused: {exc}"
        except SecretKeyError as exc:
            error = f"secret unavailable: {exc}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:  # never lose the outcome of an attempt to a surprise
            log.exception("webhook delivery %s: unexpected error", claim.delivery_id)
            error = f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - started
        metrics.WEBHOOK_DELIVERY_DURATION.observe(seconds)
        return Outcome(
            ok=error is None,
            status_code=status_code,
            error=error[:MAX_ERROR_LENGTH] if error else None,
            seconds=seconds,
        )

    def _delay(self, attempt: int) -> float:
        with self._rng_lock:
            return backoff_delay(
                attempt,
                base=self.settings.webhook_backoff_base_seconds,
                cap=self.settings.webhook_backoff_cap_seconds,
                rng=self._rng,
            )

    def record(self, claim: Claim, outcome: Outcome) -> None:
        extra = {
            "delivery_id": claim.delivery_id,
            "webhook_id": claim.webhook_id,
            "event_id": claim.event_id,
            "event_type": claim.event_type,
            "attempt": claim.attempt,
            "status_code": outcome.status_code,
            "duration_ms": round(outcome.seconds * 1000, 2),
        }
        now = utcnow()
        with self.sessions() as session, session.begin():
            row = repository.for_update(session, claim.delivery_id)
            if (
                row is None
                or row.claimed_by != self.worker_id
                or row.attempts != claim.attempt
                or row.status not in OPEN_STATUSES
            ):
                # The lease ran out and another dispatcher took over, or the webhook was
                # deleted meanwhile: its state is no longer ours to write.
                log.warning(
                    "webhook delivery %s: claim lost before the outcome was recorded",
                    claim.delivery_id,
                    extra=extra,
                )
                return
            row.claimed_until = None
            row.claimed_by = None
            row.last_status_code = outcome.status_code
            if outcome.ok:
                row.status = DeliveryStatus.DELIVERED.value
                row.delivered_at = now
                row.last_error = None
                result = "delivered"
            elif row.attempts >= self.settings.webhook_max_attempts:
                row.status = DeliveryStatus.DEAD.value
                row.last_error = outcome.error
                result = "dead"
            else:
                row.status = DeliveryStatus.FAILED.value
                row.last_error = outcome.error
                row.next_attempt_at = now + timedelta(seconds=self._delay(row.attempts))
                result = "failed"
        metrics.WEBHOOK_DELIVERIES.labels(outcome=result).inc()
        level = logging.INFO if result == "delivered" else logging.WARNING
        log.log(
            level,
            "webhook delivery %s (event %s, attempt %d) %s%s",
            claim.delivery_id,
            claim.event_id,
            claim.attempt,
            result,
            f": {outcome.error}" if outcome.error else "",
            extra={**extra, "outcome": result},
        )
