"""SQLite's calls on the loop's thread: another process's lock is waited for off it.

The busy timeout is an hour here, and the lock holder lets go only from the
event loop: a wait for the lock on the loop's thread would hang these tests
(until the per-test timeout fails them) instead of passing quietly late.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from flowyard.server.db import Database, _sqlite_inline, create_database
from flowyard.server.db import engine as db_engine

# "thread": a loop stuck in SQLite's busy wait never runs the signal handler.
pytestmark = pytest.mark.timeout(60, method="thread")


@pytest.fixture
async def sqlite_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Database, Path]]:
    monkeypatch.setattr(db_engine, "BUSY_TIMEOUT_SECONDS", 3600.0)
    path = tmp_path / "inline.db"
    db = create_database(f"sqlite+aiosqlite:///{path}")
    async with db.session() as session:
        await session.execute(text("CREATE TABLE marks (n INTEGER)"))
    yield db, path
    await db.dispose()


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """What another process writing to the file looks like from here."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


async def _write(db: Database, n: int) -> None:
    async with db.session() as session:
        await session.execute(text("INSERT INTO marks VALUES (:n)"), {"n": n})


async def _marks(db: Database) -> list[int]:
    async with db.session() as session:
        return list((await session.execute(text("SELECT n FROM marks ORDER BY n"))).scalars())


async def _loop_turns(turns: int) -> None:
    for _ in range(turns):
        await asyncio.sleep(0.01)


async def test_a_writer_waits_for_another_process_lock_while_the_loop_runs_on(
    sqlite_db: tuple[Database, Path],
) -> None:
    db, path = sqlite_db
    other = _hold_write_lock(path)
    try:
        writer = asyncio.create_task(_write(db, 1))
        await _loop_turns(20)  # the loop turns while the writer waits for the lock
        assert not writer.done()
    finally:
        other.execute("COMMIT")
        other.close()
    await writer
    assert await _marks(db) == [1]


async def test_a_writer_cancelled_while_waiting_for_the_lock_leaves_its_connection_usable(
    sqlite_db: tuple[Database, Path],
) -> None:
    db, path = sqlite_db
    other = _hold_write_lock(path)
    try:
        writer = asyncio.create_task(_write(db, 1))
        await _loop_turns(10)
        writer.cancel()
        await _loop_turns(10)  # its clean-up waits behind the wait for the lock, off the loop
    finally:
        other.execute("COMMIT")
        other.close()
    with pytest.raises(asyncio.CancelledError):
        await writer
    await _write(db, 2)
    assert await _marks(db) == [2]
    # Nothing in this process still holds the lock.
    again = _hold_write_lock(path)
    again.execute("ROLLBACK")
    again.close()


async def test_an_error_that_is_not_a_lock_fails_the_statement_at_once(
    sqlite_db: tuple[Database, Path],
) -> None:
    db, _ = sqlite_db
    with pytest.raises(Exception, match="no such table"):
        async with db.session() as session:
            await session.execute(text("SELECT * FROM nothing_here"))
    await _write(db, 3)
    assert await _marks(db) == [3]


async def test_a_lookup_reads_beside_another_process_write_lock_without_leaving_the_loop(
    sqlite_db: tuple[Database, Path],
) -> None:
    db, path = sqlite_db
    await _write(db, 1)
    other = _hold_write_lock(path)
    other.execute("INSERT INTO marks VALUES (2)")
    try:
        async with db.lookup_session() as session:
            rows = list((await session.execute(text("SELECT n FROM marks"))).scalars())
            raw = await (await session.connection()).get_raw_connection()
            connection = raw.driver_connection
    finally:
        other.execute("COMMIT")
        other.close()
    assert rows == [1]  # what was committed when it began
    assert connection._sent == 0  # not one call, its commit included, went to the worker thread
    async with db.lookup_session() as session:
        assert list((await session.execute(text("SELECT n FROM marks ORDER BY n"))).scalars()) == [
            1,
            2,
        ]


async def test_a_lookup_may_not_write(sqlite_db: tuple[Database, Path]) -> None:
    db, _ = sqlite_db
    with pytest.raises(Exception, match="readonly"):
        async with db.lookup_session() as session:
            await session.execute(text("INSERT INTO marks VALUES (1)"))
    assert await _marks(db) == []


async def _writer(db: Database) -> _sqlite_inline.InlineConnection:
    async with db.session() as session:
        raw = await (await session.connection()).get_raw_connection()
        connection: _sqlite_inline.InlineConnection = raw.driver_connection
    return connection


async def _write_then_fail(db: Database, n: int) -> None:
    async with db.session() as session:
        await session.execute(text("INSERT INTO marks VALUES (:n)"), {"n": n})
        raise RuntimeError("rolled back")


async def test_small_commits_run_in_place(sqlite_db: tuple[Database, Path]) -> None:
    db, path = sqlite_db
    connection = await _writer(db)
    sent = connection._sent
    for n in range(5):
        await _write(db, n)
    assert connection._sent == sent  # five commits, not one call on the worker thread
    assert await _marks(db) == [0, 1, 2, 3, 4]
    check = sqlite3.connect(path)
    assert check.execute("SELECT count(*) FROM marks").fetchone() == (5,)
    check.close()


async def test_a_commit_of_many_rows_goes_to_the_worker_thread(
    sqlite_db: tuple[Database, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, _ = sqlite_db
    monkeypatch.setattr(_sqlite_inline, "INLINE_COMMIT_ROWS", 3)
    connection = await _writer(db)
    sent = connection._sent
    async with db.session() as session:
        for n in range(3):
            await session.execute(text("INSERT INTO marks VALUES (:n)"), {"n": n})
    assert connection._sent == sent
    with pytest.raises(RuntimeError):  # its row counts toward no commit
        await _write_then_fail(db, 9)
    async with db.session() as session:
        for n in range(3, 7):
            await session.execute(text("INSERT INTO marks VALUES (:n)"), {"n": n})
    assert connection._sent == sent + 1
    assert await _marks(db) == list(range(7))
