"""Runs whose supervisor died end CRASHED with the reason, on real SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.schemas import task_runs as tr
from flowyard.schemas.flow_runs import AdHocFlowRunCreate, ExecutionReport
from flowyard.schemas.states import StateCreate, StateType
from flowyard.server.db import Database
from flowyard.server.db import models as m
from flowyard.server.ops import flow_runs, liveness, task_runs, usage
from flowyard.server.ops.auth import Principal
from flowyard.server.services.lost_runs import LostRunSweeper
from tests.integration.services.conftest import FakeClock

TIMEOUT = timedelta(seconds=90)


async def _running(
    db: Database, principal: Principal, heartbeat: datetime | None, *, dispatcher: str | None = None
) -> uuid.UUID:
    async with db.session() as session:
        run = await flow_runs.create_ad_hoc_flow_run(
            session,
            principal,
            AdHocFlowRunCreate(flow_name="etl", state=StateCreate(type=StateType.RUNNING)),
        )
        run.heartbeat_at = heartbeat
        run.dispatcher_id = dispatcher
        if heartbeat is not None:
            await usage.open_record(session, run, heartbeat - timedelta(seconds=30))
        return run.id


async def _task_runs(
    session: AsyncSession,
    principal: Principal,
    runs: list[tuple[uuid.UUID, str, StateType]],
) -> None:
    """A task run per ``(flow run, name, state)``."""
    stamp = datetime.now(UTC)
    batch = [
        tr.TaskRunUpsert(
            id=uuid.uuid4(), flow_run_id=run_id, name=name, state_type=state, timestamp=stamp
        )
        for run_id, name, state in runs
    ]
    await task_runs.upsert_task_runs(session, principal, tr.TaskRunBatch(task_runs=batch))


async def _read(db: Database, principal: Principal, run_id: uuid.UUID) -> m.FlowRun:
    async with db.session() as session:
        return await flow_runs.read_flow_run(session, principal, run_id)


async def test_a_run_whose_heartbeats_stopped_is_crashed_and_billed_to_its_last_heartbeat(
    db: Database, principal: Principal, clock: FakeClock
) -> None:
    clock.now = datetime.now(UTC)
    silent = await _running(db, principal, clock.now - timedelta(minutes=5), dispatcher="host-a")
    fresh = await _running(db, principal, clock.now - timedelta(seconds=20), dispatcher="host-b")
    never = await _running(db, principal, None)

    assert await LostRunSweeper(db, TIMEOUT, clock=clock).run_once() == 1

    lost = await _read(db, principal, silent)
    assert lost.state_type == StateType.CRASHED.value
    assert "lost heartbeat: its dispatcher host-a stopped reporting" in lost.state_message
    assert lost.crash_reason == lost.state_message
    assert lost.compute_seconds == 30.0  # from compute start to the last heartbeat, not to now
    assert (await _read(db, principal, fresh)).state_type == StateType.RUNNING.value
    assert (await _read(db, principal, never)).state_type == StateType.RUNNING.value
    assert await LostRunSweeper(db, TIMEOUT, clock=clock).run_once() == 0


async def test_a_dispatcher_beats_only_for_its_own_active_runs(
    db: Database, principal: Principal
) -> None:
    old = datetime.now(UTC) - timedelta(minutes=1)
    mine = await _running(db, principal, old, dispatcher="host-a")
    theirs = await _running(db, principal, old, dispatcher="host-b")
    now = datetime.now(UTC)
    async with db.session() as session:
        moved = await liveness.beat(session, [mine, theirs], now, dispatcher_id="host-a")
    assert moved == 1
    assert (await _read(db, principal, mine)).heartbeat_at == now
    assert (await _read(db, principal, theirs)).heartbeat_at == old


async def test_a_run_that_ends_takes_its_active_subflows_and_task_runs_along(
    db: Database, principal: Principal
) -> None:
    root_id = await _running(db, principal, datetime.now(UTC))
    async with db.session() as session:
        root = await flow_runs.read_flow_run(session, principal, root_id)
        child = await flow_runs.create_ad_hoc_flow_run(
            session,
            principal,
            AdHocFlowRunCreate(flow_name="child", state=StateCreate(type=StateType.RUNNING)),
        )
        child.root_flow_run_id = root.id
        await _task_runs(
            session,
            principal,
            [
                (root.id, "still-running", StateType.RUNNING),
                (root.id, "done", StateType.COMPLETED),
                (child.id, "child-task", StateType.PENDING),
            ],
        )
        child_id = child.id
    async with db.session() as session:
        await flow_runs.set_state(
            session, principal, root_id, StateCreate(type=StateType.CRASHED, message="OOM")
        )
    async with db.session() as session:
        await flow_runs.record_execution(
            session, principal, root_id, ExecutionReport(), teardown=True
        )
    async with db.session() as session:
        child_run = await flow_runs.read_flow_run(session, principal, child_id)
        assert child_run.state_type == StateType.CRASHED.value
        assert f"its flow run {root_id} ended CRASHED" in child_run.state_message
        states = {
            t.name: t.state_type
            for run_id in (root_id, child_id)
            for t in (await task_runs.list_task_runs(session, principal, run_id, limit=10))[0]
        }
    assert states == {"still-running": "CRASHED", "done": "COMPLETED", "child-task": "CRASHED"}


async def test_a_run_that_ends_with_no_subflows_takes_its_own_active_task_runs_along(
    db: Database, principal: Principal
) -> None:
    run_id = await _running(db, principal, datetime.now(UTC))
    async with db.session() as session:
        await _task_runs(session, principal, [(run_id, "still-running", StateType.RUNNING)])
        await flow_runs.set_state(
            session, principal, run_id, StateCreate(type=StateType.FAILED, message="boom")
        )
    async with db.session() as session:
        run = await flow_runs.read_flow_run(session, principal, run_id)
        assert await liveness.end_orphans(session, run, datetime.now(UTC)) == 1
        assert await liveness.end_orphans(session, run, datetime.now(UTC)) == 0  # nothing left
        [task], _ = await task_runs.list_task_runs(session, principal, run_id, limit=10)
    assert task.state_type == StateType.CRASHED.value
    assert f"its flow run {run_id} ended FAILED" in task.state_message
