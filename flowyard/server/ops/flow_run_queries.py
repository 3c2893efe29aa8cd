"""Listing flow runs: filters, sort, keyset (cursor) pagination, and wire shapes."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.schemas import flow_runs as s
from flowyard.schemas.states import StateType
from flowyard.server.db import models as m
from flowyard.server.db.dialect import dialect_of, json_list_contains
from flowyard.server.ops.auth import Principal
from flowyard.server.ops.errors import InvalidInput

MAX_PAGE = 500


@dataclass(frozen=True)
class FlowRunFilter:
    states: Sequence[StateType] = ()
    state_names: Sequence[str] = ()
    deployment_id: uuid.UUID | None = None
    work_pool_id: uuid.UUID | None = None
    flow_name: str | None = None
    tags: Sequence[str] = field(default_factory=tuple)
    created_after: datetime | None = None
    created_before: datetime | None = None
    parent_task_run_id: uuid.UUID | None = None


def _encode(sort_value: datetime, run_id: uuid.UUID) -> str:
    raw = json.dumps([sort_value.isoformat(), str(run_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, ident = json.loads(raw)
        return datetime.fromisoformat(value), uuid.UUID(ident)
    except (ValueError, TypeError):
        raise InvalidInput("cursor", "not a cursor returned by this listing") from None


async def list_flow_runs(
    session: AsyncSession,
    principal: Principal,
    flt: FlowRunFilter,
    *,
    sort: str = "created_desc",
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[m.FlowRun], str | None]:
    principal.require_api_key()
    if sort not in s.SORTS:
        raise InvalidInput("sort", f"expected one of {', '.join(s.SORTS)}")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("limit", f"expected 1..{MAX_PAGE}")
    dialect = dialect_of(session)
    column = m.FlowRun.created if sort.startswith("created") else m.FlowRun.expected_start_time
    descending = sort.endswith("desc")
    query = select(m.FlowRun).where(m.FlowRun.workspace_id == principal.workspace_id)
    if flt.states:
        query = query.where(m.FlowRun.state_type.in_([t.value for t in flt.states]))
    if flt.state_names:
        query = query.where(m.FlowRun.state_name.in_(list(flt.state_names)))
    if flt.deployment_id is not None:
        query = query.where(m.FlowRun.deployment_id == flt.deployment_id)
    if flt.work_pool_id is not None:
        query = query.where(m.FlowRun.work_pool_id == flt.work_pool_id)
    if flt.flow_name is not None:
        query = query.where(m.FlowRun.flow_name == flt.flow_name)
    if flt.parent_task_run_id is not None:
        query = query.where(m.FlowRun.parent_task_run_id == flt.parent_task_run_id)
    for tag in flt.tags:
        query = query.where(json_list_contains(dialect, m.FlowRun.tags, tag))
    if flt.created_after is not None:
        query = query.where(m.FlowRun.created >= flt.created_after)
    if flt.created_before is not None:
        query = query.where(m.FlowRun.created < flt.created_before)
    if cursor:
        value, ident = _decode(cursor)
        if descending:
            query = query.where(or_(column < value, and_(column == value, m.FlowRun.id < ident)))
        else:
            query = query.where(or_(column > value, and_(column == value, m.FlowRun.id > ident)))
    order = (
        (column.desc(), m.FlowRun.id.desc()) if descending else (column.asc(), m.FlowRun.id.asc())
    )
    rows = list((await session.execute(query.order_by(*order).limit(limit + 1))).scalars())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        key = last.created if sort.startswith("created") else last.expected_start_time
        if key is not None:
            next_cursor = _encode(key, last.id)
    return rows, next_cursor


async def count_by_state(
    session: AsyncSession,
    principal: Principal,
    *,
    created_after: datetime | None = None,
    work_pool_id: uuid.UUID | None = None,
) -> dict[StateType, int]:
    """How many of the workspace's runs (created since, of a pool) are in each state."""
    principal.require_api_key()
    query = select(m.FlowRun.state_type, func.count()).where(
        m.FlowRun.workspace_id == principal.workspace_id
    )
    if created_after is not None:
        query = query.where(m.FlowRun.created >= created_after)
    if work_pool_id is not None:
        query = query.where(m.FlowRun.work_pool_id == work_pool_id)
    rows = (await session.execute(query.group_by(m.FlowRun.state_type))).all()
    return {StateType(t): int(n) for t, n in rows}


# The wire fields a run's row holds itself (the names come from their own rows).
_ROW_FIELDS = frozenset(s.FlowRun.model_fields) - {"deployment_name", "work_pool_name"}


def _wire(row: m.FlowRun, deployment_name: str | None, work_pool_name: str | None) -> s.FlowRun:
    """The row's wire shape, validated from its loaded values when it holds them all:
    reading 35 attributes through the ORM cost a list of runs several times more."""
    loaded = row.__dict__
    if not loaded.keys() >= _ROW_FIELDS:  # some expired or not loaded: read them
        item = s.FlowRun.model_validate(row)
        item.deployment_name, item.work_pool_name = deployment_name, work_pool_name
        return item
    return s.FlowRun.model_validate(
        {**loaded, "deployment_name": deployment_name, "work_pool_name": work_pool_name}
    )


# Built once: building an IN clause over the ids cost more than the query.
_DEPLOYMENT_NAMES = select(m.Deployment.id, m.Deployment.flow_name, m.Deployment.name).where(
    m.Deployment.id.in_(bindparam("ids", expanding=True))
)
_POOL_NAMES = select(m.WorkPool.id, m.WorkPool.name).where(
    m.WorkPool.id.in_(bindparam("ids", expanding=True))
)


async def describe(session: AsyncSession, rows: Sequence[m.FlowRun]) -> list[s.FlowRun]:
    """Wire shapes with deployment and pool names resolved in one query each."""
    dep_ids = {r.deployment_id for r in rows if r.deployment_id}
    pool_ids = {r.work_pool_id for r in rows if r.work_pool_id}
    deps: dict[uuid.UUID, str] = {}
    pools: dict[uuid.UUID, str] = {}
    if dep_ids:
        found = await session.execute(_DEPLOYMENT_NAMES, {"ids": list(dep_ids)})
        deps = {i: f"{f}/{n}" for i, f, n in found.all()}
    if pool_ids:
        found_pools = await session.execute(_POOL_NAMES, {"ids": list(pool_ids)})
        pools = {i: n for i, n in found_pools.all()}
    return [
        _wire(
            r,
            deps.get(r.deployment_id) if r.deployment_id else None,
            pools.get(r.work_pool_id) if r.work_pool_id else None,
        )
        for r in rows
    ]
