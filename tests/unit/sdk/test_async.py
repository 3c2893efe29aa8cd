from __future__ import annotations

import asyncio
import threading

import pytest

from flowyard import flow, get_run_logger, task
from flowyard.sdk import RecordingReporter, StateChanged


@task
async def fetch(x: int) -> int:
    await asyncio.sleep(0.01)
    return x * 10


@task
def plain(x: int) -> int:
    return x + 1


def test_an_async_flow_returns_a_coroutine_that_runs_it() -> None:
    @flow
    async def pipeline(x: int) -> int:
        return await fetch(x)

    coroutine = pipeline(2)
    assert asyncio.iscoroutine(coroutine)
    assert asyncio.run(coroutine) == 20


def test_async_tasks_run_concurrently_with_gather() -> None:
    @task
    async def sleepy(i: int) -> int:
        await asyncio.sleep(0.1)
        return i

    @flow
    async def pipeline() -> list[int]:
        return list(await asyncio.gather(*(sleepy(i) for i in range(10))))

    loop = asyncio.new_event_loop()
    try:
        started = loop.time()
        assert loop.run_until_complete(pipeline()) == list(range(10))
        assert loop.time() - started < 0.9
    finally:
        loop.close()


def test_an_async_flow_can_call_sync_tasks_and_submit_async_ones() -> None:
    @flow
    async def pipeline() -> int:
        first = plain(1)
        future = fetch.submit(first)
        return future.result() + await fetch(1)

    assert asyncio.run(pipeline()) == 30


def test_a_sync_flow_can_submit_async_tasks() -> None:
    @flow
    def pipeline() -> list[int]:
        return fetch.map([1, 2, 3]).result()

    assert pipeline() == [10, 20, 30]


def test_an_async_task_can_be_awaited_outside_a_flow() -> None:
    assert asyncio.run(fetch(4)) == 40


def test_async_failures_raise_and_states_are_reported(reporter: RecordingReporter) -> None:
    @task
    async def broken() -> None:
        raise ValueError("async boom")

    @flow
    async def pipeline() -> None:
        await broken()

    with pytest.raises(ValueError, match="async boom"):
        asyncio.run(pipeline())
    names = [e.state.name for e in reporter.of_type(StateChanged)]
    assert names == ["Pending", "Running", "Pending", "Running", "Failed", "Failed"]


def test_async_subflows_link_to_their_parent() -> None:
    @flow
    async def child(x: int) -> int:
        return x + 1

    @flow
    async def parent() -> int:
        return await child(1) + await child(2)

    assert asyncio.run(parent()) == 5


def test_async_retries_sleep_without_blocking_the_loop() -> None:
    attempts: list[int] = []
    ticks: list[int] = []

    @task(retries=2, retry_delay_seconds=0.05)
    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("again")
        return "ok"

    async def ticker() -> None:
        for _ in range(5):
            ticks.append(1)
            await asyncio.sleep(0.01)

    @flow
    async def pipeline() -> str:
        results = await asyncio.gather(flaky(), ticker())
        return results[0]

    assert asyncio.run(pipeline()) == "ok"
    assert len(ticks) == 5


def test_run_logger_works_in_async_tasks(reporter: RecordingReporter) -> None:
    @task
    async def chatty() -> None:
        get_run_logger().info("from async task on %s", threading.current_thread().name)

    @flow
    async def pipeline() -> None:
        await chatty()

    asyncio.run(pipeline())
    assert any(m.startswith("from async task on ") for m in reporter.log_messages())
