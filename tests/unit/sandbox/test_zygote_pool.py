"""The server's set of zygotes: one start per key however many runs wait, least recently used
and idle ones stopped, a failed start never waited on again."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from flowyard.execution.sandbox import SandboxSpec
from flowyard.execution.sandbox._zygotes import Key, Zygote, Zygotes


class FakeProcess:
    """Just what :class:`Zygote` asks of its process."""

    _next_pid = 40_000

    def __init__(self) -> None:
        FakeProcess._next_pid += 1
        self.pid = FakeProcess._next_pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self.returncode = 0
        return 0

    def kill(self) -> None:
        self.returncode = -9


class Starts:
    """A zygote start that counts its calls and can be held back or made to fail."""

    def __init__(self) -> None:
        self.calls: list[Key] = []
        self.release = threading.Event()
        self.release.set()
        self.fail = False
        self.made: list[Zygote] = []

    def __call__(self, key: Key, spec: SandboxSpec) -> Zygote:
        self.calls.append(key)
        assert self.release.wait(30)
        if self.fail:
            raise OSError("no bubblewrap here")
        ours, theirs = socket.socketpair()
        theirs.close()
        zygote = Zygote(key, FakeProcess(), ours)  # type: ignore[arg-type]
        self.made.append(zygote)
        return zygote


def spec(module: str = "runner", run: str = "r") -> SandboxSpec:
    return SandboxSpec(
        run_id=run,
        argv=["{python}", "-m", module],
        runtime_dir=Path("/opt/python"),
        sdk_dir=Path("/cache/sdk/1"),
        env={"FLOWYARD_RUN_ID": run},
        standby=True,
    )


async def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "never came true"
        await asyncio.sleep(0.02)


async def first(zygotes: Zygotes, wanted: SandboxSpec, seconds: float = 30) -> Zygote | None:
    return await zygotes.acquire(wanted, seconds)


async def test_runs_arriving_while_a_zygote_starts_wait_for_that_one_start() -> None:
    starts = Starts()
    starts.release.clear()
    zygotes = Zygotes(starts)
    try:
        waiting = [asyncio.create_task(first(zygotes, spec(run=str(i)))) for i in range(5)]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in waiting)
        starts.release.set()
        got = await asyncio.gather(*waiting)
        assert len(starts.calls) == 1
        assert all(zygote is starts.made[0] for zygote in got)
        assert zygotes.get(spec(run="later")) is starts.made[0]
    finally:
        zygotes.close()


async def test_a_failed_start_releases_its_waiters_and_is_not_retried_at_once() -> None:
    starts = Starts()
    starts.fail = True
    zygotes = Zygotes(starts, retry_seconds=600)
    try:
        # Well within the bound: the failure answers them, not the clock.
        assert await asyncio.wait_for(first(zygotes, spec(), seconds=600), 30) is None
        starts.fail = False
        assert await first(zygotes, spec()) is None  # cold, without another try
        assert await first(zygotes, spec("other")) is starts.made[0]  # other keys are tried
        assert len(starts.calls) == 2
    finally:
        zygotes.close()


async def test_after_its_retry_time_a_key_whose_zygote_failed_is_tried_again() -> None:
    starts = Starts()
    starts.fail = True
    zygotes = Zygotes(starts, retry_seconds=0)
    try:
        assert await first(zygotes, spec()) is None
        starts.fail = False
        assert await first(zygotes, spec()) is starts.made[0]
        assert len(starts.calls) == 2
    finally:
        zygotes.close()


async def test_once_a_run_waited_its_bound_in_vain_later_runs_start_cold_at_once() -> None:
    starts = Starts()
    starts.release.clear()  # a start that hangs
    zygotes = Zygotes(starts)
    try:
        assert await first(zygotes, spec(), seconds=0.01) is None
        # A later run would wait up to 600 s: it does not wait at all.
        assert await asyncio.wait_for(first(zygotes, spec(), seconds=600), 30) is None
        starts.release.set()
        await until(lambda: bool(zygotes.pids))
        assert await first(zygotes, spec()) is starts.made[0]
        assert len(starts.calls) == 1
    finally:
        zygotes.close()


async def test_beyond_the_limit_the_least_recently_used_zygote_is_stopped() -> None:
    starts = Starts()
    zygotes = Zygotes(starts, limit=2)
    try:
        a = await first(zygotes, spec("a"))
        b = await first(zygotes, spec("b"))
        assert zygotes.get(spec("a")) is a  # a is now the most recently used
        c = await first(zygotes, spec("c"))
        assert a is not None
        assert b is not None
        assert c is not None
        assert sorted(zygotes.pids) == sorted([a.process.pid, c.process.pid])
        await until(lambda: not b.alive)  # stopped after c's waiters were answered
        assert a.alive
        assert c.alive
    finally:
        zygotes.close()


async def test_a_zygote_unused_for_its_idle_time_is_stopped() -> None:
    starts = Starts()
    zygotes = Zygotes(starts, idle_seconds=0.2)
    try:
        zygote = await first(zygotes, spec())
        assert zygote is not None
        await until(lambda: not zygote.alive)
        assert zygotes.pids == []
        assert await first(zygotes, spec()) is starts.made[1]  # the next run starts another
    finally:
        zygotes.close()


async def test_closing_stops_every_zygote_and_no_more_start() -> None:
    starts = Starts()
    zygotes = Zygotes(starts)
    zygote = await first(zygotes, spec())
    zygotes.close()
    assert zygote is not None
    assert not zygote.alive
    assert await first(zygotes, spec("other")) is None
    assert len(starts.calls) == 1
