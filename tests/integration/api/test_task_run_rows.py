"""Rows of the batch path's bulk insert read back exactly as rows written through the ORM."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import Table, select

from flowyard.server.context import ServerContext
from flowyard.server.db import models as m
from flowyard.server.ops import _bulk
from tests.integration.api.test_task_runs import new_run

PLUS_TWO = timezone(timedelta(hours=2))
ON_THE_SECOND = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
WITH_MICROSECONDS = datetime(2030, 1, 1, 14, 0, 0, 123456, tzinfo=PLUS_TWO)


def _columns(table: Any) -> tuple[str, ...]:
    return tuple(c.name for c in cast("Table", table).columns)


def _values(row: Any, skip: tuple[str, ...]) -> dict[str, Any]:
    return {c: getattr(row, c) for c in _columns(type(row).__table__) if c not in skip}


async def _workspace(ctx: ServerContext, run_id: uuid.UUID) -> uuid.UUID:
    async with ctx.db.session() as session:
        run = await session.get(m.FlowRun, run_id)
        assert run is not None
        return run.workspace_id


async def test_bulk_rows_read_back_as_orm_rows_do(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    run = uuid.UUID(await new_run(client))
    workspace = await _workspace(ctx, run)
    task: dict[str, Any] = {
        "workspace_id": workspace,
        "flow_run_id": run,
        "name": "extract-1",
        "task_key": "flows.etl.extract",
        "dynamic_key": "1",
        "cache_key": None,
        "tags": ["ünïcode", "b"],
        "state_type": "COMPLETED",
        "state_name": "Completed",
        "state_message": "done\nwell",
        "state_timestamp": WITH_MICROSECONDS,
        "run_count": 2,
        "max_retries": 1,
        "start_time": ON_THE_SECOND,
        "end_time": None,
        "created": ON_THE_SECOND,
    }
    orm_task, bulk_task = uuid.uuid4(), uuid.uuid4()
    state = {"type": "RUNNING", "name": "Running", "message": "", "timestamp": ON_THE_SECOND}
    line = {
        "workspace_id": workspace,
        "flow_run_id": run,
        "level": 20,
        "name": "flowyard",
        "message": "hello",
        "timestamp": WITH_MICROSECONDS,
    }
    async with ctx.db.session() as session:
        session.add(m.TaskRun(id=orm_task, **task))
        await session.flush()
        session.add(m.TaskRunState(id=uuid.uuid4(), task_run_id=orm_task, **state))
        session.add(m.Log(task_run_id=orm_task, **line))
        await session.flush()
        await _bulk.insert_rows(
            session, m.TaskRun.__table__, _columns(m.TaskRun.__table__), [{"id": bulk_task, **task}]
        )
        await _bulk.insert_rows(
            session,
            m.TaskRunState.__table__,
            _columns(m.TaskRunState.__table__),
            [{"id": uuid.uuid4(), "task_run_id": bulk_task, **state}],
        )
        log_columns = (*line, "task_run_id")
        await _bulk.insert_rows(
            session,
            m.Log.__table__,
            log_columns,
            [{**line, "task_run_id": bulk_task}, {**line, "task_run_id": None}],
        )
    async with ctx.db.session() as session:
        tasks = {t.id: t for t in (await session.execute(select(m.TaskRun))).scalars()}
        assert _values(tasks[bulk_task], ("id",)) == _values(tasks[orm_task], ("id",))
        assert tasks[bulk_task].state_timestamp == WITH_MICROSECONDS
        states = {
            s.task_run_id: s for s in (await session.execute(select(m.TaskRunState))).scalars()
        }
        skip = ("id", "task_run_id")
        assert _values(states[bulk_task], skip) == _values(states[orm_task], skip)
        lines = list((await session.execute(select(m.Log).order_by(m.Log.id))).scalars())
        assert [x.task_run_id for x in lines] == [orm_task, bulk_task, None]
        assert _values(lines[1], skip) == _values(lines[0], skip)
        assert lines[0].id < lines[1].id < lines[2].id
        if ctx.db.dialect == "sqlite":
            # The same stored text: SQL comparisons and ordering see no difference.
            conn = await session.connection()
            raw = (
                await conn.exec_driver_sql(
                    "SELECT id, workspace_id, tags, state_timestamp, start_time, created "
                    "FROM task_runs ORDER BY id = ?",
                    (orm_task.hex,),
                )
            ).all()
            assert raw[0][0] == bulk_task.hex
            assert raw[0][1:] == raw[1][1:]
            on_the_second = "2030-01-01 12:00:00.000000"
            assert raw[0][3:] == ("2030-01-01 12:00:00.123456", on_the_second, on_the_second)


async def test_a_naive_time_is_refused_by_the_bulk_insert(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    run = uuid.UUID(await new_run(client))
    workspace = await _workspace(ctx, run)
    line = {
        "workspace_id": workspace,
        "flow_run_id": run,
        "task_run_id": None,
        "level": 20,
        "name": "",
        "message": "when?",
        "timestamp": datetime(2030, 1, 1),
    }
    with pytest.raises(ValueError, match="naive datetime"):
        async with ctx.db.session() as session:
            await _bulk.insert_rows(session, m.Log.__table__, tuple(line), [line])


async def test_bulk_updates_change_rows_as_orm_updates_do(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    run = uuid.UUID(await new_run(client))
    workspace = await _workspace(ctx, run)
    before: dict[str, Any] = {
        "workspace_id": workspace,
        "flow_run_id": run,
        "name": "load-1",
        "tags": [],
        "state_type": "RUNNING",
        "state_name": "Running",
        "state_timestamp": ON_THE_SECOND,
        "start_time": ON_THE_SECOND,
        "created": ON_THE_SECOND,
    }
    after: dict[str, Any] = {
        "name": "load-1b",
        "cache_key": "key",
        "tags": ["x"],
        "state_type": "FAILED",
        "state_name": "Failed",
        "state_message": "boom",
        "state_timestamp": WITH_MICROSECONDS,
        "run_count": 3,
        "start_time": None,
        "end_time": WITH_MICROSECONDS,
    }
    orm_task, bulk_task, untouched = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with ctx.db.session() as session:
        for ident in (orm_task, bulk_task, untouched):
            session.add(m.TaskRun(id=ident, **before))
    async with ctx.db.session() as session:
        orm_row = await session.get(m.TaskRun, orm_task)
        assert orm_row is not None
        for column, value in after.items():
            setattr(orm_row, column, value)
        await session.flush()
        await _bulk.update_rows(
            session, m.TaskRun.__table__, tuple(after), [{"id": bulk_task, **after}]
        )
    async with ctx.db.session() as session:
        rows = {t.id: t for t in (await session.execute(select(m.TaskRun))).scalars()}
    assert _values(rows[bulk_task], ("id",)) == _values(rows[orm_task], ("id",))
    assert rows[bulk_task].state_type == "FAILED"
    assert (rows[untouched].state_type, rows[untouched].name) == ("RUNNING", "load-1")


def test_new_ids_are_distinct_time_ordered_version_7_uuids() -> None:
    before = time.time_ns() // 1_000_000
    ids = _bulk.new_ids(500)
    after = time.time_ns() // 1_000_000
    parsed = [uuid.UUID(hex=i) for i in ids]
    assert len(set(ids)) == 500
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    assert [u.hex for u in parsed] == ids
    assert all(before <= u.int >> 80 <= after for u in parsed)
    time.sleep(0.002)
    assert _bulk.new_ids(1)[0] > max(ids)  # a later batch sorts after
