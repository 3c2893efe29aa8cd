"""Fixtures shared by every test layer.

Every test gets its own ``FLOWYARD_HOME`` so nothing touches ``~/.flowyard``.
PostgreSQL: one throwaway database per test session on 127.0.0.1:5432
(``FLOWYARD_TEST_PG`` overrides the admin URL). Missing PostgreSQL is a skip
with the reason on a laptop and a failure when ``CI`` is set.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from flowyard.server.db import Database, create_database
from flowyard.server.db.migrate import upgrade
from flowyard.settings import get_settings

PG_ADMIN_URL = os.environ.get(
    "FLOWYARD_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
T = TypeVar("T")
IN_CI = bool(os.environ.get("CI"))


def missing_feature(reason: str) -> None:
    """Skip locally, fail in CI: CI must prove the real thing works."""
    if IN_CI:
        pytest.fail(f"CI requires this: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def flowyard_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "flowyard-home"
    monkeypatch.setenv("FLOWYARD_HOME", str(home))
    for var in ("FLOWYARD_API_URL", "FLOWYARD_API_KEY", "FLOWYARD_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


async def _pg_admin(sql: str) -> None:
    import asyncpg

    dsn = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync or async code (on its own thread)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def create_pg_database(name: str) -> str:
    try:
        run_blocking(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        missing_feature(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_pg_database(name: str) -> None:
    run_blocking(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free local port for the whole session: a real S3 API."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database for this test session, migrated to head."""
    name = f"flowyard_test_{uuid.uuid4().hex[:10]}"
    url = create_pg_database(name)

    async def migrate() -> None:
        database = create_database(url)
        await upgrade(database)
        await database.dispose()

    run_blocking(migrate())
    yield url
    drop_pg_database(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied per test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"

    async def migrate() -> None:
        database = create_database(f"sqlite+aiosqlite:///{path}")
        await upgrade(database)
        await database.dispose()

    run_blocking(migrate())
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database on each dialect."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "test.db"
        shutil.copyfile(template, target)
        return f"sqlite+aiosqlite:///{target}"
    url: str = request.getfixturevalue("postgres_url")
    run_blocking(_truncate_all(url))
    return url


async def _truncate_all(url: str) -> None:
    from flowyard.server.db.models import Base

    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    database = create_database(url)
    try:
        async with database.engine.begin() as conn:
            await conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await database.dispose()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = create_database(database_url)
    yield database
    await database.dispose()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked ``postgres`` runs only on the PostgreSQL variant of ``database_url``."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_sqlite = callspec is not None and callspec.params.get("database_url") == "sqlite"
        if on_sqlite and item.get_closest_marker("postgres") is not None:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
