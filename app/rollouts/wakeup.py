"""Waking this process's rollout drivers after a commit that concerns a running rollout:
an observation batch for its model (the look, or an early look, comes at once, not at
the next tick), and a rollout started, resumed or approved (an idle driver ticks slowly)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy.orm import Session

from app.observability.aftercommit import defer

_lock = threading.Lock()
_listeners: list[Callable[[str], None]] = []


def register(listener: Callable[[str], None]) -> None:
    with _lock:
        if listener not in _listeners:
            _listeners.append(listener)


def unregister(listener: Callable[[str], None]) -> None:
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


def wake(model_name: str) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(model_name)


def wake_after_commit(session: Session, model_name: str) -> None:
    defer(session, lambda: wake(model_name))
