"""Late naming on real SQLite and PostgreSQL, with a clock moved by hand."""

from __future__ import annotations

from datetime import timedelta

from flowyard.schemas.flow_runs import FlowRunCreate
from flowyard.schemas.states import StateCreate, StateType
from flowyard.server.db import Database
from flowyard.server.db import models as m
from flowyard.server.ops import flow_runs
from flowyard.server.ops.auth import Principal
from flowyard.server.services.late_runs import LateRunMarker
from tests.integration.services.conftest import T0, FakeClock, deploy

GRACE = timedelta(seconds=1)


async def _run(db: Database, principal: Principal, due_in: timedelta) -> m.FlowRun:
    deployment_id = await deploy(db, principal)
    async with db.session() as session:
        run, _ = await flow_runs.create_flow_run(
            session, principal, deployment_id, FlowRunCreate(scheduled_time=T0 + due_in)
        )
    return run


async def _state(db: Database, principal: Principal, run: m.FlowRun) -> tuple[str, str, int]:
    async with db.session() as session:
        fresh = await flow_runs.read_flow_run(session, principal, run.id)
        history = await flow_runs.state_history(session, principal, run.id)
        return fresh.state_type, fresh.state_name, len(history)


async def test_a_run_not_started_by_its_time_plus_grace_is_named_late_once_with_history(
    db: Database, principal: Principal, clock: FakeClock
) -> None:
    run = await _run(db, principal, timedelta(seconds=-5))
    marker = LateRunMarker(db, GRACE, clock=clock)
    assert await marker.run_once() == 1
    assert await marker.run_once() == 0
    assert await _state(db, principal, run) == ("SCHEDULED", "Late", 2)
    async with db.session() as session:
        history = await flow_runs.state_history(session, principal, run.id)
        fresh = await flow_runs.read_flow_run(session, principal, run.id)
    (late,) = [h for h in history if h.name == "Late"]
    assert (late.type, late.timestamp) == ("SCHEDULED", T0)
    assert late.message.startswith("not started within 1 s of its scheduled time")
    # Still due at its original time: a dispatcher will still pick it up.
    assert fresh.next_scheduled_start_time == T0 - timedelta(seconds=5)


async def test_a_run_still_within_its_grace_is_not_late(
    db: Database, principal: Principal, clock: FakeClock
) -> None:
    run = await _run(db, principal, timedelta(milliseconds=-500))
    assert await LateRunMarker(db, GRACE, clock=clock).run_once() == 0
    assert await _state(db, principal, run) == ("SCHEDULED", "Scheduled", 1)
    clock.advance(timedelta(seconds=1))
    assert await LateRunMarker(db, GRACE, clock=clock).run_once() == 1


async def test_a_run_waiting_for_a_reason_keeps_its_more_specific_name(
    db: Database, principal: Principal, clock: FakeClock
) -> None:
    run = await _run(db, principal, timedelta(minutes=-5))
    async with db.session() as session:
        fresh = await flow_runs.read_flow_run(session, principal, run.id, lock=True)
        await flow_runs.mark_waiting(
            session, fresh, "AwaitingConcurrency", "deployment limit of 1 reached", T0
        )
    assert await LateRunMarker(db, GRACE, clock=clock).run_once() == 0
    assert await _state(db, principal, run) == ("SCHEDULED", "AwaitingConcurrency", 2)


async def test_a_started_run_is_never_named_late(
    db: Database, principal: Principal, clock: FakeClock
) -> None:
    run = await _run(db, principal, timedelta(minutes=-5))
    async with db.session() as session:
        await flow_runs.set_state(session, principal, run.id, StateCreate(type=StateType.PENDING))
    assert await LateRunMarker(db, GRACE, clock=clock).run_once() == 0
    assert await _state(db, principal, run) == ("PENDING", "Pending", 2)


async def test_a_backlog_larger_than_one_batch_is_all_marked_in_one_pass(
    db: Database, principal: Principal, clock: FakeClock
) -> None:
    from flowyard.server.services import late_runs

    deployment_id = await deploy(db, principal)
    async with db.session() as session:
        for i in range(late_runs.BATCH + 5):
            await flow_runs.create_flow_run(
                session,
                principal,
                deployment_id,
                FlowRunCreate(scheduled_time=T0 - timedelta(minutes=10, seconds=i)),
            )
    assert await LateRunMarker(db, GRACE, clock=clock).run_once() == late_runs.BATCH + 5
