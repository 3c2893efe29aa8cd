from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.schemas import deployments as s
from flowyard.schemas import flow_runs as fr
from flowyard.server.api.deps import Caller, Ctx, Session
from flowyard.server.db import models as m
from flowyard.server.ops import deployments, flow_run_queries, flow_runs

router = APIRouter(prefix="/deployments", tags=["deployments"])


async def describe(session: AsyncSession, row: m.Deployment) -> s.Deployment:
    out = s.Deployment.model_validate(row)
    if row.work_pool_id is not None:
        pool = await session.get(m.WorkPool, row.work_pool_id)
        out.work_pool_name = pool.name if pool else None
    out.schedules = [
        s.DeploymentSchedule.model_validate(x)
        for x in await deployments.schedules_of(session, row.id)
    ]
    out.warnings = await deployments.warnings_for(session, row)
    return out


@router.post("", status_code=200)
async def upsert_deployment(
    data: s.DeploymentCreate, session: Session, caller: Caller, ctx: Ctx
) -> s.Deployment:
    """Create or update by (flow_name, name). Warnings say what will keep runs waiting."""
    row = await deployments.upsert_deployment(
        session, caller, data, allow_local_sources=ctx.settings.allow_local_sources
    )
    return await describe(session, row)


@router.post("/claim")
async def claim_served_runs(
    data: s.ServedClaim, session: Session, caller: Caller
) -> list[fr.FlowRun]:
    """Due runs of served deployments (no pool), moved to PENDING for the serving process."""
    from flowyard.server.ops import claims

    runs = await claims.claim_served_runs(
        session, caller, data.deployment_ids, data.worker, limit=data.limit
    )
    return await flow_run_queries.describe(session, runs)


@router.get("")
async def list_deployments(
    session: Session,
    caller: Caller,
    work_pool: str | None = None,
    flow_name: str | None = None,
    tag: str | None = None,
    limit: int = Query(default=200, ge=1, le=1000),
    # Bound so the database can bind it (SQLite raises past 64 bits, a 500).
    offset: int = Query(default=0, ge=0, le=2**31 - 1),
) -> list[s.Deployment]:
    pool_id = None
    if work_pool is not None:
        from flowyard.server.ops import work_pools

        pool_id = (await work_pools.read_work_pool(session, caller, work_pool)).id
    rows = await deployments.list_deployments(
        session,
        caller,
        work_pool_id=pool_id,
        flow_name=flow_name,
        tag=tag,
        limit=limit,
        offset=offset,
    )
    return [await describe(session, r) for r in rows]


@router.get("/name/{flow_name}/{name}")
async def read_deployment_by_name(
    flow_name: str, name: str, session: Session, caller: Caller
) -> s.Deployment:
    row = await deployments.read_deployment_by_name(session, caller, f"{flow_name}/{name}")
    return await describe(session, row)


@router.get("/{deployment_id}")
async def read_deployment(
    deployment_id: uuid.UUID, session: Session, caller: Caller
) -> s.Deployment:
    return await describe(
        session, await deployments.read_deployment(session, caller, deployment_id)
    )


@router.patch("/{deployment_id}")
async def update_deployment(
    deployment_id: uuid.UUID, data: s.DeploymentUpdate, session: Session, caller: Caller
) -> s.Deployment:
    row = await deployments.update_deployment(session, caller, deployment_id, data)
    return await describe(session, row)


@router.delete("/{deployment_id}", status_code=204)
async def delete_deployment(deployment_id: uuid.UUID, session: Session, caller: Caller) -> Response:
    await deployments.delete_deployment(session, caller, deployment_id)
    return Response(status_code=204)


@router.post(
    "/{deployment_id}/runs",
    status_code=201,
    responses={
        200: {"model": fr.FlowRun, "description": "The run made with this idempotency key."}
    },
)
async def create_flow_run(
    deployment_id: uuid.UUID,
    data: fr.FlowRunCreate,
    session: Session,
    caller: Caller,
    response: Response,
) -> fr.FlowRun:
    """Start a run. With an idempotency key already used, the existing run (200)."""
    run, created = await flow_runs.create_flow_run(session, caller, deployment_id, data)
    if not created:
        response.status_code = 200
    return (await flow_run_queries.describe(session, [run]))[0]
