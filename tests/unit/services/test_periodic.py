"""The service loop: survives a failing pass, wakes on demand, stops at once when cancelled.

Every wait below is bounded by a generous timeout that only turns a hang into
a failure; nothing asserts on how long anything took.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from flowyard.server.services.periodic import Wakeup, run_periodically

HANG = 10.0  # seconds before a stuck loop counts as a failure


async def test_a_pass_that_raises_is_logged_with_its_traceback_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0
    second = asyncio.Event()

    async def tick() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database went away")
        second.set()

    task = asyncio.create_task(run_periodically("test", tick, interval=0))
    with caplog.at_level(logging.ERROR, logger="flowyard.services"):
        await asyncio.wait_for(second.wait(), HANG)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    failures = [r for r in caplog.records if "pass failed" in r.getMessage()]
    assert failures
    assert failures[0].exc_info is not None
    assert "database went away" in str(failures[0].exc_info[1])


async def test_a_wakeup_runs_the_next_pass_before_the_interval() -> None:
    wakeup = Wakeup()
    passes: list[int] = []
    ran = asyncio.Event()

    async def tick() -> None:
        passes.append(len(passes))
        ran.set()

    task = asyncio.create_task(run_periodically("test", tick, interval=3600, wakeup=wakeup))
    await asyncio.wait_for(ran.wait(), HANG)
    ran.clear()
    wakeup.wake()
    await asyncio.wait_for(ran.wait(), HANG)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert passes == [0, 1]


async def test_a_cancelled_loop_stops_while_waiting_and_unsubscribes() -> None:
    wakeup = Wakeup()
    ran = asyncio.Event()

    async def tick() -> None:
        ran.set()

    task = asyncio.create_task(run_periodically("test", tick, interval=3600, wakeup=wakeup))
    await asyncio.wait_for(ran.wait(), HANG)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, HANG)
    assert wakeup._waiters == set()


async def test_a_cancelled_loop_stops_in_the_middle_of_a_pass() -> None:
    started = asyncio.Event()

    async def tick() -> None:
        started.set()
        await asyncio.Event().wait()  # a pass stuck on I/O

    task = asyncio.create_task(run_periodically("test", tick, interval=3600))
    await asyncio.wait_for(started.wait(), HANG)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, HANG)
    assert task.cancelled()
