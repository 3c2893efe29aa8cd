"""The SQL that differs between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, exists, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

AnySelect = TypeVar("AnySelect", bound=Select[*tuple[Any, ...]])


def dialect_of(session: AsyncSession) -> str:
    bind = session.get_bind()
    return str(bind.dialect.name)


def json_list_contains(dialect: str, column: Any, value: str) -> ColumnElement[bool]:
    """``value in column`` for a JSON list column."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB  # loaded only where it is used

        return column.op("@>")(func.cast(literal(json.dumps([value])), JSONB))  # type: ignore[no-any-return]
    each = func.json_each(column).table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value == value))


def utc_date(dialect: str, column: Any) -> ColumnElement[str]:
    """The UTC calendar day of a datetime column, as ``YYYY-MM-DD`` text."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.substr(column, 1, 10)  # SQLite stores UTC as 'YYYY-MM-DD HH:MM:SS...'


def lock_rows(
    dialect: str,
    query: AnySelect,
    *,
    skip_locked: bool = False,
    key_share: bool = False,
    of: Any = None,
) -> AnySelect:
    """Row locks on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers.

    ``key_share`` takes ``FOR NO KEY UPDATE``: it serialises writers of the row
    without blocking inserts of rows that reference it by foreign key. ``of``
    names the table whose rows are locked when the query joins others.
    """
    if dialect == "postgresql":
        return query.with_for_update(skip_locked=skip_locked, key_share=key_share, of=of)
    return query


async def notify(session: AsyncSession, channel: str) -> None:
    """PostgreSQL NOTIFY, delivered when the transaction commits."""
    if dialect_of(session) == "postgresql":
        await session.execute(select(func.pg_notify(channel, "")))
