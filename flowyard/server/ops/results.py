"""The result store: a workspace's cached and persisted task results, as bytes.

Shared by every run of the workspace (a cache hit in one run reads what
another wrote), so run tokens may read and write any key of their workspace.
Each object is size-limited, and the workspace's total is capped: expired
objects are purged first, then the total after the write is checked under
the workspace lock (``FOR UPDATE`` on PostgreSQL), so concurrent writers
cannot overshoot it together.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from flowyard.server.db import models as m
from flowyard.server.ops import flow_runs
from flowyard.server.ops.auth import Principal
from flowyard.server.ops.errors import InvalidInput, NotFound


class TooLarge(InvalidInput):
    """A value or body over its size limit; names the field and the limit."""

    status_code = 413


def _now() -> datetime:
    return datetime.now(UTC)


def _mib(size: int) -> str:
    return f"{size / 1024**2:.1f} MiB"


async def _by_key(
    session: AsyncSession, workspace_id: uuid.UUID, key: str, *, with_data: bool = False
) -> m.Result | None:
    query = select(m.Result).where(m.Result.workspace_id == workspace_id, m.Result.key == key)
    if not with_data:  # up to the object size limit: load it only to serve it
        query = query.options(defer(m.Result.data))
    return (await session.execute(query)).scalar_one_or_none()


async def _used(session: AsyncSession, workspace_id: uuid.UUID, except_key: str) -> int:
    query = select(func.coalesce(func.sum(m.Result.size), 0)).where(
        m.Result.workspace_id == workspace_id, m.Result.key != except_key
    )
    return int((await session.execute(query)).scalar_one())


async def put_result(
    session: AsyncSession,
    principal: Principal,
    key: str,
    data: bytes,
    *,
    max_bytes: int,
    quota_bytes: int,
    expires_in: int | None = None,
) -> tuple[m.Result, bool]:
    """Store ``data`` under ``key`` (replacing any). Returns (row, created)."""
    if len(data) > max_bytes:
        raise TooLarge("body", f"a result may be at most {max_bytes} bytes; got {len(data)}")
    now = _now()
    await flow_runs.lock_workspace(session, principal.workspace_id)
    await session.execute(
        delete(m.Result).where(
            m.Result.workspace_id == principal.workspace_id,
            m.Result.expires.is_not(None),
            m.Result.expires <= now,
        )
    )
    used = await _used(session, principal.workspace_id, key)
    if used + len(data) > quota_bytes:
        raise TooLarge(
            "body",
            f"the workspace's results would use {_mib(used + len(data))}, over its quota "
            f"of {_mib(quota_bytes)} (FLOWYARD_RESULTS_QUOTA_BYTES); delete results or "
            "store them with an expiry",
        )
    expires = now + timedelta(seconds=expires_in) if expires_in is not None else None
    # Under the workspace lock no other writer can create this key meanwhile.
    row = await _by_key(session, principal.workspace_id, key)
    created = row is None
    if row is None:
        row = m.Result(workspace_id=principal.workspace_id, key=key)
        session.add(row)
    row.data = data
    row.size = len(data)
    row.expires = expires
    row.created = now
    await session.flush()
    return row, created


async def read_result(
    session: AsyncSession, principal: Principal, key: str, *, with_data: bool = True
) -> m.Result:
    """A live result; an expired one is as missing."""
    row = await _by_key(session, principal.workspace_id, key, with_data=with_data)
    if row is None or (row.expires is not None and row.expires <= _now()):
        raise NotFound("result", repr(key))
    return row


async def delete_result(session: AsyncSession, principal: Principal, key: str) -> None:
    row = await read_result(session, principal, key, with_data=False)
    await session.execute(delete(m.Result).where(m.Result.id == row.id))
