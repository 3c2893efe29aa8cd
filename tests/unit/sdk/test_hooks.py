from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowyard import flow, get_run_logger, task
from flowyard.sdk import CancelledRun, CancelRun, FlowRun, RecordingReporter, State, TaskRun


def test_flow_completion_hook_receives_flow_run_and_state() -> None:
    seen: list[tuple[str, str, str]] = []

    def on_done(flow: Any, flow_run: FlowRun, state: State[Any]) -> None:
        seen.append((flow.name, flow_run.flow_name, state.name))

    @flow(on_completion=[on_done])
    def happy() -> int:
        return 1

    happy()
    assert seen == [("happy", "happy", "Completed")]


def test_flow_failure_hook_runs_and_the_flow_still_raises() -> None:
    seen: list[str] = []

    @flow(on_failure=[lambda f, r, s: seen.append(s.message)])
    def sad() -> None:
        raise ValueError("broken")

    with pytest.raises(ValueError):
        sad()
    assert seen == ["Flow run encountered an exception: ValueError: broken"]


def test_failure_hooks_run_when_parameter_validation_fails() -> None:
    seen: list[str] = []

    @flow(on_failure=[lambda f, r, s: seen.append(s.name)])
    def typed(n: int) -> int:
        return n

    with pytest.raises(Exception, match="invalid parameters"):
        typed("not a number")  # type: ignore[arg-type]
    assert seen == ["Failed"]


def test_crashed_hook_runs_when_the_flow_is_interrupted() -> None:
    seen: list[str] = []

    @flow(on_crashed=[lambda f, r, s: seen.append(s.message)])
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert seen == ["Execution was aborted by an interrupt signal."]


def test_cancellation_hook_runs_when_the_flow_is_cancelled() -> None:
    seen: list[str] = []

    @flow(on_cancellation=[lambda f, r, s: seen.append(s.name)])
    def cancelled() -> None:
        raise CancelRun("operator asked")

    state = cancelled(return_state=True)
    assert state.is_cancelled()
    assert seen == ["Cancelled"]
    with pytest.raises(CancelledRun, match="operator asked"):
        cancelled()


def test_running_hook_runs_once_even_when_the_flow_is_retried() -> None:
    seen: list[str] = []
    attempts: list[int] = []

    @flow(on_running=[lambda f, r, s: seen.append(s.name)], retries=1)
    def flaky() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first attempt")

    flaky()
    assert len(attempts) == 2
    assert seen == ["Running"]


def test_task_hooks_receive_task_task_run_and_state() -> None:
    seen: list[tuple[str, str, str]] = []

    def record(task: Any, task_run: TaskRun, state: State[Any]) -> None:
        seen.append((task.name, task_run.task_name, state.name))

    @task(on_completion=[record])
    def good() -> int:
        return 1

    @task(on_failure=[record])
    def bad() -> None:
        raise ValueError("no")

    @flow
    def pipeline() -> None:
        good()
        bad.submit().wait()

    pipeline()
    assert seen == [("good", "good", "Completed"), ("bad", "bad", "Failed")]


def test_a_raising_hook_is_logged_and_does_not_change_the_outcome(
    reporter: RecordingReporter,
) -> None:
    def broken_hook(*_: object) -> None:
        raise RuntimeError("hook bug")

    @flow(on_completion=[broken_hook])
    def fine() -> int:
        return 3

    assert fine() == 3
    messages = reporter.log_messages()
    assert any("An error was encountered while running hook 'broken_hook'" in m for m in messages)
    assert any("RuntimeError: hook bug" in m for m in messages)


def test_hooks_are_logged_by_name(reporter: RecordingReporter) -> None:
    def notify(*_: object) -> None:
        get_run_logger().info("notified")

    @flow(on_completion=[notify])
    def fine() -> None:
        return None

    fine()
    messages = reporter.log_messages()
    assert "Running hook 'notify' in response to entering state 'Completed'" in messages
    assert "notified" in messages
    assert "Hook 'notify' finished running successfully" in messages


def test_async_hooks_are_awaited_in_sync_and_async_flows() -> None:
    seen: list[str] = []

    async def async_hook(f: Any, r: Any, s: State[Any]) -> None:
        await asyncio.sleep(0)
        seen.append(s.name)

    @flow(on_completion=[async_hook])
    def sync_flow() -> None:
        return None

    @flow(on_completion=[async_hook])
    async def async_flow() -> None:
        return None

    sync_flow()
    asyncio.run(async_flow())
    assert seen == ["Completed", "Completed"]


def test_hooks_must_be_callables() -> None:
    def work() -> None:
        return None

    with pytest.raises(TypeError, match="Expected callables in 'on_failure'"):
        flow(on_failure=["not callable"])(work)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="Expected iterable for 'on_completion'"):
        task(on_completion=print)(work)  # type: ignore[arg-type]
