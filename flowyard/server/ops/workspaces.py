"""Workspaces and their API keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.schemas import workspaces as s
from flowyard.server.db import models as m
from flowyard.server.ops._key_cache import forget_keys
from flowyard.server.ops.auth import Principal, hash_key, new_api_key
from flowyard.server.ops.errors import Conflict, NotFound

DEFAULT_WORKSPACE = "default"


async def create_workspace(session: AsyncSession, data: s.WorkspaceCreate) -> m.Workspace:
    if await _by_name(session, data.name) is not None:
        raise Conflict(f"workspace {data.name!r} already exists")
    row = m.Workspace(
        name=data.name,
        monthly_limit_minutes=data.monthly_limit_minutes,
        concurrency_limit=data.concurrency_limit,
    )
    session.add(row)
    await session.flush()
    return row


async def _by_name(session: AsyncSession, name: str) -> m.Workspace | None:
    return (
        await session.execute(select(m.Workspace).where(m.Workspace.name == name))
    ).scalar_one_or_none()


async def read_workspace(session: AsyncSession, workspace_id: uuid.UUID) -> m.Workspace:
    row = await session.get(m.Workspace, workspace_id)
    if row is None:
        raise NotFound("workspace", workspace_id)
    return row


async def read_workspace_by_name(session: AsyncSession, name: str) -> m.Workspace:
    row = await _by_name(session, name)
    if row is None:
        raise NotFound("workspace", repr(name))
    return row


async def list_workspaces(session: AsyncSession) -> list[m.Workspace]:
    return list((await session.execute(select(m.Workspace).order_by(m.Workspace.name))).scalars())


async def update_workspace(
    session: AsyncSession, workspace_id: uuid.UUID, data: s.WorkspaceUpdate
) -> m.Workspace:
    row = await read_workspace(session, workspace_id)
    if data.monthly_limit_minutes is not None or data.clear_monthly_limit:
        row.monthly_limit_minutes = None if data.clear_monthly_limit else data.monthly_limit_minutes
    if data.concurrency_limit is not None or data.clear_concurrency_limit:
        row.concurrency_limit = None if data.clear_concurrency_limit else data.concurrency_limit
    if data.hard_limit is not None:
        row.hard_limit = data.hard_limit
    await session.flush()
    return row


async def create_api_key(
    session: AsyncSession, workspace_id: uuid.UUID, name: str, *, admin: bool = False
) -> tuple[m.ApiKey, str]:
    """Create a key; the clear key is returned once and never stored."""
    await read_workspace(session, workspace_id)
    key, prefix = new_api_key()
    row = m.ApiKey(
        workspace_id=workspace_id, name=name, prefix=prefix, key_hash=hash_key(key), is_admin=admin
    )
    session.add(row)
    await session.flush()
    return row, key


async def list_api_keys(session: AsyncSession, principal: Principal) -> list[m.ApiKey]:
    query = (
        select(m.ApiKey)
        .where(m.ApiKey.workspace_id == principal.workspace_id)
        .order_by(m.ApiKey.created)
    )
    return list((await session.execute(query)).scalars())


async def revoke_api_key(session: AsyncSession, principal: Principal, ident: str) -> m.ApiKey:
    """Revoke by id or prefix, within the caller's workspace."""
    query = select(m.ApiKey).where(m.ApiKey.workspace_id == principal.workspace_id)
    try:
        query = query.where(m.ApiKey.id == uuid.UUID(ident))
    except ValueError:
        query = query.where(m.ApiKey.prefix == ident)
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:
        raise NotFound("API key", ident)
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        forget_keys(session)
    await session.flush()
    return row


async def bootstrap(session: AsyncSession) -> str | None:
    """First start: a default workspace and an admin key. Returns the key once, else None."""
    count = (await session.execute(select(func.count()).select_from(m.Workspace))).scalar_one()
    if count:
        return None
    try:
        async with session.begin_nested():
            workspace = await create_workspace(session, s.WorkspaceCreate(name=DEFAULT_WORKSPACE))
            _, key = await create_api_key(session, workspace.id, "admin", admin=True)
    except (IntegrityError, Conflict):
        return None  # another replica bootstrapped first
    return key
