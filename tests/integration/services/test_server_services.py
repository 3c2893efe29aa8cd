"""The services as the server runs them: registered by default, working, stopped on shutdown."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flowyard.schemas.states import StateType
from flowyard.server import services
from flowyard.server.context import ServerContext
from flowyard.server.db import Database
from flowyard.server.db import models as m
from flowyard.server.keys import ServerKeys
from flowyard.server.ops.auth import Principal
from flowyard.server.services import (
    default_services,
    late_runs_service,
    lost_runs_service,
    scheduler_service,
)
from flowyard.settings import Settings
from tests.integration.services.conftest import deploy, managed_runs, runs_of, schedule

HANG = 20.0


def test_the_scheduler_and_late_runs_are_default_services_unless_turned_off(
    flowyard_home: Path,
) -> None:
    on = default_services(Settings(home=flowyard_home))
    off = default_services(Settings(home=flowyard_home, scheduler=False, dispatcher=False))
    no_dispatcher = default_services(Settings(home=flowyard_home, dispatcher=False))
    assert scheduler_service in on
    assert late_runs_service in on
    assert [s.__name__ for s in on] == [
        "scheduler_service",
        "late_runs_service",
        "lost_runs_service",
        "dispatcher_service",
    ]
    assert no_dispatcher == [scheduler_service, late_runs_service, lost_runs_service]
    assert off == []


async def test_a_running_server_creates_scheduled_runs_and_stops_its_services_promptly(
    db: Database, principal: Principal, flowyard_home: Path
) -> None:
    deployment_id = await deploy(db, principal, schedule())
    settings = Settings(home=flowyard_home, scheduler_loop_seconds=3600)
    ctx = ServerContext(
        settings=settings,
        db=db,
        keys=ServerKeys.from_master(b"test-server-key"),
        services=default_services(settings),
    )
    await ctx.start()
    try:
        for _ in range(int(HANG / 0.05)):
            if len(await runs_of(db, deployment_id)) >= 3:
                break
            await asyncio.sleep(0.05)
        runs = await runs_of(db, deployment_id)
    finally:
        # The loops sleep for an hour between passes: stop() must not wait for that.
        await asyncio.wait_for(ctx.stop(), HANG)
    assert len(runs) >= 3
    assert all(r.auto_scheduled for r in runs)


async def test_a_run_created_while_the_dispatcher_waits_out_its_start_delay_is_claimed_at_once(
    db: Database,
    principal: Principal,
    flowyard_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An hour's delay: only the "runs changed" signal can get the dispatcher going.
    monkeypatch.setattr(services, "DISPATCHER_START_DELAY", 3600.0)
    settings = Settings(home=flowyard_home, scheduler=False)
    ctx = ServerContext(
        settings=settings,
        db=db,
        keys=ServerKeys.from_master(b"test-server-key"),
        services=default_services(settings),
    )
    await ctx.start()
    try:
        await asyncio.sleep(0.2)  # the dispatcher is waiting now
        [run_id] = await managed_runs(db, principal, 1)  # one commit: the signal
        for _ in range(int(HANG / 0.05)):
            async with db.session() as session:
                current = await session.get(m.FlowRun, run_id)
                assert current is not None
                state = current.state_type
            if state != StateType.SCHEDULED.value:
                break
            await asyncio.sleep(0.05)
    finally:
        await asyncio.wait_for(ctx.stop(), HANG)
    assert state != StateType.SCHEDULED.value, "the run was not claimed"
