"""The rollout driver: a background thread in every server process.

Every ``rollout_tick_seconds`` (``rollout_idle_tick_seconds`` while no rollout runs
anywhere: an idle registry should cost next to nothing) it lists the running rollouts
whose look is due (the analysis's ``interval_seconds`` after the previous look: decision
record 0022) and takes each look in its own short transaction
(:func:`app.rollouts.service.look`): the model's lock, then the rollout's row lock, then
a re-check that the look is still due and that the look count is the one read before
locking. An observation batch for a model with a running rollout, committed in this
process, wakes the driver at once: a look that is due then is taken without waiting for
the tick; before its interval, an early look acts on a failed critical metric only (it
aborts at once; anything else waits for the interval and leaves no trace), at most once
per tick per rollout in this process. Of several processes that find the same rollout
due, the first to get the lock takes the look; the others find the count moved on (or
the look no longer due) and do nothing. A process killed mid-look rolls back its
transaction: the rollout is as it was, and the next tick of any process takes the look
again."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.observability import aftercommit
from app.rollouts import service, wakeup
from app.settings import Settings

log = logging.getLogger("modelgate.rollouts")


class Driver:
    def __init__(
        self, *, sessions: sessionmaker[Session], settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:  # fmt: skip
        self.sessions = sessions
        self.settings = settings
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._early: set[str] = set()
        self._early_lock = threading.Lock()
        self._early_checked: dict[int, float] = {}  # rollout id -> monotonic time
        self._busy = True  # a rollout runs somewhere (tick fast); re-read every round
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
        """An observation batch for ``model_name`` committed: take its rollout's look now
        if it is due (rather than at the next tick), else an early look that acts only on
        a failed critical metric (at most one per tick per rollout in this process)."""
        with self._early_lock:
            self._early.add(model_name)
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the loop must outlive a bad round (database restarting)
                log.exception("rollout driver round failed")
            idle = self.settings.rollout_idle_tick_seconds
            self._wake.wait(self.settings.rollout_tick_seconds if self._busy else idle)
            self._wake.clear()

    def tick(self) -> int:
        """One round: the models nudged first, then every due look. Returns looks taken."""
        with self._early_lock:
            early, self._early = self._early, set()
        taken = 0
        for name in sorted(early):
            taken += self._round(model_name=name)
        taken += self._round(model_name=None)
        return taken

    def _round(self, *, model_name: str | None) -> int:
        with self.sessions() as session:
            if model_name is None:
                listed = service.due(session, now=self.clock())
                self._busy = bool(listed) or service.any_running(session)
            else:
                listed = service.running(session, model_name=model_name)
        taken = 0
        for rollout_id, count in listed:
            if self._stop.is_set():
                break
            if model_name is not None and not self._may_check_early(rollout_id):
                continue
            taken += self._look(rollout_id, count, early=model_name is not None)
        return taken

    def _may_check_early(self, rollout_id: int) -> bool:
        """At most one early look per tick per rollout: batches may come far faster."""
        now = time.monotonic()
        last = self._early_checked.get(rollout_id)
        if last is not None and now - last < self.settings.rollout_tick_seconds:
            return False
        self._early_checked[rollout_id] = now
        if len(self._early_checked) > 10_000:  # ended rollouts are never asked about again
            self._early_checked = {rollout_id: now}
        return True

    def _look(self, rollout_id: int, count: int, *, early: bool = False) -> int:
        session = self.sessions()
        aftercommit.open_queue(session)
        try:
            with session.begin():
                action = service.look(
                    session, settings=self.settings, rollout_id=rollout_id,
                    expected_count=count, now=self.clock(), early=early,
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
