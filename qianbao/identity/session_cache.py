"""Sessions a process saw alive a moment ago, so that a signed-in request whose route
checks its session inside its own transaction (``qianbao.access``'s money operations)
skips the transaction the lookup would cost.

The cache is only ever a hint. Whoever takes a session from it must check the session
again inside each transaction it runs (``service.check_session``): an ended session then
stops the request at once, whichever process ended it. What the cache saves is the
token's hash lookup, its join with the account and a transaction of its own; what a
cached entry can be wrong about for ``session_cache_seconds`` is only the account's
language and level as shown, never whether the session may act.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Generic, TypeVar
from weakref import WeakKeyDictionary

from qianbao.db import Database, Tx

V = TypeVar("V")


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    session_id: uuid.UUID
    seen_at: float


class SessionCache(Generic[V]):
    """Token hash to a session's value, for ``ttl`` seconds after it was last seen alive."""

    def __init__(self, ttl: float, capacity: int = 100_000) -> None:
        self._ttl = ttl
        self._capacity = capacity
        self._entries: dict[str, _Entry[V]] = {}
        self._lock = threading.Lock()

    def get(self, token_hash: str) -> V | None:
        entry = self._entries.get(token_hash)
        if entry is None or time.monotonic() - entry.seen_at >= self._ttl:
            return None
        return entry.value

    def put(self, token_hash: str, session_id: uuid.UUID, value: V) -> None:
        if self._ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self._capacity:
                self._entries.clear()  # a burst of new sessions: start over, it is a hint
            self._entries[token_hash] = _Entry(value, session_id, time.monotonic())

    def forget(self, session_id: uuid.UUID) -> None:
        with self._lock:
            for key in [k for k, e in self._entries.items() if e.session_id == session_id]:
                del self._entries[key]


_CACHES: WeakKeyDictionary[Database, SessionCache[object]] = WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def of(db: Database) -> SessionCache[object]:
    """The database's cache (one per Database, so tests and processes never share one)."""
    cache = _CACHES.get(db)
    if cache is None:
        with _CACHES_LOCK:
            cache = _CACHES.setdefault(db, SessionCache(db.settings.session_cache_seconds))
    return cache


def remember(tx: Tx, token_hash: str, session_id: uuid.UUID, value: object) -> None:
    """Cache the session once the transaction that found it alive commits."""
    tx.after_commit(lambda: of(tx.db).put(token_hash, session_id, value))


def forget(db: Database, session_id: uuid.UUID) -> None:
    of(db).forget(session_id)
