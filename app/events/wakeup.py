"""Waking this process's dispatchers as soon as a commit wrote deliveries.

Dispatchers poll anyway (other processes' commits are only seen that way); the wake-up
just spares the local ones the wait.
"""

from __future__ import annotations

import threading

from sqlalchemy.orm import Session

from app.observability.aftercommit import defer

_lock = threading.Lock()
_events: list[threading.Event] = []


def register(event: threading.Event) -> None:
    with _lock:
        if event not in _events:
            _events.append(event)


def unregister(event: threading.Event) -> None:
    with _lock:
        if event in _events:
            _events.remove(event)


def wake_all() -> None:
    with _lock:
        for event in _events:
            event.set()


def wake_after_commit(session: Session) -> None:
    defer(session, wake_all)
