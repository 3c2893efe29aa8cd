"""Admission: past the host's capacity or under memory pressure, runs wait saying why.

The dispatcher is real and claims from a real database; the pipeline it hands
runs to is a stand-in that holds each run until the test lets it finish, so
the test controls how many are active.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from pathlib import Path

import pytest

from flowyard.execution.jobs import RunJob
from flowyard.execution.pipeline import RunPipeline
from flowyard.schemas.states import StateType
from flowyard.server.context import ServerContext
from flowyard.server.db import Database
from flowyard.server.db import models as m
from flowyard.server.keys import ServerKeys
from flowyard.server.ops.auth import Principal
from flowyard.server.services.dispatcher import Dispatcher, _job_for
from flowyard.settings import Settings
from flowyard.testing import FakeRecorder
from tests.integration.services.conftest import managed_runs


class HeldPipeline:
    """Starts nothing: each run stays 'executing' until ``finish`` releases it."""

    def __init__(self) -> None:
        self.executing: dict[uuid.UUID, asyncio.Event] = {}
        self.jobs: dict[uuid.UUID, RunJob] = {}
        self.recorder = FakeRecorder()

    async def execute(self, job: RunJob) -> None:
        self.jobs[job.run_id] = job
        release = self.executing[job.run_id] = asyncio.Event()
        await release.wait()

    def finish(self, run_id: uuid.UUID) -> None:
        self.executing.pop(run_id).set()


async def _states(db: Database, run_ids: list[uuid.UUID]) -> list[tuple[str, str, str]]:
    async with db.session() as session:
        rows = [await session.get(m.FlowRun, run_id) for run_id in run_ids]
        return [(r.state_type, r.state_name, r.state_message) for r in rows if r is not None]


def _dispatcher(
    db: Database, home: Path, pipeline: HeldPipeline, *, max_runs: int, pressure: list[str | None]
) -> Dispatcher:
    ctx = ServerContext(
        settings=Settings(home=home), db=db, keys=ServerKeys.from_master(b"test-server-key")
    )
    held: RunPipeline = pipeline  # type: ignore[assignment]  # the stand-in has execute()
    return Dispatcher(ctx, held, max_runs=max_runs, pressure=lambda: pressure[0])


async def _settle(pipeline: HeldPipeline, count: int) -> None:
    for _ in range(200):
        if len(pipeline.executing) == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(pipeline.executing)} runs executing, expected {count}")


async def test_runs_past_the_hosts_capacity_wait_saying_so_and_start_as_slots_free(
    db: Database, principal: Principal, flowyard_home: Path
) -> None:
    run_ids = await managed_runs(db, principal, 3)
    pipeline = HeldPipeline()
    dispatcher = _dispatcher(db, flowyard_home, pipeline, max_runs=2, pressure=[None])

    assert await dispatcher.dispatch_once() == 2
    await _settle(pipeline, 2)
    assert await dispatcher.dispatch_once() == 0
    waiting = [s for s in await _states(db, run_ids) if s[0] == StateType.SCHEDULED.value]
    assert waiting == [
        (
            StateType.SCHEDULED.value,
            "AwaitingCapacity",
            "host capacity reached (2 runs active); queued until it frees",
        )
    ]

    pipeline.finish(next(iter(pipeline.executing)))
    for _ in range(200):
        if len(dispatcher.capacity.active) < 2:
            break
        await asyncio.sleep(0.01)
    assert await dispatcher.dispatch_once() == 1
    await _settle(pipeline, 2)
    for run_id in list(pipeline.executing):
        pipeline.finish(run_id)


async def test_runs_wait_while_memory_is_short_and_start_when_it_frees(
    db: Database, principal: Principal, flowyard_home: Path
) -> None:
    run_ids = await managed_runs(db, principal, 2)
    pipeline = HeldPipeline()
    short = "runs use 93% of the host's memory for runs (7.4 GiB of 8 GiB)"
    pressure: list[str | None] = [short]
    dispatcher = _dispatcher(db, flowyard_home, pipeline, max_runs=10, pressure=pressure)

    assert await dispatcher.dispatch_once() == 0
    assert (
        await _states(db, run_ids)
        == [(StateType.SCHEDULED.value, "AwaitingCapacity", f"{short}; queued until it frees")] * 2
    )

    pressure[0] = None
    assert await dispatcher.dispatch_once() == 2
    await _settle(pipeline, 2)
    assert {s[0] for s in await _states(db, run_ids)} == {StateType.PENDING.value}
    for run_id in list(pipeline.executing):
        pipeline.finish(run_id)


async def test_a_claimed_runs_job_is_the_one_a_read_of_the_run_gives(
    db: Database, principal: Principal, flowyard_home: Path
) -> None:
    [run_id] = await managed_runs(db, principal, 1)
    pipeline = HeldPipeline()
    dispatcher = _dispatcher(db, flowyard_home, pipeline, max_runs=2, pressure=[None])

    assert await dispatcher.dispatch_once() == 1  # built from what the claim read
    await _settle(pipeline, 1)
    job = pipeline.jobs[run_id]
    read = await _job_for(dispatcher.ctx, run_id, job.claimed_at)
    assert read is not None
    assert job.claimed_at is not None
    assert job.created_at == pytest.approx(read.created_at, abs=0.5)
    assert dataclasses.replace(job, created_at=None) == dataclasses.replace(read, created_at=None)
    assert (job.full_name, job.entrypoint, job.isolation) == ("etl/nightly", "etl.py:etl", "strict")
    pipeline.finish(run_id)
