from __future__ import annotations

import threading
import time

import pytest

from flowyard import flow, task
from flowyard.task_runners import ConcurrentTaskRunner, ThreadPoolTaskRunner


def test_concurrent_task_runner_is_the_thread_pool() -> None:
    assert ConcurrentTaskRunner is ThreadPoolTaskRunner


def test_submitted_tasks_run_concurrently() -> None:
    barrier = threading.Barrier(4, timeout=5)

    @task
    def meet() -> bool:
        barrier.wait()
        return True

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
    def pipeline() -> list[bool]:
        futures = [meet.submit() for _ in range(4)]
        return [f.result() for f in futures]

    assert pipeline() == [True] * 4


def test_a_tiny_pool_does_not_deadlock_on_nested_waits() -> None:
    @task
    def leaf(i: int) -> int:
        return i

    @task
    def parent(i: int) -> int:
        return leaf.submit(i).result() + leaf.submit(i).result()

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
    def pipeline() -> list[int]:
        return parent.map(range(5)).result()

    assert pipeline() == [0, 2, 4, 6, 8]


def test_a_task_with_pending_dependencies_does_not_hold_a_thread() -> None:
    release = threading.Event()
    running: list[str] = []

    @task
    def upstream() -> int:
        release.wait(5)
        return 1

    @task
    def downstream(x: int) -> int:
        running.append("downstream")
        return x + 1

    @task
    def independent() -> str:
        running.append("independent")
        release.set()
        return "ok"

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def pipeline() -> tuple[int, str]:
        up = upstream.submit()
        down = downstream.submit(up)
        side = independent.submit()
        return down.result(), side.result()

    assert pipeline() == (2, "ok")
    assert running == ["independent", "downstream"]


def test_max_workers_defaults_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWYARD_TASK_RUNNER_THREAD_POOL_MAX_WORKERS", "7")
    assert ThreadPoolTaskRunner().max_workers == 7
    assert ThreadPoolTaskRunner(max_workers=2).duplicate().max_workers == 2
    with pytest.raises(ValueError, match="at least 1"):
        ThreadPoolTaskRunner(max_workers=0)


def test_each_flow_run_gets_its_own_runner_and_waits_for_it() -> None:
    finished: list[float] = []

    @task
    def slow() -> None:
        time.sleep(0.05)
        finished.append(time.monotonic())

    runner = ThreadPoolTaskRunner(max_workers=2)

    @flow(task_runner=runner)
    def pipeline() -> float:
        slow.submit()
        slow.submit()
        return time.monotonic()

    returned_inside = pipeline()
    assert len(finished) == 2
    assert all(t >= returned_inside for t in finished)
    assert runner._executor is None


def test_an_interrupted_flow_cancels_tasks_that_have_not_started() -> None:
    started: list[int] = []
    gate = threading.Event()

    @task
    def blocker() -> None:
        gate.wait(5)

    @task
    def queued(i: int) -> None:
        started.append(i)

    captured: list[object] = []

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
    def pipeline() -> None:
        blocker.submit()
        captured.extend(queued.submit(i) for i in range(3))
        # The blocker holds the only worker until well after the interrupt.
        threading.Timer(0.3, gate.set).start()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipeline()
    assert [f.state.name for f in captured] == ["Cancelled"] * 3  # type: ignore[attr-defined]
    assert started == []


def test_the_flows_own_thread_does_not_add_to_the_pools_concurrency() -> None:
    lock = threading.Lock()
    active = [0, 0]

    @task
    def work() -> None:
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def pipeline() -> None:
        for future in [work.submit() for _ in range(8)]:
            future.result()

    pipeline()
    assert active[1] == 2


def test_a_cancelled_flow_does_not_start_its_queued_task_runs() -> None:
    from flowyard.sdk import CancelRun

    gate = threading.Event()
    started: list[int] = []
    captured: list[object] = []

    @task
    def blocker() -> None:
        gate.wait(5)

    @task
    def queued(i: int) -> None:
        started.append(i)

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
    def pipeline() -> None:
        blocker.submit()
        captured.extend(queued.submit(i) for i in range(2))
        threading.Timer(0.3, gate.set).start()
        raise CancelRun("stop requested")

    state = pipeline(return_state=True)
    assert state.is_cancelled()
    assert [f.state.name for f in captured] == ["Cancelled", "Cancelled"]  # type: ignore[attr-defined]
    assert started == []
