"""Apply migrations on start: one Alembic tree for SQLite and PostgreSQL.

The common case (already at head) is answered from the ``alembic_version``
table alone, without importing Alembic, which keeps server start-up fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from flowyard.server.db.engine import Database

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Bumped with every new revision file; a test checks it matches Alembic's head.
HEAD_REVISION = "0004"


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def current_revision(db: Database) -> str | None:
    async with db.engine.connect() as conn:
        try:
            row = (await conn.execute(text("SELECT version_num FROM alembic_version"))).first()
        except DBAPIError:
            return None
        return str(row[0]) if row else None


async def upgrade(db: Database) -> bool:
    """Bring the schema to head. Returns True when a migration ran."""
    if await current_revision(db) == HEAD_REVISION:
        return False

    def _run(connection: Connection) -> None:
        from alembic import command

        command.upgrade(alembic_config(connection), "head")

    async with db.engine.begin() as conn:
        await conn.run_sync(_run)
    return True
