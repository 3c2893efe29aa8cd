"""The dispatcher's recorder against a real database: batched stage lines, batched reads."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from flowyard.schemas.flow_runs import ExecutionReport
from flowyard.schemas.states import StateCreate, StateType
from flowyard.server.context import ServerContext
from flowyard.server.db import Database
from flowyard.server.db import models as m
from flowyard.server.keys import ServerKeys
from flowyard.server.ops import logs
from flowyard.server.ops.auth import Principal
from flowyard.server.ops.errors import NotFound
from flowyard.server.services._recorder import LOG_FLUSH_SECONDS, DbRecorder
from flowyard.settings import Settings
from tests.integration.services.conftest import managed_runs


async def _messages(db: Database, principal: Principal, run_id: uuid.UUID) -> list[str]:
    async with db.session() as session:
        lines, _ = await logs.read_logs(session, principal, run_id)
    return [line.message for line in lines]


@pytest.fixture
def recorder(db: Database, flowyard_home: Path) -> DbRecorder:
    ctx = ServerContext(
        settings=Settings(home=flowyard_home), db=db, keys=ServerKeys.from_master(b"test-key")
    )
    return DbRecorder(ctx)


async def test_stage_lines_are_written_with_the_runs_next_state_change_in_order(
    db: Database, principal: Principal, recorder: DbRecorder
) -> None:
    [run_id] = await managed_runs(db, principal, 1)
    await recorder.log(run_id, "cloned abc1234 in 0.01 s")
    await recorder.log(run_id, "environment ready (cached) in 0.00 s")
    # Held, not written yet: one transaction will carry them with the state change.
    assert await _messages(db, principal, run_id) == []

    result = await recorder.set_state(run_id, StateCreate(type=StateType.PENDING))

    assert result.status.value == "ACCEPT"
    assert await _messages(db, principal, run_id) == [
        "cloned abc1234 in 0.01 s",
        "environment ready (cached) in 0.00 s",
    ]
    await recorder.log(run_id, "compute released after 0.20 s")
    await recorder.report(run_id, ExecutionReport(exit_code=0), teardown=True)
    assert (await _messages(db, principal, run_id))[-1] == "compute released after 0.20 s"


async def test_lines_no_state_change_follows_are_written_within_the_flush_interval(
    db: Database, principal: Principal, recorder: DbRecorder
) -> None:
    first, second = await managed_runs(db, principal, 2)
    await recorder.log(first, "preparing compute for etl/nightly")
    await recorder.log(second, "preparing compute for etl/nightly", level=30)

    for _ in range(100):
        await asyncio.sleep(LOG_FLUSH_SECONDS)
        written = [await _messages(db, principal, r) for r in (first, second)]
        if all(written):
            break
    assert written == [["preparing compute for etl/nightly"]] * 2


async def test_flush_writes_every_held_line_at_once(
    db: Database, principal: Principal, recorder: DbRecorder
) -> None:
    run_ids = await managed_runs(db, principal, 3)
    for i, run_id in enumerate(run_ids):
        await recorder.log(run_id, f"line {i}")

    await recorder.flush()

    assert [await _messages(db, principal, r) for r in run_ids] == [
        ["line 0"],
        ["line 1"],
        ["line 2"],
    ]


async def test_one_read_says_which_runs_were_asked_to_cancel(
    db: Database, principal: Principal, recorder: DbRecorder
) -> None:
    pending, cancelling, missing = *await managed_runs(db, principal, 2), uuid.uuid4()
    for run_id in (pending, cancelling):
        await recorder.set_state(run_id, StateCreate(type=StateType.PENDING))
    await recorder.set_state(cancelling, StateCreate(type=StateType.CANCELLING))

    assert await recorder.cancel_requested([pending, cancelling, missing]) == {cancelling}
    assert await recorder.current_state(pending) is StateType.PENDING
    with pytest.raises(NotFound):
        await recorder.current_state(missing)
    with pytest.raises(NotFound):  # an unknown run fails when logged, not later at the flush
        await recorder.log(missing, "nobody")


async def _run_row(db: Database, run_id: uuid.UUID) -> m.FlowRun:
    async with db.session() as session:
        run = await session.get(m.FlowRun, run_id)
    assert run is not None
    return run


async def test_reports_are_held_and_written_as_one_with_the_runs_next_state_change(
    db: Database, principal: Principal, recorder: DbRecorder
) -> None:
    [run_id] = await managed_runs(db, principal, 1)
    await recorder.report(run_id, ExecutionReport(resolved_commit="a" * 40))
    await recorder.report(run_id, ExecutionReport(backend="local", process_id=41))
    await recorder.report(run_id, ExecutionReport(process_id=42, heartbeat=True))
    held = await _run_row(db, run_id)
    assert (held.resolved_commit, held.backend, held.heartbeat_at) == (None, None, None)

    await recorder.set_state(run_id, StateCreate(type=StateType.PENDING))

    run = await _run_row(db, run_id)
    assert (run.resolved_commit, run.backend, run.process_id) == ("a" * 40, "local", 42)
    assert run.heartbeat_at is not None
    assert run.state_type == StateType.PENDING.value


async def test_reports_no_state_change_follows_are_written_within_the_flush_interval(
    db: Database, principal: Principal, recorder: DbRecorder
) -> None:
    first, second = await managed_runs(db, principal, 2)
    await recorder.report(first, ExecutionReport(sandbox_id="one"))
    await recorder.log(second, "sandbox started in 0.01 s")
    await recorder.report(second, ExecutionReport(sandbox_id="two"))

    for _ in range(100):
        await asyncio.sleep(LOG_FLUSH_SECONDS)
        written = [(await _run_row(db, r)).sandbox_id for r in (first, second)]
        if all(written):
            break
    assert written == ["one", "two"]
    assert await _messages(db, principal, second) == ["sandbox started in 0.01 s"]


async def test_a_teardown_writes_what_is_held_first_and_its_own_fields_last(
    db: Database, principal: Principal, recorder: DbRecorder
) -> None:
    [run_id] = await managed_runs(db, principal, 1)
    await recorder.report(run_id, ExecutionReport(backend="local", exit_code=3))
    await recorder.report(run_id, ExecutionReport(exit_code=0, cpu_seconds=0.5), teardown=True)
    run = await _run_row(db, run_id)
    assert (run.backend, run.exit_code, run.cpu_seconds) == ("local", 0, 0.5)
    await recorder.flush()  # nothing left held for it
    assert (await _run_row(db, run_id)).exit_code == 0


async def test_a_run_whose_workspace_it_was_told_is_written_without_reading_it(
    db: Database, principal: Principal, recorder: DbRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    [run_id] = await managed_runs(db, principal, 1)
    recorder.knows(run_id, principal.workspace_id)
    monkeypatch.setattr(Database, "lookup_session", None)  # any read for it would fail
    await recorder.log(run_id, "preparing compute for etl/nightly")
    await recorder.report(run_id, ExecutionReport(exit_code=0), teardown=True)
    assert await _messages(db, principal, run_id) == ["preparing compute for etl/nightly"]
