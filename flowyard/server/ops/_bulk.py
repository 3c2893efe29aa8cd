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
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    ColumnElement,
    Integer,
    String,
    Table,
    Text,
    Uuid,
    any_,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Compiled, Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.compiler import SQLCompiler

from flowyard.server.db._types import UTCDateTime

Encoder = Callable[[Any], Any]


def _uuid_hex(value: uuid.UUID | str | None) -> str | None:
    if isinstance(value, uuid.UUID):
        return value.hex
    return value  # None, or 32 hex digits already (see new_ids)


_TEXT_OR_NONE = frozenset({str, type(None)})


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
    if value == []:  # a task run's tags, nearly always
        return "[]"
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

    __slots__ = ("distinct", "each", "sql", "values")

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
        # Times are slow to format and repeat across rows (a task run's times
        # are its states'): converted once per distinct value. The rest one by
        # one (hashing a UUID costs more than writing its hex digits).
        times: tuple[Encoder, ...] = (_naive_utc_text, _aware_utc)
        self.distinct = tuple((i, e) for i, e in encoded if e in times)
        self.each = tuple((i, e) for i, e in encoded if e not in times)

    def params(
        self, rows: Iterable[Mapping[str, Any]], memo: dict[Encoder, dict[Any, Any]]
    ) -> list[tuple[Any, ...]]:
        """The rows' parameters, converted column by column (a loop in C where it can be)."""
        columns: list[Iterable[Any]] = list(zip(*map(self.values, rows), strict=True))
        if not columns:
            return []
        for i, encode in self.distinct:
            known = memo.setdefault(encode, {})
            column = columns[i]
            for value in set(column).difference(known):
                known[value] = encode(value)
            columns[i] = map(known.__getitem__, column)
        for i, convert in self.each:
            column = columns[i]
            if convert is _uuid_hex and _TEXT_OR_NONE.issuperset(map(type, column)):
                continue  # ids written as text already (see new_ids): nothing to convert
            columns[i] = map(convert, column)
        return list(zip(*columns, strict=True))


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
    memo: dict[Encoder, dict[Any, Any]] | None,
) -> None:
    dialect = session.get_bind().dialect
    key = (verb, table.name, columns, dialect.name)
    statement = _statements.get(key)
    if statement is None:
        prepare = _insert if verb == "insert" else _update
        statement = _statements[key] = prepare(table, columns, dialect)
    params = statement.params(rows, {} if memo is None else memo)
    if params:
        connection = await session.connection()
        await connection.exec_driver_sql(statement.sql, params)


def new_ids(count: int) -> list[str]:
    """``count`` time-ordered (version 7) UUIDs as 32 hex digits, for rows written here.

    They begin with the time (milliseconds, then the millisecond's fraction), so
    the rows of a batch land next to each other at the end of their table's
    primary-key index rather than all over it (fewer pages touched and written
    per commit); the last 62 bits are random, from one read of the system's
    random source for all of them. No UUID objects: both dialects take the text
    for a UUID column.
    """
    ms, ns = divmod(time.time_ns(), 1_000_000)
    head = f"{ms:012x}7{ns * 4096 // 1_000_000:03x}"
    raw = bytearray(os.urandom(8 * count))
    raw[0::8] = bytes(b & 0x3F | 0x80 for b in raw[0::8])  # RFC 4122 variant
    text = raw.hex()
    return [head + text[i : i + 16] for i in range(0, 16 * count, 16)]


def in_key_list(
    dialect: str, column: ColumnElement[uuid.UUID] | InstrumentedAttribute[uuid.UUID], name: str
) -> ColumnElement[bool]:
    """``column IN <the list in parameter name>``: one parameter however long the list.

    SQLAlchemy's ``in_()`` of a list renders and converts a placeholder per item
    on every execution; a batch names hundreds of task runs. Pass the list as
    :func:`key_list` makes it.
    """
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(Uuid())))
    items = func.json_each(bindparam(name, type_=Text())).table_valued("value")
    return column.in_(select(items.c.value))


def key_list(dialect: str, keys: Iterable[uuid.UUID]) -> Any:
    """The parameter for :func:`in_key_list`: the UUIDs as each dialect stores them."""
    if dialect == "postgresql":
        return list(keys)
    return json.dumps([k.hex for k in keys])


async def insert_rows(
    session: AsyncSession,
    table: Table,
    columns: tuple[str, ...],
    rows: Iterable[Mapping[str, Any]],
    *,
    memo: dict[Encoder, dict[Any, Any]] | None = None,
) -> None:
    """Insert ``rows`` (each a mapping holding every one of ``columns``) in one executemany.

    ``memo`` (converted values by encoder and value) may be shared by calls on the same
    rows' values.
    """
    await _execute(session, "insert", table, columns, rows, memo)


async def update_rows(
    session: AsyncSession,
    table: Table,
    columns: tuple[str, ...],
    rows: Iterable[Mapping[str, Any]],
    *,
    memo: dict[Encoder, dict[Any, Any]] | None = None,
) -> None:
    """Set ``columns`` of existing rows, each found by its primary key (also in the mapping)."""
    await _execute(session, "update", table, columns, rows, memo)
