"""The scheduler on real SQLite and PostgreSQL: ahead, idempotent, no bursts, clean-up."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.schemas import deployments as ds
from flowyard.schemas.states import StateCreate, StateType, Verdict
from flowyard.server.db import Database, create_database
from flowyard.server.db import models as m
from flowyard.server.ops import flow_runs
from flowyard.server.ops import schedules as schedule_ops
from flowyard.server.ops.auth import Principal
from flowyard.server.services import scheduler as scheduler_module
from flowyard.server.services.occurrences import next_occurrences
from flowyard.server.services.schedule_plans import FillPolicy
from flowyard.server.services.scheduler import Scheduler
from tests.integration.services.conftest import (
    EVERY_10_MIN,
    T0,
    FakeClock,
    deploy,
    grid,
    runs_of,
    schedule,
    schedule_ids,
    update_deployment,
)

HANG = 20.0
POLICY = FillPolicy(horizon=timedelta(hours=1), max_runs=10, min_runs=3, max_catchup=100)


async def test_runs_are_created_ahead_as_auto_scheduled_runs_with_the_deployment_tags(
    db: Database, principal: Principal, clock: FakeClock
) -> None:
    deployment_id = await deploy(db, principal, schedule())
    report = await Scheduler(db, POLICY, clock=clock).run_once()
    runs = await runs_of(db, deployment_id)
    assert report.created == 7
    assert [r.expected_start_time for r in runs] == grid(T0, T0 + timedelta(hours=1))
    assert {(r.state_type, r.state_name, r.auto_scheduled) for r in runs} == {
        ("SCHEDULED", "Scheduled", True)
    }
    assert all(r.tags == ["auto-scheduled", "team-data"] for r in runs)
    assert all(r.parameters == {"n": 1} for r in runs)
    (schedule_id,) = await schedule_ids(db, deployment_id)
    assert runs[0].idempotency_key == schedule_ops.idempotency_key(schedule_id, T0)


async def test_a_second_pass_and_a_restarted_scheduler_create_nothing_more(
    db: Database, principal: Principal, clock: FakeClock
) -> None:
    deployment_id = await deploy(db, principal, schedule())
    first = Scheduler(db, POLICY, clock=clock)
    assert (await first.run_once()).created == 7
    assert (await first.run_once()).created == 0
    assert (await Scheduler(db, POLICY, clock=clock).run_once()).created == 0
    assert len(await runs_of(db, deployment_id)) == 7


async def test_a_lost_high_water_mark_still_creates_no_duplicates(
    db: Database, principal: Principal, clock: FakeClock
) -> None:
    deployment_id = await deploy(db, principal, schedule())
    await Scheduler(db, POLICY, clock=clock).run_once()
    async with db.session() as session:
        await session.execute(update(m.DeploymentSchedule).values(scheduled_until=None))
    report = await Scheduler(db, POLICY, clock=clock).run_once()
    assert report.created == 0
    assert len(await runs_of(db, deployment_id)) == 7


async def test_two_schedulers_on_separate_connections_racing_create_each_run_once(
    db: Database, principal: Principal, clock: FakeClock
) -> None:
    deployments = [
        await deploy(
            db, principal, schedule(), schedule(ds.CronSchedule(cron="*/5 * * * *")), name=f"d{i}"
        )
        for i in range(4)
    ]
    first, second = create_database(db.url), create_database(db.url)
    try:
        a, b = Scheduler(first, POLICY, clock=clock), Scheduler(second, POLICY, clock=clock)
        created = 0
        for _ in range(3):
            reports = await asyncio.wait_for(asyncio.gather(a.run_once(), b.run_once()), HANG)
            created += sum(r.created for r in reports)
            clock.advance(timedelta(minutes=7))
    finally:
        await first.dispose()
        await second.dispose()
    for deployment_id in deployments:
        runs = await runs_of(db, deployment_id)
        keys = Counter(r.idempotency_key for r in runs)
        assert keys
        assert max(keys.values()) == 1
    total = sum([len(await runs_of(db, d)) for d in deployments])
    assert created == total


async def test_an_insert_racing_an_uncommitted_one_is_absorbed_by_the_unique_key(
    db: Database, principal: Principal, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    deployment_id = await deploy(db, principal, schedule())
    (schedule_id,) = await schedule_ids(db, deployment_id)
    occurrences = next_occurrences(EVERY_10_MIN, T0, 3)
    other = create_database(db.url)

    async def insert_elsewhere() -> int:
        async with other.session() as session:
            row = await session.get(m.DeploymentSchedule, schedule_id)
            assert row is not None
            return await schedule_ops.create_scheduled_runs(session, row, occurrences)

    try:
        with caplog.at_level(logging.DEBUG, logger="flowyard.scheduler"):
            async with db.session() as session:
                row = await session.get(m.DeploymentSchedule, schedule_id)
                assert row is not None
                assert await schedule_ops.create_scheduled_runs(session, row, occurrences) == 3
                racer = asyncio.create_task(insert_elsewhere())
                if db.dialect == "postgresql":
                    await _until_a_backend_waits_on_a_lock(session)
            assert await asyncio.wait_for(racer, HANG) == 0
    finally:
        await other.dispose()
    assert len(await runs_of(db, deployment_id)) == 3
    if db.dialect == "postgresql":
        # The racer's pre-check could not see the uncommitted rows: the constraint stopped it.
        assert any("already created" in r.getMessage() for r in caplog.records)


async def _until_a_backend_waits_on_a_lock(session: AsyncSession) -> None:
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    # Activity is snapshotted per transaction: clear it to see the racer arrive.
    clear = text("SELECT pg_stat_clear_snapshot()")
    for _ in range(int(HANG / 0.02)):
        await session.execute(clear)
        if (await session.execute(query)).scalar_one():
            return
        await asyncio.sleep(0.02)
    pytest.fail("the racing insert never waited on the uncommitted one")


async def test_no_burst_of_missed_runs_after_downtime_without_catchup(
    db: Database, principal: Principal, clock: FakeClock
) -> None:
    deployment_id = await deploy(db, principal, schedule(catchup=False))
    await Scheduler(db, POLICY, clock=clock).run_once()
    clock.advance(timedelta(days=1))
    report = await Scheduler(db, POLICY, clock=clock).run_once()
    runs = await runs_of(db, deployment_id)
    assert report.created == 7
    expected = grid(T0, T0 + timedelta(hours=1)) + grid(clock.now, clock.now + timedelta(hours=1))
    assert [r.expected_start_time for r in runs] == expected


async def test_catchup_creates_every_missed_run_oldest_first_in_bounded_batches(
    db: Database, principal: Principal, clock: FakeClock
) -> None:
    policy = FillPolicy(horizon=timedelta(hours=1), max_runs=10, min_runs=3, max_catchup=50)
    deployment_id = await deploy(db, principal, schedule(catchup=True))
    scheduler = Scheduler(db, policy, clock=clock)
    await scheduler.run_once()
    clock.advance(timedelta(days=1))
    batches = [(await scheduler.run_once()).created for _ in range(4)]
    runs = await runs_of(db, deployment_id)
    assert batches == [50, 50, 37 + 7, 0]
    assert [r.expected_start_time for r in runs] == grid(T0, clock.now + timedelta(hours=1))


@pytest.mark.parametrize("case", ["paused deployment", "inactive schedule"])
async def test_a_paused_deployment_or_an_inactive_schedule_gets_no_runs(
    db: Database, principal: Principal, clock: FakeClock, case: str
) -> None:
    if case == "paused deployment":
        deployment_id = await deploy(db, principal, schedule(), paused=True)
    else:
        deployment_id = await deploy(db, principal, schedule(active=False))
    report = await Scheduler(db, POLICY, clock=clock).run_once()
    assert report.created == 0
    assert await runs_of(db, deployment_id) == []


async def test_replacing_a_schedule_removes_its_future_runs_but_keeps_started_ones(
    db: Database, principal: Principal, clock: FakeClock
) -> None:
    deployment_id = await deploy(db, principal, schedule())
    scheduler = Scheduler(db, POLICY, clock=clock)
    await scheduler.run_once()
    (old_schedule,) = await schedule_ids(db, deployment_id)
    started = (await runs_of(db, deployment_id))[3]  # T0 + 30 min, started early by hand
    async with db.session() as session:
        result = await flow_runs.set_state(
            session, principal, started.id, StateCreate(type=StateType.PENDING)
        )
    assert result.status is Verdict.ACCEPT
    clock.advance(timedelta(minutes=5))

    hourly = ds.CronSchedule(cron="0 * * * *")
    await update_deployment(db, principal, deployment_id, schedules=[schedule(hourly)])
    report = await scheduler.run_once()

    runs = await runs_of(db, deployment_id)
    old = [r for r in runs if schedule_ops.schedule_of_key(r.idempotency_key) == old_schedule]
    # T0 is past (kept: it is due, not future); T0+30 was started (kept); the rest are gone.
    assert [(r.expected_start_time, r.state_type) for r in old] == [
        (T0, "SCHEDULED"),
        (T0 + timedelta(minutes=30), "PENDING"),
    ]
    assert report.pruned == 5
    new = [r for r in runs if r not in old]
    assert [r.expected_start_time for r in new] == [T0 + timedelta(hours=h) for h in (1, 2, 3)]


async def test_pausing_removes_future_runs_and_resuming_starts_from_now_without_catchup(
    db: Database, principal: Principal, clock: FakeClock
) -> None:
    deployment_id = await deploy(db, principal, schedule(catchup=True))
    scheduler = Scheduler(db, POLICY, clock=clock)
    await scheduler.run_once()
    clock.advance(timedelta(minutes=5))
    await update_deployment(db, principal, deployment_id, paused=True)
    report = await scheduler.run_once()
    assert report.pruned == 6
    assert [r.expected_start_time for r in await runs_of(db, deployment_id)] == [T0]

    clock.advance(timedelta(hours=4, minutes=55))
    await update_deployment(db, principal, deployment_id, paused=False)
    report = await scheduler.run_once()
    runs = await runs_of(db, deployment_id)
    # A pause is deliberate: resuming does not catch up the paused hours.
    assert report.created == 7
    assert [r.expected_start_time for r in runs] == [
        T0,
        *grid(clock.now, clock.now + timedelta(hours=1)),
    ]


async def test_a_broken_schedule_is_reported_once_and_does_not_stop_the_others(
    db: Database, principal: Principal, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    broken = await deploy(db, principal, schedule(), name="broken")
    healthy = await deploy(db, principal, schedule(), name="healthy")
    async with db.session() as session:
        await session.execute(
            update(m.DeploymentSchedule)
            .where(m.DeploymentSchedule.deployment_id == broken)
            .values(schedule={"cron": "0 * * * *", "timezone": "Mars/Olympus_Mons"})
        )
    scheduler = Scheduler(db, POLICY, clock=clock)
    with caplog.at_level(logging.WARNING, logger="flowyard.scheduler"):
        first = await scheduler.run_once()
        second = await scheduler.run_once()
    assert (first.failed, second.failed) == (1, 1)
    assert len(await runs_of(db, healthy)) == 7
    assert await runs_of(db, broken) == []
    warnings = [r for r in caplog.records if "cannot be filled" in r.getMessage()]
    assert len(warnings) == 1
    assert "Mars/Olympus_Mons" in warnings[0].getMessage()


async def test_a_committed_deployment_change_wakes_the_scheduler_but_its_own_passes_do_not(
    db: Database, principal: Principal, clock: FakeClock
) -> None:
    waiter = scheduler_module.WAKEUP.subscribe()
    try:
        deployment_id = await deploy(db, principal, schedule())
        assert waiter.is_set()
        waiter.clear()
        await Scheduler(db, POLICY, clock=clock).run_once()
        assert not waiter.is_set()
        await update_deployment(db, principal, deployment_id, schedules=[])
        assert waiter.is_set()
    finally:
        scheduler_module.WAKEUP.unsubscribe(waiter)


async def test_pausing_prunes_only_that_deployments_auto_scheduled_runs(
    db: Database, principal: Principal, clock: FakeClock
) -> None:
    from flowyard.schemas.flow_runs import FlowRunCreate

    paused = await deploy(db, principal, schedule(), name="paused")
    running = await deploy(db, principal, schedule(), name="running")
    scheduler = Scheduler(db, POLICY, clock=clock)
    await scheduler.run_once()
    async with db.session() as session:
        manual, _ = await flow_runs.create_flow_run(
            session,
            principal,
            paused,
            FlowRunCreate(scheduled_time=T0 + timedelta(hours=2), idempotency_key="by-hand"),
        )
    clock.advance(timedelta(minutes=5))
    await update_deployment(db, principal, paused, paused=True)
    await scheduler.run_once()
    left = await runs_of(db, paused)
    assert [(r.expected_start_time, r.auto_scheduled) for r in left] == [
        (T0, True),
        (manual.expected_start_time, False),
    ]
    assert len(await runs_of(db, running)) == 7
