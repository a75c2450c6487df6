"""What the HTTP adapters ask of observability: the state gauges, read on each scrape."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.observability import repository
from app.observability.metrics import observe_state


def observe_registry_state(session: Session) -> None:
    """Read the registry's state once (pending promotions, frozen models, the webhook
    backlog, production versions) and set the state gauges from it."""
    observe_state(repository.operational_state(session))
