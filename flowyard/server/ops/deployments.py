"""Deployments: create-or-update by (flow name, name), like Prefect's deploy."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.schemas import deployments as s
from flowyard.server.db import models as m
from flowyard.server.ops import schedule_checks, work_pools
from flowyard.server.ops.auth import Principal
from flowyard.server.ops.errors import InvalidInput, NotFound
from flowyard.server.ops.validation import check_schema, validate


async def _pool(session: AsyncSession, principal: Principal, name: str | None) -> m.WorkPool | None:
    if name is None:
        return None
    try:
        return await work_pools.read_work_pool(session, principal, name)
    except NotFound:
        raise InvalidInput(
            "work_pool_name",
            f"no work pool named {name!r}; create it with "
            f"`flowyard work-pool create {name} --type managed`",
        ) from None


def _partial(schema: dict[str, Any]) -> dict[str, Any]:
    # Defaults may leave required parameters for the run to supply.
    return {k: v for k, v in schema.items() if k != "required"}


_LOCAL_REFUSED = (
    "is refused: this server does not run code from its own disk "
    "(its operator can allow it with FLOWYARD_ALLOW_LOCAL_SOURCES=true); "
    "push the code to a git host or object storage and deploy from that URL"
)


def _check_source(data: s.DeploymentCreate, allow_local: bool) -> None:
    source = data.source
    if isinstance(source, s.LocalSourceSpec) and not allow_local:
        raise InvalidInput("source", f"a local directory {_LOCAL_REFUSED}")
    if isinstance(source, s.GitSourceSpec):
        url = source.url.strip()
        if "::" in url.split("/")[0] or url.startswith(("ext::", "fd::")):
            raise InvalidInput("source.url", "git transport helpers (ext::, fd::) are refused")
        if url.startswith("file://") and not allow_local:
            raise InvalidInput("source.url", f"a file:// repository {_LOCAL_REFUSED}")


async def upsert_deployment(
    session: AsyncSession,
    principal: Principal,
    data: s.DeploymentCreate,
    *,
    allow_local_sources: bool = False,
) -> m.Deployment:
    principal.require_api_key()
    _check_source(data, allow_local_sources)
    await schedule_checks.check_schedules(data.schedules)
    pool = await _pool(session, principal, data.work_pool_name)
    if data.parameter_schema:
        check_schema(data.parameter_schema, "parameter_schema")
        validate(data.parameters, _partial(data.parameter_schema), "parameters")
    work_pools.resolve_job_variables(pool, data.job_variables)
    row = await _by_name(session, principal.workspace_id, data.flow_name, data.name)
    if row is None:
        row = m.Deployment(
            workspace_id=principal.workspace_id, flow_name=data.flow_name, name=data.name
        )
        session.add(row)
    row.work_pool_id = pool.id if pool else None
    row.source = data.source.model_dump(mode="json") if data.source else {}
    row.entrypoint = data.entrypoint
    row.pull_steps = data.pull_steps
    row.parameters = data.parameters
    row.parameter_schema = data.parameter_schema
    row.job_variables = data.job_variables
    row.tags = data.tags
    row.version = data.version
    row.description = data.description
    row.paused = data.paused
    row.concurrency_limit = data.concurrency_limit
    await session.flush()
    await _replace_schedules(session, row, data.schedules)
    return row


async def _replace_schedules(
    session: AsyncSession, row: m.Deployment, schedules: list[s.DeploymentScheduleCreate]
) -> None:
    await session.execute(
        delete(m.DeploymentSchedule).where(m.DeploymentSchedule.deployment_id == row.id)
    )
    for item in schedules:
        session.add(
            m.DeploymentSchedule(
                workspace_id=row.workspace_id,
                deployment_id=row.id,
                schedule=item.schedule.model_dump(mode="json"),
                active=item.active,
                catchup=item.catchup,
            )
        )
    await session.flush()


async def _by_name(
    session: AsyncSession, workspace_id: uuid.UUID, flow_name: str, name: str
) -> m.Deployment | None:
    query = select(m.Deployment).where(
        m.Deployment.workspace_id == workspace_id,
        m.Deployment.flow_name == flow_name,
        m.Deployment.name == name,
    )
    return (await session.execute(query)).scalar_one_or_none()


async def read_deployment(
    session: AsyncSession, principal: Principal, deployment_id: uuid.UUID
) -> m.Deployment:
    row = await session.get(m.Deployment, deployment_id)
    if row is None or row.workspace_id != principal.workspace_id:
        raise NotFound("deployment", deployment_id)
    if principal.is_run_token:
        run = await session.get(m.FlowRun, principal.flow_run_id)
        if run is None or run.deployment_id != row.id:
            raise NotFound("deployment", deployment_id)
    return row


async def read_deployment_by_name(
    session: AsyncSession, principal: Principal, full_name: str
) -> m.Deployment:
    flow_name, sep, name = full_name.partition("/")
    if not sep:
        raise InvalidInput("name", "expected 'flow-name/deployment-name'")
    row = await _by_name(session, principal.workspace_id, flow_name, name)
    if row is None:
        raise NotFound("deployment", repr(full_name))
    return await read_deployment(session, principal, row.id)


async def list_deployments(
    session: AsyncSession,
    principal: Principal,
    *,
    work_pool_id: uuid.UUID | None = None,
    flow_name: str | None = None,
    tag: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[m.Deployment]:
    principal.require_api_key()
    query = select(m.Deployment).where(m.Deployment.workspace_id == principal.workspace_id)
    if work_pool_id is not None:
        query = query.where(m.Deployment.work_pool_id == work_pool_id)
    if flow_name is not None:
        query = query.where(m.Deployment.flow_name == flow_name)
    query = query.order_by(m.Deployment.flow_name, m.Deployment.name)
    rows = list(
        (
            await session.execute(
                query.limit(limit + offset if tag else limit).offset(0 if tag else offset)
            )
        ).scalars()
    )
    if tag:
        # Tags are a JSON list; filtering in Python keeps one query for both dialects.
        rows = [r for r in rows if tag in r.tags][offset : offset + limit]
    return rows


async def update_deployment(
    session: AsyncSession, principal: Principal, deployment_id: uuid.UUID, data: s.DeploymentUpdate
) -> m.Deployment:
    principal.require_api_key()
    row = await read_deployment(session, principal, deployment_id)
    if data.schedules is not None:
        await schedule_checks.check_schedules(data.schedules)
    fields = data.model_dump(exclude_unset=True)
    pool = None
    if "work_pool_name" in fields:
        pool = await _pool(session, principal, data.work_pool_name)
        row.work_pool_id = pool.id if pool else None
    elif row.work_pool_id is not None:
        pool = await session.get(m.WorkPool, row.work_pool_id)
    if data.job_variables is not None:
        work_pools.resolve_job_variables(pool, data.job_variables)
        row.job_variables = data.job_variables
    if data.parameters is not None:
        if row.parameter_schema:
            validate(data.parameters, _partial(row.parameter_schema), "parameters")
        row.parameters = data.parameters
    if data.tags is not None:
        row.tags = data.tags
    if data.description is not None:
        row.description = data.description
    if data.paused is not None:
        row.paused = data.paused
    if "concurrency_limit" in fields:
        row.concurrency_limit = data.concurrency_limit
    if data.schedules is not None:
        await _replace_schedules(session, row, data.schedules)
    await session.flush()
    return row


async def delete_deployment(
    session: AsyncSession, principal: Principal, deployment_id: uuid.UUID
) -> None:
    principal.require_api_key()
    row = await read_deployment(session, principal, deployment_id)
    await session.execute(delete(m.Deployment).where(m.Deployment.id == row.id))


async def schedules_of(
    session: AsyncSession, deployment_id: uuid.UUID
) -> list[m.DeploymentSchedule]:
    query = (
        select(m.DeploymentSchedule)
        .where(m.DeploymentSchedule.deployment_id == deployment_id)
        .order_by(m.DeploymentSchedule.created)
    )
    return list((await session.execute(query)).scalars())


async def warnings_for(session: AsyncSession, row: m.Deployment) -> list[str]:
    """What a deployer should know now rather than when runs don't start."""
    out = []
    if row.paused:
        out.append("this deployment is paused: its runs will wait until it is resumed")
    if row.work_pool_id is not None:
        pool = await session.get(m.WorkPool, row.work_pool_id)
        if pool is not None and pool.paused:
            out.append(
                f"work pool {pool.name!r} is paused: runs will wait until "
                f"`flowyard work-pool resume {pool.name}`"
            )
    else:
        out.append("no work pool: runs of this deployment are not executed by the platform")
    return out
