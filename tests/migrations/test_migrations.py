"""Upgrading an empty database yields exactly the models, on both dialects."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from flowyard.server.db import create_database
from flowyard.server.db.migrate import HEAD_REVISION, alembic_config, current_revision, upgrade
from flowyard.server.db.models import Base
from tests.conftest import create_pg_database, drop_pg_database


async def _diff_after_upgrade(url: str) -> list[Any]:
    database = create_database(url)
    try:
        assert await current_revision(database) is None
        assert await upgrade(database) is True
        assert await current_revision(database) == HEAD_REVISION
        assert await upgrade(database) is False  # second start: nothing to do

        def compare(connection: Any) -> list[Any]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))

        async with database.engine.connect() as conn:
            return await conn.run_sync(compare)
    finally:
        await database.dispose()


def test_head_revision_constant_matches_the_migration_tree() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_current_head() == HEAD_REVISION


async def test_upgrading_an_empty_sqlite_database_yields_exactly_the_models(
    tmp_path: Path,
) -> None:
    diff = await _diff_after_upgrade(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    assert diff == []


@pytest.mark.postgres
async def test_upgrading_an_empty_postgresql_database_yields_exactly_the_models() -> None:
    name = f"flowyard_mig_{uuid.uuid4().hex[:10]}"
    url = create_pg_database(name)
    try:
        diff = await _diff_after_upgrade(url)
    finally:
        drop_pg_database(name)
    assert diff == []
