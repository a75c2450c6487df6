"""Work that waits for the commit of the unit of work: run after it, dropped on rollback.

Metrics, the dispatcher's wake-up and the token cache must not react to work that
never happened. Code inside a transaction calls :func:`defer`; the unit of work that
owns the session (:class:`app.api.uow.UnitOfWork`) opens the queue with :func:`open_queue`
when it creates the session, runs it with :func:`run` after its commit and drops it with
:func:`drop` after a rollback. A session no unit of work opened (the CLI, start-up) has no
queue: what it defers is dropped, as nothing in that process would observe it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

log = logging.getLogger("modelgate.observability")

_KEY = "modelgate.after_commit"


def open_queue(session: Session) -> None:
    """Give ``session`` an (empty) after-commit queue; its owner runs or drops it."""
    session.info[_KEY] = []


def defer(session: Session, fn: Callable[[], None]) -> None:
    """Call ``fn`` once the unit of work owning ``session`` has committed."""
    queue: list[Callable[[], None]] | None = session.info.get(_KEY)
    if queue is not None:
        queue.append(fn)


def run(session: Session) -> None:
    """Run what was deferred (the transaction has committed) and empty the queue."""
    queue: list[Callable[[], None]] = session.info.get(_KEY) or []
    session.info[_KEY] = []
    for fn in queue:
        try:
            fn()
        except Exception:  # a metric must never break a committed request
            log.exception("after-commit callback failed")


def drop(session: Session) -> None:
    """Forget what was deferred (the transaction rolled back)."""
    if _KEY in session.info:
        session.info[_KEY] = []
