"""Run callbacks once the session's transaction commits; drop them if it rolls back.

Metrics and the dispatcher's wake-up must not react to work that never happened: a
listener inside the transaction calls :func:`defer`, and the callback runs only after
the commit reached the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger("modelgate.observability")

_KEY = "modelgate_after_commit"
_installed = False


def defer(session: Session, fn: Callable[[], None]) -> None:
    """Call ``fn`` after the current transaction of ``session`` commits."""
    install()
    session.info.setdefault(_KEY, []).append(fn)


def _run(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint was released; the transaction itself is still open
    pending: list[Callable[[], None]] = session.info.pop(_KEY, [])
    for fn in pending:
        try:
            fn()
        except Exception:  # a metric must never break a committed request
            log.exception("after-commit callback failed")


def _drop(session: Session) -> None:
    # A savepoint rolled back leaves the outer transaction (and what it recorded before
    # the savepoint) alive; nothing is recorded inside our savepoints, so keep it all.
    if session.get_nested_transaction() is None:
        session.info.pop(_KEY, None)


def install() -> None:
    """Hook every Session once per process."""
    global _installed
    if _installed:
        return
    event.listen(Session, "after_commit", _run)
    event.listen(Session, "after_rollback", _drop)
    _installed = True
