"""SQLite calls on the event loop's own thread, for the engine that writes.

aiosqlite runs every call (open a cursor, execute, fetch, close the cursor)
on a worker thread and wakes the event loop with the result: some 20 thread
round trips for a state transition, a quarter of its time on a 2-core host,
for calls that take SQLite itself a few microseconds. Writers here already
take turns (one transaction at a time per process, see ``engine._Turn``), so
the worker thread buys them no concurrency.

:class:`InlineConnection` is aiosqlite's connection with ``_execute`` (the
one funnel every call goes through) running the call in place, except where
SQLite may wait or write to disk at length:

- Waiting for another process's lock. The connection's own busy timeout is
  0, so a call that finds the database locked fails at once with
  SQLITE_BUSY, having done nothing; it is then run again on the worker
  thread with the configured busy timeout, the loop free meanwhile.
- Commits. A commit of up to :data:`INLINE_COMMIT_ROWS` changed rows runs
  in place (it appends a few pages to the WAL, unsynced:
  ``synchronous=NORMAL``); a larger one goes to the worker thread. SQLite's
  own checkpoint (after the commit that takes the WAL past 1,000 pages) then
  runs in place now and then. Checkpointing on a schedule of our own
  instead, off the loop, let the WAL grow under steady reads: list pages'
  p99 doubled (``bench/api.py``).
- ``close`` and ``executemany`` (bulk writes of thousands of rows) stay on
  the worker thread.

Reads of ordinary size then hold the loop for as long as SQLite takes to
answer them, as any CPU work of a request does. The engine for lookups
(``Database.lookup_session``) runs here too, on connections that may not
write (``PRAGMA query_only``), so their commits run in place: ending a read
transaction writes nothing and never checkpoints. The engine for reads that
may take long (``Database.read_session``: log streams, searches) keeps
aiosqlite's thread.

Rejected: a separate thread pool (the same round trips), and running the
busy wait inline (it would stall every request for up to the busy timeout).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import partial
from typing import Any

import aiosqlite

# See the module's docstring: what a commit in place may hold, and how often
# the checkpoint runs off the loop.
INLINE_COMMIT_ROWS = 500


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_BUSY


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection whose calls run in place unless they would wait."""

    def __init__(
        self,
        connector: Callable[[], sqlite3.Connection],
        *,
        busy_timeout: float,
        reads_only: bool = False,
    ) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self.busy_timeout_ms = int(busy_timeout * 1000)
        # A connection that may not write: its commits end read transactions only.
        self.reads_only = reads_only
        self._thread.daemon = True  # as SQLAlchemy makes aiosqlite's own
        # Calls sent to the worker thread, and calls it has finished: each is
        # written by one thread only. While they differ, a call is running or
        # queued there (perhaps for a caller that was cancelled), and later
        # calls queue behind it in order instead of running beside it.
        self._sent = 0
        self._done = 0
        # The connection's count of changed rows when its last transaction ended.
        self._changes_at_end = 0

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        conn = self._connection
        if fn == conn.commit and not self.reads_only:
            return await self._commit(conn)
        if fn == conn.rollback:
            try:
                return await self._call(conn, fn, args, kwargs)
            finally:
                self._changes_at_end = conn.total_changes
        return await self._call(conn, fn, args, kwargs)

    async def _call(
        self, conn: sqlite3.Connection, fn: Callable[..., Any], args: Any, kwargs: Any
    ) -> Any:
        if (
            self._sent != self._done
            or fn == conn.close
            or getattr(fn, "__name__", "") == "executemany"
        ):
            return await self._on_thread(fn, args, kwargs)
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
        return await self._on_thread(fn, args, kwargs)

    async def _commit(self, conn: sqlite3.Connection) -> None:
        """In place when small, on the worker thread when large."""
        written = conn.total_changes - self._changes_at_end
        if written > INLINE_COMMIT_ROWS:
            await self._on_thread(conn.commit, (), {})
        else:
            await self._call(conn, conn.commit, (), {})
        self._changes_at_end = conn.total_changes

    async def _on_thread(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        self._sent += 1
        return await super()._execute(self._waiting, fn, args, kwargs)  # type: ignore[no-untyped-call]

    def _waiting(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        """On the worker thread: ``fn`` with the busy timeout, which is 0 otherwise."""
        try:
            conn = self._conn
            if fn == conn.close:
                return fn(*args, **kwargs)
            conn.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}").close()
            try:
                return fn(*args, **kwargs)
            finally:
                conn.execute("PRAGMA busy_timeout=0").close()
        finally:
            self._done += 1


def connector(database: str, **kwargs: Any) -> Callable[[], sqlite3.Connection]:
    """Open the file as aiosqlite would, usable from any thread, waiting for no lock."""
    kwargs["check_same_thread"] = False
    return partial(sqlite3.connect, database, timeout=0, **kwargs)
