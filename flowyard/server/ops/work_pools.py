"""Work pools: managed (served by the server's dispatcher) or process (a worker)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.schemas import work_pools as s
from flowyard.server.db import models as m
from flowyard.server.ops.auth import Principal
from flowyard.server.ops.errors import Conflict, InvalidInput, NotFound
from flowyard.server.ops.validation import check_schema, defaults_of, validate


def _check_template(template: dict[str, Any]) -> None:
    variables = template.get("variables")
    if not isinstance(variables, dict):
        raise InvalidInput("base_job_template.variables", "expected a JSON schema object")
    check_schema(variables, "base_job_template.variables")


async def create_work_pool(
    session: AsyncSession, principal: Principal, data: s.WorkPoolCreate
) -> m.WorkPool:
    principal.require_api_key()
    if await _by_name(session, principal.workspace_id, data.name) is not None:
        raise Conflict(f"work pool {data.name!r} already exists")
    template = data.base_job_template or s.default_base_job_template(data.type)
    _check_template(template)
    row = m.WorkPool(
        workspace_id=principal.workspace_id,
        name=data.name,
        type=data.type.value,
        description=data.description,
        paused=data.paused,
        concurrency_limit=data.concurrency_limit,
        base_job_template=template,
        isolation=data.isolation.value,
    )
    session.add(row)
    await session.flush()
    return row


async def _by_name(session: AsyncSession, workspace_id: uuid.UUID, name: str) -> m.WorkPool | None:
    query = select(m.WorkPool).where(
        m.WorkPool.workspace_id == workspace_id, m.WorkPool.name == name
    )
    return (await session.execute(query)).scalar_one_or_none()


async def read_work_pool(session: AsyncSession, principal: Principal, name: str) -> m.WorkPool:
    row = await _by_name(session, principal.workspace_id, name)
    if row is None:
        raise NotFound("work pool", repr(name))
    return row


async def read_work_pool_by_id(
    session: AsyncSession, workspace_id: uuid.UUID, pool_id: uuid.UUID
) -> m.WorkPool:
    row = await session.get(m.WorkPool, pool_id)
    if row is None or row.workspace_id != workspace_id:
        raise NotFound("work pool", pool_id)
    return row


async def list_work_pools(session: AsyncSession, principal: Principal) -> list[m.WorkPool]:
    query = (
        select(m.WorkPool)
        .where(m.WorkPool.workspace_id == principal.workspace_id)
        .order_by(m.WorkPool.name)
    )
    return list((await session.execute(query)).scalars())


async def update_work_pool(
    session: AsyncSession, principal: Principal, name: str, data: s.WorkPoolUpdate
) -> m.WorkPool:
    principal.require_api_key()
    row = await read_work_pool(session, principal, name)
    fields = data.model_dump(exclude_unset=True)
    if "base_job_template" in fields or "isolation" in fields:
        # The resource policy and isolation are the operator's, not a deployer's.
        principal.require_admin()
    if data.base_job_template is not None:
        _check_template(data.base_job_template)
        row.base_job_template = data.base_job_template
    if data.isolation is not None:
        row.isolation = data.isolation.value
    if data.description is not None:
        row.description = data.description
    if data.paused is not None:
        row.paused = data.paused
    if "concurrency_limit" in fields:
        row.concurrency_limit = data.concurrency_limit
    await session.flush()
    return row


async def delete_work_pool(session: AsyncSession, principal: Principal, name: str) -> None:
    principal.require_api_key()
    row = await read_work_pool(session, principal, name)
    await session.execute(delete(m.WorkPool).where(m.WorkPool.id == row.id))


def variables_schema(pool: m.WorkPool) -> dict[str, Any]:
    variables: dict[str, Any] = pool.base_job_template.get("variables", {})
    return variables


def resolve_job_variables(
    pool: m.WorkPool | None, *layers: dict[str, Any], field: str = "job_variables"
) -> dict[str, Any]:
    """Pool defaults, then each override layer; validated against the pool's template."""
    if pool is None:
        merged: dict[str, Any] = {}
        for layer in layers:
            merged.update(layer)
        return merged
    schema = variables_schema(pool)
    for layer in layers:
        validate(layer, schema, field)
    merged = defaults_of(schema)
    for layer in layers:
        merged.update(layer)
    validate(merged, schema, field)
    return merged
