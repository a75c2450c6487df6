"""The unit of work: one session and one transaction per request, and the work that waits
for its commit (metrics, the dispatcher's wake-up; :mod:`app.observability.aftercommit`)."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.observability import aftercommit


class UnitOfWork:
    """Opens its session lazily, so a request that never touches the database never
    takes a connection. ``commit`` ends the transaction early (the artifact upload does
    this so that no connection is held while bytes stream); the next use starts another.
    """

    def __init__(self, factory: sessionmaker[Session], bind: Engine | None = None) -> None:
        self._factory = factory
        self._bind = bind
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            session = self._factory(bind=self._bind) if self._bind else self._factory()
            aftercommit.open_queue(session)
            self._session = session
        return self._session

    @property
    def started(self) -> bool:
        """Whether the request used the database at all."""
        return self._session is not None

    def finish(self) -> None:
        """Commit and give the connection back (the end of a request that succeeded)."""
        try:
            self.commit()
        finally:
            self.close()

    def abort(self) -> None:
        """Roll back and give the connection back (the end of a request that failed)."""
        try:
            self.rollback()
        finally:
            self.close()

    def commit(self) -> None:
        """Commit, then run what waited for the commit."""
        if self._session is not None:
            self._session.commit()
            aftercommit.run(self._session)

    def rollback(self) -> None:
        """Roll back, and drop what waited for a commit."""
        if self._session is not None:
            self._session.rollback()
            aftercommit.drop(self._session)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
