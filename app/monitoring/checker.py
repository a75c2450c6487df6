"""The monitoring checker: a background thread in every server process.

Every ``monitoring_poll_seconds`` it lists the models with a production version and
runs :func:`app.monitoring.service.check` for each, one short transaction per model.
The check locks the model and re-checks that its look is due, so several processes
share the work without taking the same look twice.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from app.monitoring import service
from app.settings import Settings
from app.storage.base import ArtifactStore

log = logging.getLogger("modelgate.monitoring")


class MonitoringChecker:
    def __init__(
        self, *, sessions: sessionmaker[Session], settings: Settings, store: ArtifactStore
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.store = store
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="modelgate-monitoring", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.monitoring_poll_seconds):
            try:
                self.run_once()
            except Exception:  # the database is down, say: keep polling, never die
                log.exception("monitoring round failed; retrying")

    def run_once(self, *, force: bool = False) -> int:
        """Check every model in production (those due, or all with ``force``); returns
        how many models were looked at."""
        with self.sessions() as session:
            names = service.models_in_production(session)
        for name in names:
            try:
                with self.sessions() as session, session.begin():
                    service.check(
                        session,
                        settings=self.settings,
                        store=self.store,
                        model_name=name,
                        force=force,
                    )
            except Exception:
                log.exception("monitoring of model %s failed", name)
        return len(names)
