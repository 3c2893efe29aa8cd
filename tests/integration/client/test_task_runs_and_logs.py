"""Task runs and logs through the client, including a live follow over a real socket."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from flowyard.client import (
    FlowyardClient,
    LogEvent,
    LogReceived,
    NotFoundError,
    RetryPolicy,
    StateChanged,
)
from flowyard.schemas import flow_runs as fr
from flowyard.schemas import logs as lg
from flowyard.schemas import task_runs as tr
from flowyard.schemas.states import StateCreate, StateType
from flowyard.schemas.workspaces import WorkspaceCreate
from tests.integration.client.conftest import ClientFactory

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


async def running_run(client: FlowyardClient) -> fr.FlowRun:
    return await client.create_ad_hoc_flow_run(fr.AdHocFlowRunCreate(flow_name="etl"))


def task_state(
    run: fr.FlowRun, task_id: uuid.UUID, state: StateType, seconds: int, name: str = "extract"
) -> tr.TaskRunUpsert:
    return tr.TaskRunUpsert(
        id=task_id,
        flow_run_id=run.id,
        name=name,
        state_type=state,
        timestamp=T0 + timedelta(seconds=seconds),
    )


def lines(run: fr.FlowRun, *messages: str, level: int = 20) -> list[lg.LogCreate]:
    return [
        lg.LogCreate(
            flow_run_id=run.id,
            level=level,
            name="etl",
            message=message,
            timestamp=T0 + timedelta(milliseconds=i),
        )
        for i, message in enumerate(messages)
    ]


async def test_a_batch_of_task_states_is_upserted_once_and_read_back(
    client: FlowyardClient,
) -> None:
    run = await running_run(client)
    extract, load = uuid.uuid4(), uuid.uuid4()
    batch = [
        task_state(run, extract, StateType.PENDING, 0),
        task_state(run, extract, StateType.RUNNING, 1),
        task_state(run, extract, StateType.COMPLETED, 2),
        task_state(run, load, StateType.RUNNING, 3, name="load"),
    ]
    result = await client.upsert_task_runs(batch)
    assert result.created == 2
    assert (await client.upsert_task_runs(batch)).duplicates == len(batch)
    page = await client.list_task_runs(run.id)
    assert [t.id for t in page.items] == [extract, load]
    one_by_one = [t.id async for t in client.iter_task_runs(run.id, page_size=1)]
    assert one_by_one == [extract, load]
    done = await client.list_task_runs(run.id, states=[StateType.COMPLETED])
    assert [t.name for t in done.items] == ["extract"]
    assert (await client.read_task_run(load)).state_type is StateType.RUNNING
    history = await client.read_task_run_states(extract)
    assert [s.type for s in history] == [StateType.PENDING, StateType.RUNNING, StateType.COMPLETED]


async def test_an_unknown_task_run_is_not_found(client: FlowyardClient) -> None:
    with pytest.raises(NotFoundError):
        await client.read_task_run(uuid.uuid4())


async def test_thousands_of_lines_are_written_at_once_and_iterated_in_order(
    client: FlowyardClient,
) -> None:
    run = await running_run(client)
    messages = [f"line {i}" for i in range(2500)]
    written = await client.write_logs(lines(run, *messages))
    assert written.count == 2500
    read = [log.message async for log in client.iter_logs(run.id, page_size=1000)]
    assert read == messages
    first = await client.read_logs(run.id, limit=10)
    assert first.has_more
    assert first.next_cursor == first.items[-1].id


async def test_lines_are_filtered_by_level_and_search(client: FlowyardClient) -> None:
    run = await running_run(client)
    await client.write_logs(lines(run, "quiet", "loud 100%") + lines(run, "alarm", level=40))
    warnings = await client.read_logs(run.id, level=30)
    assert [log.message for log in warnings.items] == ["alarm"]
    found = [log.message async for log in client.iter_logs(run.id, search="100%")]
    assert found == ["loud 100%"]


async def test_following_a_finished_run_replays_its_lines_and_final_state_then_stops(
    client: FlowyardClient,
) -> None:
    run = await running_run(client)
    await client.write_logs(lines(run, "one", "two"))
    await client.set_flow_run_state(run.id, StateCreate(type=StateType.COMPLETED))
    events = [event async for event in client.follow_logs(run.id)]
    assert [e.log.message for e in events if isinstance(e, LogReceived)] == ["one", "two"]
    states = [e for e in events if isinstance(e, StateChanged)]
    assert states[-1].type is StateType.COMPLETED


async def test_following_from_a_known_line_sends_only_later_ones(client: FlowyardClient) -> None:
    run = await running_run(client)
    await client.write_logs(lines(run, "old", "new"))
    await client.set_flow_run_state(run.id, StateCreate(type=StateType.FAILED))
    first = (await client.read_logs(run.id, limit=1)).items[0]
    events = [e async for e in client.follow_logs(run.id, after=first.id)]
    assert [e.log.message for e in events if isinstance(e, LogReceived)] == ["new"]


async def test_following_a_live_run_streams_lines_and_states_as_they_happen(
    client: FlowyardClient, admin_key: str, live_api: str
) -> None:
    run = await running_run(client)
    await client.write_logs(lines(run, "before"))
    seen: list[LogEvent] = []
    first_line = asyncio.Event()

    async def follow() -> None:
        async with FlowyardClient(live_api, admin_key, retry=RetryPolicy(attempts=0)) as live:
            async for event in live.follow_logs(run.id):
                seen.append(event)
                if isinstance(event, LogReceived):
                    first_line.set()

    follower = asyncio.create_task(follow())
    async with asyncio.timeout(20):
        await first_line.wait()
        # Written after the follower saw the first line: these arrive live.
        await client.write_logs(lines(run, "during 1", "during 2"))
        await client.set_flow_run_state(run.id, StateCreate(type=StateType.COMPLETED))
        await follower
    messages = [e.log.message for e in seen if isinstance(e, LogReceived)]
    assert messages == ["before", "during 1", "during 2"]
    states = [e.type for e in seen if isinstance(e, StateChanged)]
    assert states[0] is StateType.RUNNING
    assert states[-1] is StateType.COMPLETED


async def test_following_a_run_of_another_workspace_is_not_found(
    client: FlowyardClient, client_for: ClientFactory
) -> None:
    run = await running_run(client)
    other_key = (await client.create_workspace(WorkspaceCreate(name="other"))).key
    async with client_for(other_key) as other:
        with pytest.raises(NotFoundError):
            async for _ in other.follow_logs(run.id):
                pass
