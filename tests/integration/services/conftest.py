"""A workspace, deployments with schedules, and a clock the tests move by hand."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from flowyard.schemas import deployments as ds
from flowyard.schemas import work_pools as wp
from flowyard.schemas.flow_runs import FlowRunCreate
from flowyard.server.db import Database
from flowyard.server.db import models as m
from flowyard.server.ops import deployments, flow_runs, work_pools, workspaces
from flowyard.server.ops.auth import Principal

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
EVERY_10_MIN = ds.IntervalSchedule(interval=600, anchor_date=datetime(2024, 1, 1, tzinfo=UTC))


@dataclass
class FakeClock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def principal(db: Database) -> Principal:
    async with db.session() as session:
        await workspaces.bootstrap(session)
        workspace = await workspaces.read_workspace_by_name(session, "default")
    return Principal(workspace_id=workspace.id, kind="api_key", is_admin=True)


def schedule(
    spec: ds.ScheduleSpec = EVERY_10_MIN, *, active: bool = True, catchup: bool = False
) -> ds.DeploymentScheduleCreate:
    return ds.DeploymentScheduleCreate(schedule=spec, active=active, catchup=catchup)


async def deploy(
    db: Database,
    principal: Principal,
    *schedules: ds.DeploymentScheduleCreate,
    name: str = "every-10-min",
    paused: bool = False,
) -> uuid.UUID:
    data = ds.DeploymentCreate(
        flow_name="etl",
        name=name,
        entrypoint="flows/etl.py:etl",
        tags=["team-data"],
        parameters={"n": 1},
        paused=paused,
        schedules=list(schedules),
    )
    async with db.session() as session:
        row = await deployments.upsert_deployment(session, principal, data)
        return row.id


async def update_deployment(
    db: Database, principal: Principal, deployment_id: uuid.UUID, **fields: object
) -> None:
    async with db.session() as session:
        await deployments.update_deployment(
            session, principal, deployment_id, ds.DeploymentUpdate.model_validate(fields)
        )


async def runs_of(db: Database, deployment_id: uuid.UUID) -> list[m.FlowRun]:
    async with db.session() as session:
        query = (
            select(m.FlowRun)
            .where(m.FlowRun.deployment_id == deployment_id)
            .order_by(m.FlowRun.expected_start_time, m.FlowRun.idempotency_key)
        )
        return list((await session.execute(query)).scalars())


async def schedule_ids(db: Database, deployment_id: uuid.UUID) -> list[uuid.UUID]:
    async with db.session() as session:
        return [s.id for s in await deployments.schedules_of(session, deployment_id)]


def grid(start: datetime, end: datetime, step: timedelta = timedelta(minutes=10)) -> list[datetime]:
    out = []
    while start <= end:
        out.append(start)
        start += step
    return out


async def managed_runs(db: Database, principal: Principal, count: int) -> list[uuid.UUID]:
    """``count`` new runs of one deployment in a managed pool, due now."""
    async with db.session() as session:
        await work_pools.create_work_pool(session, principal, wp.WorkPoolCreate(name="managed"))
        deployment = await deployments.upsert_deployment(
            session,
            principal,
            ds.DeploymentCreate(
                flow_name="etl", name="nightly", entrypoint="etl.py:etl", work_pool_name="managed"
            ),
        )
        made = [
            (await flow_runs.create_flow_run(session, principal, deployment.id, FlowRunCreate()))[0]
            for _ in range(count)
        ]
    return [run.id for run in made]
