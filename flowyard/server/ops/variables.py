"""Variables: named JSON values of a workspace, readable by its runs.

A value is checked before it is stored, the same way on both databases:
at most 64 KiB encoded, at most 64 levels deep, no NaN or Infinity (not
JSON), and no NUL character in any string (PostgreSQL's JSONB cannot hold
one). The stored column wraps the value as ``{"value": <json>}`` so that
scalars and null round-trip unchanged.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.schemas import variables as s
from flowyard.server.db import models as m
from flowyard.server.ops.auth import Principal
from flowyard.server.ops.errors import InvalidInput, NotFound
from flowyard.server.ops.results import TooLarge

MAX_DEPTH = 64
MAX_PAGE = 500
# An escaped NUL in encoded JSON: "\u0000" preceded by an even run of backslashes.
_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def check_value(value: Any, field: str = "value", max_bytes: int = s.MAX_VARIABLE_BYTES) -> None:
    """Refuse a value that is not storable JSON within the limits; names ``field``."""
    if _depth(value) > MAX_DEPTH:
        raise InvalidInput(field, f"is nested more than {MAX_DEPTH} levels deep")
    try:
        encoded = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (ValueError, TypeError) as exc:  # NaN or Infinity, mostly
        raise InvalidInput(field, f"is not valid JSON: {exc}") from None
    # json.dumps always escapes control characters, NUL included.
    if "\\u0000" in encoded and _NUL.search(encoded):
        raise InvalidInput(field, "strings must not contain NUL (\\u0000) characters")
    try:
        size = len(encoded.encode())
    except UnicodeEncodeError:
        raise InvalidInput(field, "strings must be valid Unicode (unpaired surrogate)") from None
    if size > max_bytes:
        raise TooLarge(field, f"is {size} bytes as JSON; the limit is {max_bytes}")


async def _by_name(session: AsyncSession, workspace_id: uuid.UUID, name: str) -> m.Variable | None:
    query = select(m.Variable).where(
        m.Variable.workspace_id == workspace_id, m.Variable.name == name
    )
    return (await session.execute(query)).scalar_one_or_none()


async def set_variable(
    session: AsyncSession, principal: Principal, name: str, data: s.VariableSet
) -> tuple[m.Variable, bool]:
    """Create or replace a variable. Returns (row, created)."""
    principal.require_api_key()
    check_value(data.value)
    now = datetime.now(UTC)
    row = await _by_name(session, principal.workspace_id, name)
    if row is None:
        row = m.Variable(
            workspace_id=principal.workspace_id,
            name=name,
            value={"value": data.value},
            tags=list(data.tags),
            created=now,
            updated=now,
        )
        try:
            async with session.begin_nested():
                session.add(row)
            return row, True
        except IntegrityError:  # a concurrent writer created it first: replace theirs
            row = await _by_name(session, principal.workspace_id, name)
            if row is None:
                raise
    row.value = {"value": data.value}
    row.tags = list(data.tags)
    row.updated = now
    await session.flush()
    return row, False


async def read_variable(session: AsyncSession, principal: Principal, name: str) -> m.Variable:
    row = await _by_name(session, principal.workspace_id, name)
    if row is None:
        raise NotFound("variable", repr(name))
    return row


async def list_variables(
    session: AsyncSession,
    principal: Principal,
    *,
    prefix: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[m.Variable], str | None]:
    """Variables by name; the cursor is the last name of the previous page."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("limit", f"expected 1..{MAX_PAGE}")
    v = m.Variable
    query = select(v).where(v.workspace_id == principal.workspace_id)
    if prefix:
        # substr, not LIKE: SQLite's LIKE ignores case and would differ from PostgreSQL.
        query = query.where(func.substr(v.name, 1, len(prefix)) == prefix)
    if cursor:
        query = query.where(v.name > cursor)
    rows = list((await session.execute(query.order_by(v.name).limit(limit + 1))).scalars())
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], rows[limit - 1].name


async def delete_variable(session: AsyncSession, principal: Principal, name: str) -> None:
    principal.require_api_key()
    row = await read_variable(session, principal, name)
    await session.execute(delete(m.Variable).where(m.Variable.id == row.id))
