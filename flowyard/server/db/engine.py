"""Engines and sessions, with the dialect differences kept here.

SQLite runs in WAL mode with a busy timeout, and every transaction begins
with ``BEGIN IMMEDIATE``: a transaction takes the single writer lock up
front, so read-modify-write sequences (claims, state transitions) are
serialised instead of failing late with "database is locked". The engine
that writes runs SQLite's calls on the event loop's thread and waits for
another process's lock on a worker thread (``_sqlite_inline``). PostgreSQL
uses row locks (``FOR UPDATE [SKIP LOCKED]``) in the ops that need them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from flowyard.errors import FlowyardError


class StorageError(FlowyardError):
    """The database could not be reached or used."""


SUPPORTED_DRIVERS = frozenset({"sqlite+aiosqlite", "postgresql+asyncpg"})


def normalize_url(url: str) -> str:
    """Accept the common spellings and pick the async driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite:///"):
        url = "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    return url


BUSY_TIMEOUT_SECONDS = 30.0


def _install_sqlite_hooks(
    engine: AsyncEngine,
    *,
    begin: str = "BEGIN IMMEDIATE",
    busy_timeout: float,
    query_only: bool = False,
) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        if query_only:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)


class _Turn:
    """One transaction at a time in this process, first come first served (SQLite).

    SQLite has one writer lock, and every transaction here takes it up front.
    Left to SQLite, waiting transactions poll it from their own threads with a
    growing sleep (up to 100 ms a try), so under a burst of requests the lock
    sits idle between polls and latency climbs into seconds. Queueing in the
    event loop instead hands the lock over at once. Other processes on the
    same file (a CLI, a second server) still wait on SQLite's busy timeout.
    """

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.owner: asyncio.Task[Any] | None = None

    def lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:  # a Database reused by another loop
            self._lock, self._loop = asyncio.Lock(), loop
        return self._lock


@asynccontextmanager
async def _transaction(
    factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """Commit on success, roll back on error, and always give the connection back clean.

    The rollback and close run shielded from cancellation: a request cancelled
    mid-transaction (a client that hung up) must not leave its connection in
    the pool holding the database's write lock.
    """
    import anyio

    session = factory()
    try:
        await session.begin()
        yield session
        await session.commit()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await session.rollback()
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await session.close()


@dataclass(frozen=True)
class Database:
    """One engine and its session factory."""

    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    _turn: _Turn | None = None
    # SQLite: sessions that only read, on their own connections with a deferred
    # BEGIN (WAL lets them read beside the writer); None elsewhere.
    _readers: async_sessionmaker[AsyncSession] | None = None
    # SQLite: the same, for lookups, with calls on the event loop's thread; None elsewhere.
    _lookups: async_sessionmaker[AsyncSession] | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success and rolls back on error."""
        turn = self._turn
        if turn is None:
            async with _transaction(self.sessions) as session:
                yield session
            return
        task = asyncio.current_task()
        if task is not None and turn.owner is task:
            raise RuntimeError(
                "a database session was opened inside another one in the same task; "
                "on SQLite that waits on itself: pass the outer session down instead"
            )
        async with turn.lock():
            turn.owner = task
            try:
                async with _transaction(self.sessions) as session:
                    yield session
            finally:
                turn.owner = None

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only: on SQLite it neither waits for nor blocks writers.

        For hot polling paths (live log streams). Writing in it fails on SQLite.
        """
        if self._readers is None:
            async with self.session() as session:
                yield session
            return
        async with self._readers() as session, session.begin():
            yield session

    @asynccontextmanager
    async def lookup_session(self) -> AsyncIterator[AsyncSession]:
        """A session for lookups: a few rows by key, as the dispatcher reads per run.

        As :meth:`read_session`, but on SQLite its calls run on the event loop's
        thread (see ``_sqlite_inline``): a worker thread's round trips cost more
        than SQLite takes to answer such a read. A read that may take long (a
        scan, a search) belongs in :meth:`read_session`. Writing in it fails on
        SQLite.
        """
        if self._lookups is None:
            async with self.read_session() as session:
                yield session
            return
        async with self._lookups() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
        for sessions in (self._readers, self._lookups):
            if sessions is not None:
                await sessions.kw["bind"].dispose()


def create_database(url: str, *, pool_size: int = 10) -> Database:
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except Exception:
        raise StorageError(f"database URL {url!r} is not a valid SQLAlchemy URL") from None
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise StorageError(
            f"database URL scheme {parsed.drivername!r} is not supported; expected "
            "sqlite+aiosqlite:///path/to/file.db or postgresql+asyncpg://user@host/db"
        )
    if parsed.get_backend_name() != "sqlite":
        engine = create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
        )
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        return Database(url=url, engine=engine, sessions=sessions)
    engine = create_async_engine(url, async_creator=_inline_sqlite(parsed))
    _install_sqlite_hooks(engine, busy_timeout=0)  # the connection waits off the loop
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    # Readers stay open: a burst of runs reads from many tasks at once, and a connection
    # beyond the pool would be a new thread and a new SQLite handle each time.
    reader = create_async_engine(
        url,
        connect_args={"timeout": BUSY_TIMEOUT_SECONDS},
        pool_size=pool_size * 2,
        max_overflow=pool_size * 2,
    )
    _install_sqlite_hooks(reader, begin="BEGIN", busy_timeout=BUSY_TIMEOUT_SECONDS)
    readers = async_sessionmaker(reader, expire_on_commit=False)
    lookup = create_async_engine(
        url,
        async_creator=_inline_sqlite(parsed, reads_only=True),
        pool_size=pool_size,
        max_overflow=pool_size,
    )
    _install_sqlite_hooks(lookup, begin="BEGIN", busy_timeout=0, query_only=True)
    lookups = async_sessionmaker(lookup, expire_on_commit=False)
    return Database(
        url=url,
        engine=engine,
        sessions=sessions,
        _turn=_Turn(),
        _readers=readers,
        _lookups=lookups,
    )


def _inline_sqlite(url: URL, *, reads_only: bool = False) -> Callable[[], Awaitable[Any]]:
    """Connections whose calls run on the loop's thread (see ``_sqlite_inline``)."""
    from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite

    from flowyard.server.db import _sqlite_inline  # loaded where SQLite is used

    args, options = SQLiteDialect_aiosqlite().create_connect_args(url)

    async def connect() -> Any:
        opener = _sqlite_inline.connector(*args, **options)
        connection = _sqlite_inline.InlineConnection(
            opener, busy_timeout=BUSY_TIMEOUT_SECONDS, reads_only=reads_only
        )
        await connection
        return connection

    return connect


async def check_connection(db: Database, timeout: float = 5.0) -> None:
    """Raise StorageError with a one-line reason when the database is unusable."""
    try:
        async with asyncio.timeout(timeout):
            async with db.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
    except TimeoutError:
        raise StorageError(
            f"database {redact_url(db.url)} did not answer in {timeout:g} s"
        ) from None
    except Exception as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StorageError(f"cannot connect to database {redact_url(db.url)}: {reason}") from exc


def redact_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"
