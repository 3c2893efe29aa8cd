"""Authenticated API keys, remembered in this process for a few seconds.

Reading the key's row is a statement on every request, and on a busy control
plane (a runner reporting states, a CLI polling) most of those reads find the
same row unchanged. So a key that authenticated is remembered, by the SHA-256
of the key and the database it was read from, for ``TTL_SECONDS``.

Revocation still takes effect at once in this process: revoking drops every
entry when the change is made and again when its transaction commits, and an
entry read before that commit is not stored after it (a generation count
guards the gap between reading a row and storing it). Another process on the
same database (a second replica) honours the revocation within the TTL.
``last_used`` keeps its coarse resolution: every miss reads the row again and
updates it when it is older than the resolution.

Rejected: no cache (a statement per request for an answer that changes once
in a key's life), and a long TTL with cross-process invalidation through the
database (a second moving part for seconds of staleness on other replicas).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

TTL_SECONDS = 5.0
MAX_ENTRIES = 1024
_FORGET = "flowyard_forget_keys"


class KeyCache:
    """A small TTL map whose ``clear`` also voids stores begun before it."""

    def __init__(
        self,
        ttl: float = TTL_SECONDS,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self.max_entries = max_entries
        self.generation = 0
        self._entries: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self.clock() >= expires:
            self._entries.pop(key, None)
            return None
        return value

    def put(self, key: Hashable, value: object, generation: int) -> None:
        """Store ``value`` unless the cache was cleared since ``generation`` was read."""
        if generation != self.generation:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = (self.clock() + self.ttl, value)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


API_KEYS = KeyCache()


def database_of(session: AsyncSession) -> Hashable:
    """What the cache keys by besides the key: the engine the session reads through."""
    return id(session.bind)  # an engine: sessions here are made by an engine's sessionmaker


def forget_keys(session: AsyncSession) -> None:
    """A key changed in this transaction: trust no cached key now, nor after it commits."""
    API_KEYS.clear()
    session.sync_session.info[_FORGET] = True


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_FORGET, False):
        API_KEYS.clear()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session, *_: Any) -> None:
    session.info.pop(_FORGET, None)
