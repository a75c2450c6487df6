"""A short-lived, per-process memory of tokens that authenticated.

Every request presents a bearer secret, and looking it up was one ``SELECT`` per
request (about 8 % of a read's server CPU, docs/performance.md). This cache keeps the
principal of a secret that authenticated for ``ttl`` seconds (docs/decisions/0008):

- only successes are kept; an unknown, revoked or expired secret is looked up every
  time, so a new token works at once and a guessed secret costs a query as before;
- a kept entry still honours its token's ``expires_at`` on every use, to the second;
- a revocation committed by this process drops the entry at once; one committed by
  another process (another worker, another replica, or SQL behind the server's back)
  takes up to ``ttl`` seconds to reach this one. ``ttl`` 0 turns the cache off.

Keys are the secret's sha256 (as stored), never the secret itself.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable

from app.auth.roles import Principal

# Every cache of this process, so a revocation can reach them all without knowing which
# app (tests run several in one process) holds which.
_caches: weakref.WeakSet[TokenCache] = weakref.WeakSet()
_caches_lock = threading.Lock()


def forget_everywhere(token_id: str) -> None:
    """Drop a token from every cache in this process."""
    with _caches_lock:
        caches = list(_caches)
    for cache in caches:
        cache.forget_token(token_id)


class TokenCache:
    def __init__(
        self,
        ttl_seconds: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        with _caches_lock:
            _caches.add(self)

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def get(self, digest: str) -> Principal | None:
        if not self.enabled:
            return None
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            stored_at, principal = entry
            if self._clock() - stored_at >= self.ttl:
                del self._entries[digest]
                return None
            return principal

    def put(self, digest: str, principal: Principal) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._entries[digest] = (self._clock(), principal)
            self._entries.move_to_end(digest)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget_token(self, token_id: str) -> None:
        """Drop every entry of a token (its id, not its secret, is what a revoke names)."""
        with self._lock:
            stale = [k for k, (_, p) in self._entries.items() if p.token_id == token_id]
            for key in stale:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
