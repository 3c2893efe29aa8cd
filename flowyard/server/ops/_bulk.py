"""Bulk writes for the rows a recorded flow writes most: task runs, their states, log lines.

A recorded flow of 1,000 trivial tasks writes some 5,000 rows. Through a Core
``insert()`` executemany, SQLAlchemy builds a parameter dict per row and runs
every value through its type's bind processor (a UTC datetime through two,
a UUID, JSON): more server time than SQLite spends storing the rows. Here the
statement (an insert, or an update by primary key) is compiled once per table
and dialect (so the placeholders and casts are the dialect's own) and the
values are converted as those processors would store them, then handed to the
driver's executemany:

- UUIDs: 32 hex digits on SQLite, as they are on PostgreSQL (ids made by
  :func:`new_ids` are 32 hex digits already, which both take);
- UTC datetimes: naive UTC text with microseconds on SQLite (the very text
  SQLAlchemy writes, so comparisons and ordering in SQL are unchanged), aware
  UTC on PostgreSQL; a naive datetime is refused, as ``UTCDateTime`` does;
- JSON: text on both (SQLAlchemy's asyncpg codecs take JSON as text).

Only these column types are known here; any other raises at compile time, so
a model change cannot slip a wrongly stored value through.
tests/integration/api/test_task_run_rows.py pins that rows written here read
back equal to rows written or changed through the ORM, on both dialects.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Integer, String, Table, Text, Uuid, bindparam, insert, update
from sqlalchemy.engine import Compiled, Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler

from flowyard.server.db._types import UTCDateTime

Encoder = Callable[[Any], Any]


def _uuid_hex(value: uuid.UUID | str | None) -> str | None:
    if isinstance(value, uuid.UUID):
        return value.hex
    return value  # None, or 32 hex digits already (see new_ids)


def _naive_utc_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:-6]  # without "+00:00"


def _aware_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC)


def _json_text(value: Any) -> str:
    return json.dumps(value)


def _encoder(table: Table, column: str, dialect: str) -> Encoder | None:
    kind = table.c[column].type
    if isinstance(kind, UTCDateTime):
        return _naive_utc_text if dialect == "sqlite" else _aware_utc
    if isinstance(kind, Uuid):
        return _uuid_hex if dialect == "sqlite" else None
    if isinstance(kind, JSON):
        return _json_text
    if isinstance(kind, Integer | String | Text):  # Text is a String; said for the reader
        return None
    raise TypeError(f"{table.name}.{column}: no bulk encoding for {kind!r}")


class _Statement:
    """A compiled statement and how to turn a row mapping into its parameters."""

    __slots__ = ("encoded", "sql", "times", "values")

    def __init__(self, table: Table, compiled: Compiled, sources: Mapping[str, str]) -> None:
        # ``sources``: placeholder name -> the row key (and column) its value comes from.
        if not isinstance(compiled, SQLCompiler):
            raise TypeError(f"{table.name}: not a SQL statement")
        order = tuple(compiled.positiontup or ())
        if len(order) < 2 or sorted(order) != sorted(sources):
            raise TypeError(f"{table.name}: expected positional placeholders for {list(sources)}")
        self.sql = compiled.string
        # A row's values in placeholder order, then the ones that need converting.
        self.values = itemgetter(*(sources[p] for p in order))
        dialect = compiled.dialect.name
        encoders = ((i, _encoder(table, sources[p], dialect)) for i, p in enumerate(order))
        encoded = [(i, e) for i, e in encoders if e is not None]
        # Times are slow to format and repeat across rows (a task run's times are
        # its states'): those go through a memo of converted values.
        self.times = tuple((i, e) for i, e in encoded if e is _naive_utc_text)
        self.encoded = tuple((i, e) for i, e in encoded if e is not _naive_utc_text)

    def params(self, row: Mapping[str, Any], memo: dict[Any, Any]) -> tuple[Any, ...]:
        values = list(self.values(row))
        for i, encode in self.encoded:
            values[i] = encode(values[i])
        for i, encode in self.times:
            value = values[i]
            text = memo.get(value)
            if text is None:
                text = memo[value] = encode(value)
            values[i] = text
        return tuple(values)


def _insert(table: Table, columns: tuple[str, ...], dialect: Dialect) -> _Statement:
    compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
    return _Statement(table, compiled, {c: c for c in columns})


def _update(table: Table, columns: tuple[str, ...], dialect: Dialect) -> _Statement:
    (key,) = table.primary_key.columns
    # Placeholders may not share a column's name in a SET clause: prefix them.
    statement = (
        update(table)
        .where(key == bindparam("by_" + key.name))
        .values({c: bindparam("to_" + c) for c in columns})
    )
    sources = {"by_" + key.name: key.name, **{"to_" + c: c for c in columns}}
    return _Statement(table, statement.compile(dialect=dialect), sources)


_statements: dict[tuple[str, str, tuple[str, ...], str], _Statement] = {}


async def _execute(
    session: AsyncSession,
    verb: str,
    table: Table,
    columns: tuple[str, ...],
    rows: Iterable[Mapping[str, Any]],
    memo: dict[Any, Any] | None,
) -> None:
    dialect = session.get_bind().dialect
    key = (verb, table.name, columns, dialect.name)
    statement = _statements.get(key)
    if statement is None:
        prepare = _insert if verb == "insert" else _update
        statement = _statements[key] = prepare(table, columns, dialect)
    memo = {} if memo is None else memo
    params = [statement.params(row, memo) for row in rows]
    if params:
        connection = await session.connection()
        await connection.exec_driver_sql(statement.sql, params)


def new_ids(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs as 32 hex digits, for rows written here.

    One read of the system's random source for all of them, and no UUID objects:
    both dialects take the text for a UUID column.
    """
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = bytes(b & 0x0F | 0x40 for b in raw[6::16])  # version 4
    raw[8::16] = bytes(b & 0x3F | 0x80 for b in raw[8::16])  # RFC 4122 variant
    text = raw.hex()
    return [text[i : i + 32] for i in range(0, 32 * count, 32)]


async def insert_rows(
    session: AsyncSession,
    table: Table,
    columns: tuple[str, ...],
    rows: Iterable[Mapping[str, Any]],
    *,
    memo: dict[Any, Any] | None = None,
) -> None:
    """Insert ``rows`` (each a mapping holding every one of ``columns``) in one executemany.

    ``memo`` (converted values by value) may be shared by calls on the same rows' values.
    """
    await _execute(session, "insert", table, columns, rows, memo)


async def update_rows(
    session: AsyncSession,
    table: Table,
    columns: tuple[str, ...],
    rows: Iterable[Mapping[str, Any]],
    *,
    memo: dict[Any, Any] | None = None,
) -> None:
    """Set ``columns`` of existing rows, each found by its primary key (also in the mapping)."""
    await _execute(session, "update", table, columns, rows, memo)
