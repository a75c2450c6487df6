"""The rollout driver: a background thread in every server process.

Every ``rollout_tick_seconds`` (and at once when an observation batch for a model with a
running rollout commits in this process) it lists the running rollouts whose look is
due and takes each look in its own short transaction (:func:`app.rollouts.service.look`):
the model's lock, then the rollout's row lock, then a re-check that the look is still
due and that the look count is the one read before locking. Of several processes that
find the same rollout due, the first to get the lock takes the look; the others find the
count moved on (or the look no longer due) and do nothing. A process killed mid-look
rolls back its transaction: the rollout is as it was, and the next tick of any process
takes the look again.

An early look refused because the rollout's last look was less than ``min(interval,
tick)`` ago is retried once, when that gap ends (not at the next tick): the batch that
woke it is judged within the gap even when batches come faster than the looks.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.orm import Session, sessionmaker

from app.observability import aftercommit
from app.rollouts import service, wakeup
from app.settings import Settings

log = logging.getLogger("modelgate.rollouts")


class Driver:
    def __init__(self, *, sessions: sessionmaker[Session], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._early: set[str] = set()
        self._early_lock = threading.Lock()
        # Models whose early look was refused as too soon: when to retry (monotonic).
        self._retry: dict[str, float] = {}
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        wakeup.register(self.nudge)
        self._thread = threading.Thread(target=self._run, name="modelgate-rollouts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        wakeup.unregister(self.nudge)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def nudge(self, model_name: str) -> None:
        """An observation batch for ``model_name`` committed: look at its rollout now."""
        with self._early_lock:
            self._early.add(model_name)
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the loop must outlive a bad round (database restarting)
                log.exception("rollout driver round failed")
            self._wake.wait(self.next_wait())
            self._wake.clear()

    def next_wait(self) -> float:
        """Seconds until the next round: a tick, or less when a refused early look is
        retried sooner."""
        wait = self.settings.rollout_tick_seconds
        with self._early_lock:
            if self._retry:
                wait = min(wait, max(0.0, min(self._retry.values()) - time.monotonic()))
        return wait

    def tick(self) -> int:
        """One round: the early looks asked for (and the retries now due), then every due
        look. Returns looks taken."""
        now = time.monotonic()
        with self._early_lock:
            early, self._early = self._early, set()
            retries = {name for name, at in self._retry.items() if at <= now}
            for name in retries:
                del self._retry[name]
        taken = 0
        for name in sorted(early | retries):
            taken += self._round(model_name=name, retry=name not in early)
        taken += self._round(model_name=None)
        return taken

    def _round(self, *, model_name: str | None, retry: bool = False) -> int:
        with self.sessions() as session:
            due = service.due(session, model_name=model_name)
        taken = 0
        for rollout_id, count in due:
            if self._stop.is_set():
                break
            took = self._look(rollout_id, count, early=model_name is not None)
            taken += took
            if model_name is not None and not took and not retry:
                self._retry_later(model_name, rollout_id)
        return taken

    def _retry_later(self, model_name: str, rollout_id: int) -> None:
        """An early look was refused: once more when the gap ends, if that is why."""
        with self.sessions() as session:
            left = service.early_wait(session, settings=self.settings, rollout_id=rollout_id)
        if left is not None:
            with self._early_lock:
                at = time.monotonic() + left + 0.01
                self._retry[model_name] = min(self._retry.get(model_name, at), at)

    def _look(self, rollout_id: int, count: int, *, early: bool) -> int:
        session = self.sessions()
        aftercommit.open_queue(session)
        try:
            with session.begin():
                action = service.look(
                    session, settings=self.settings, rollout_id=rollout_id,
                    expected_count=count, early=early,
                )  # fmt: skip
            aftercommit.run(session)
        except Exception:
            aftercommit.drop(session)
            log.exception("look at rollout %s failed", rollout_id)
            return 0
        finally:
            session.close()
        if action is not None and action != "hold":
            log.info("rollout %s: %s", rollout_id, action)
        return 1 if action is not None else 0
