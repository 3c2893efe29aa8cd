from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any

import pytest

from flowyard import flow, task, wait
from flowyard.sdk import (
    FlowRunTimeoutError,
    RecordingReporter,
    StateChanged,
    TaskRunTimeoutError,
    exponential_backoff,
)
from flowyard.sdk._task_engine import jittered


def _task_states(reporter: RecordingReporter) -> list[str]:
    return [e.state.name for e in reporter.of_type(StateChanged) if e.run_kind == "task"]


def test_a_task_is_retried_until_it_succeeds(reporter: RecordingReporter) -> None:
    calls: list[float] = []

    @task(retries=3, retry_delay_seconds=0.01)
    def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ConnectionError("try again")
        return "ok"

    @flow
    def pipeline() -> str:
        return flaky()

    assert pipeline() == "ok"
    assert len(calls) == 3
    assert all(b - a >= 0.009 for a, b in itertools.pairwise(calls))
    assert _task_states(reporter) == [
        "Pending",
        "Running",
        "AwaitingRetry",
        "Retrying",
        "AwaitingRetry",
        "Retrying",
        "Completed",
    ]
    completed = reporter.of_type(StateChanged)[-2]
    assert completed.run_count == 3


def test_retry_delays_given_as_a_list_are_used_in_order_and_the_last_repeats() -> None:
    calls: list[float] = []

    @task(retries=3, retry_delay_seconds=[0.0, 0.05, 0.0])
    def flaky() -> None:
        calls.append(time.monotonic())
        raise ConnectionError("never")

    @flow
    def pipeline() -> None:
        flaky()

    state = pipeline(return_state=True)
    assert state.is_failed()
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert len(calls) == 4
    assert gaps[0] < 0.04
    assert gaps[1] >= 0.045
    assert gaps[2] < 0.04


def test_a_task_without_retries_fails_on_the_first_error() -> None:
    calls: list[int] = []

    @task
    def once() -> None:
        calls.append(1)
        raise ValueError("no")

    with pytest.raises(ValueError):
        once()
    assert calls == [1]


def test_retry_condition_fn_can_stop_retries() -> None:
    calls: list[str] = []

    def only_connection_errors(task: Any, task_run: Any, state: Any) -> bool:
        return isinstance(state.result(raise_on_failure=False), ConnectionError)

    @task(retries=5, retry_condition_fn=only_connection_errors)
    def fussy() -> None:
        calls.append("call")
        if len(calls) == 1:
            raise ConnectionError("retry me")
        raise ValueError("do not retry me")

    with pytest.raises(ValueError):
        fussy()
    assert len(calls) == 2


def test_exponential_backoff_doubles_each_delay() -> None:
    assert exponential_backoff(backoff_factor=2)(4) == [2, 4, 8, 16]
    configured = task(retries=3, retry_delay_seconds=exponential_backoff(1))(lambda: None)
    assert configured.retry_delay_seconds == [1.0, 2.0, 4.0]


def test_jitter_keeps_delays_within_the_factor() -> None:
    delays = [jittered(10.0, 0.5) for _ in range(500)]
    assert all(0 <= d <= 15.0 for d in delays)
    assert len({round(d, 6) for d in delays}) > 100
    assert jittered(10.0, None) == 10.0


def test_negative_jitter_or_too_many_delays_are_refused() -> None:
    with pytest.raises(ValueError, match="retry_jitter_factor"):
        task(retry_jitter_factor=-1)(lambda: None)
    with pytest.raises(ValueError, match="more than 50"):
        task(retries=60, retry_delay_seconds=[1.0] * 51)(lambda: None)


def test_a_flow_is_retried_as_a_whole(reporter: RecordingReporter) -> None:
    attempts: list[int] = []

    @flow(retries=2, retry_delay_seconds=0.01)
    def shaky() -> int:
        attempts.append(1)
        if len(attempts) < 2:
            raise RuntimeError("first attempt fails")
        return len(attempts)

    assert shaky() == 2
    flow_states = [e.state.name for e in reporter.of_type(StateChanged) if e.run_kind == "flow"]
    assert flow_states == ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"]


def test_a_slow_task_times_out_in_the_main_thread() -> None:
    @task(timeout_seconds=0.1)
    def slow() -> None:
        time.sleep(5)

    @flow
    def pipeline() -> None:
        slow()

    started = time.monotonic()
    state = pipeline(return_state=True)
    assert time.monotonic() - started < 2
    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), TaskRunTimeoutError)


def test_a_timed_out_task_state_is_named_timed_out() -> None:
    @task(timeout_seconds=0.05)
    def slow() -> None:
        time.sleep(2)

    @flow
    def pipeline() -> tuple[str, str]:
        state = slow(return_state=True)  # type: ignore[call-arg]
        return state.name, state.message  # type: ignore[attr-defined]

    assert pipeline() == ("TimedOut", "Task run exceeded timeout of 0.05 second(s)")


def test_a_submitted_task_times_out_in_its_worker_thread() -> None:
    threads: list[bool] = []

    @task(timeout_seconds=0.05)
    def busy() -> None:
        threads.append(threading.current_thread() is threading.main_thread())
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            time.sleep(0.01)

    @flow
    def pipeline() -> str:
        future = busy.submit()
        wait([future])
        return future.state.name

    started = time.monotonic()
    assert pipeline() == "TimedOut"
    assert time.monotonic() - started < 2.5
    assert threads == [False]


def test_timed_out_tasks_are_retried_like_failures() -> None:
    attempts: list[int] = []

    @task(timeout_seconds=0.05, retries=1)
    def slow_then_fast() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            time.sleep(2)
        return "fast"

    assert slow_then_fast() == "fast"
    assert len(attempts) == 2


def test_an_async_task_times_out() -> None:
    @task(timeout_seconds=0.05)
    async def slow() -> None:
        await asyncio.sleep(5)

    @flow
    async def pipeline() -> None:
        await slow()

    with pytest.raises(TaskRunTimeoutError):
        asyncio.run(pipeline())


def test_a_flow_times_out() -> None:
    @flow(timeout_seconds=0.1)
    def slow() -> None:
        time.sleep(5)

    state = slow(return_state=True)
    assert state.name == "TimedOut"
    assert state.message == "Flow run exceeded timeout of 0.1 second(s)"
    with pytest.raises(FlowRunTimeoutError):
        slow()


def test_a_timeout_does_not_fire_after_the_task_finished() -> None:
    @task(timeout_seconds=0.05)
    def quick() -> int:
        return 1

    @flow
    def pipeline() -> int:
        value = quick()
        time.sleep(0.1)
        return value

    assert pipeline() == 1


def test_timeout_seconds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        task(timeout_seconds=0)(lambda: None)
