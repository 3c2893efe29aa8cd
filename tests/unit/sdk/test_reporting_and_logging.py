from __future__ import annotations

import logging
import sys
import threading

import pytest

from flowyard import flow, get_run_logger, task
from flowyard.logging import disable_run_logger
from flowyard.sdk import (
    FlowRunFinished,
    FlowRunStarted,
    LogEmitted,
    MissingContextError,
    RecordingReporter,
    StateChanged,
    TaskRunCreated,
    _logging,
    current_reporter,
    set_reporter,
    use_reporter,
)


@task
def square(x: int) -> int:
    return x * x


def test_the_recording_reporter_sees_runs_states_and_logs_in_order(
    reporter: RecordingReporter,
) -> None:
    @flow
    def pipeline(n: int) -> int:
        get_run_logger().info("starting with %d", n)
        return square(n)

    assert pipeline(3) == 9
    kinds = [type(e).__name__ for e in reporter.events]
    assert kinds == [
        "FlowRunStarted",
        "StateChanged",  # flow Pending
        "StateChanged",  # flow Running
        "LogEmitted",  # starting with 3
        "TaskRunCreated",
        "StateChanged",  # task Pending
        "StateChanged",  # task Running
        "StateChanged",  # task Completed
        "LogEmitted",  # task Finished in state Completed()
        "StateChanged",  # flow Completed
        "LogEmitted",  # flow Finished in state Completed()
        "FlowRunFinished",
    ]
    started = reporter.of_type(FlowRunStarted)[0]
    assert started.flow_name == "pipeline"
    assert started.parameters == {"n": 3}
    assert started.parent_task_run_id is None
    created = reporter.of_type(TaskRunCreated)[0]
    assert created.flow_run_id == started.flow_run_id
    assert created.task_name == "square"
    logs = reporter.of_type(LogEmitted)
    assert logs[0].message == "starting with 3"
    assert logs[0].flow_run_id == started.flow_run_id
    assert logs[0].task_run_id is None
    assert logs[1].task_run_id == created.task_run_id
    assert logs[1].level == logging.INFO
    finished = reporter.of_type(FlowRunFinished)[0]
    assert finished.state.name == "Completed"
    assert reporter.flush_count == 1


def test_the_reporter_is_flushed_once_per_top_level_flow_run(reporter: RecordingReporter) -> None:
    @flow
    def child() -> None:
        return None

    @flow
    def parent() -> None:
        child()
        child()

    parent()
    assert reporter.flush_count == 1
    assert len(reporter.of_type(FlowRunFinished)) == 3


def test_tasks_submitted_to_threads_report_to_the_flows_reporter(
    reporter: RecordingReporter,
) -> None:
    @flow
    def pipeline() -> list[int]:
        return square.map(range(20)).result()

    pipeline()
    assert len(reporter.of_type(TaskRunCreated)) == 20
    completed = [
        e
        for e in reporter.of_type(StateChanged)
        if e.run_kind == "task" and e.state.name == "Completed"
    ]
    assert len(completed) == 20


def test_failed_task_logs_carry_the_traceback(reporter: RecordingReporter) -> None:
    @task(retries=1)
    def broken() -> None:
        raise ValueError("kaput")

    @flow
    def pipeline() -> None:
        broken()

    pipeline(return_state=True)  # type: ignore[call-arg]
    exhausted = [m for m in reporter.log_messages() if "Retries are exhausted" in m]
    assert len(exhausted) == 1
    assert "Traceback" in exhausted[0]
    assert "ValueError: kaput" in exhausted[0]


def test_no_reporter_means_no_events_are_built() -> None:
    assert current_reporter() is None

    @flow
    def pipeline() -> int:
        return square(2)

    assert pipeline() == 4


def test_set_reporter_is_process_wide_and_use_reporter_overrides_it() -> None:
    process = RecordingReporter()
    scoped = RecordingReporter()

    @flow
    def pipeline() -> None:
        return None

    previous = set_reporter(process)
    try:
        pipeline()
        with use_reporter(scoped):
            pipeline()
    finally:
        set_reporter(previous)
    assert len(process.of_type(FlowRunStarted)) == 1
    assert len(scoped.of_type(FlowRunStarted)) == 1


class BrokenReporter:
    def __init__(self) -> None:
        self.calls = 0

    def emit(self, event: object) -> None:
        self.calls += 1
        raise ConnectionError("server unreachable")

    def flush(self) -> None:
        raise ConnectionError("server unreachable")


def test_a_failing_reporter_never_fails_the_run_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = BrokenReporter()

    @flow
    def pipeline() -> int:
        return square(3)

    with use_reporter(broken), caplog.at_level(logging.ERROR, logger="flowyard.sdk"):
        assert pipeline() == 9
    assert broken.calls > 5
    failures = [r for r in caplog.records if "further failures of this reporter" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
    assert any("failed to flush" in r.getMessage() for r in caplog.records)


def test_get_run_logger_outside_a_run_raises() -> None:
    with pytest.raises(MissingContextError, match="no active flow or task run"):
        get_run_logger()


def test_disable_run_logger_lets_task_functions_run_outside_a_flow() -> None:
    @task
    def chatty(x: int) -> int:
        get_run_logger().info("hello")
        return x

    with disable_run_logger():
        assert chatty.fn(5) == 5


def test_run_logger_extra_keyword_arguments_are_added_to_records(
    reporter: RecordingReporter, caplog: pytest.LogCaptureFixture
) -> None:
    @flow
    def pipeline() -> None:
        get_run_logger(component="loader").warning("careful")

    with caplog.at_level(logging.INFO):
        pipeline()
    record = next(r for r in caplog.records if r.getMessage() == "careful")
    assert record.__dict__["component"] == "loader"
    assert record.__dict__["flow_name"] == "pipeline"


def test_log_prints_turns_print_into_run_logs(
    reporter: RecordingReporter, capsys: pytest.CaptureFixture[str]
) -> None:
    @task
    def noisy() -> None:
        print("from the task")

    @task(log_prints=False)
    def quiet() -> None:
        print("stays on stdout")

    @flow(log_prints=True)
    def pipeline() -> None:
        print("from the flow", 42)
        noisy()
        quiet()

    pipeline()
    messages = reporter.log_messages()
    assert "from the flow 42" in messages
    assert "from the task" in messages
    assert "stays on stdout" not in messages
    assert "stays on stdout" in capsys.readouterr().out
    import builtins

    assert builtins.print is print


def test_prints_in_other_threads_are_untouched_while_a_flow_logs_prints(
    reporter: RecordingReporter, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = threading.Event()
    inside_started = threading.Event()

    def bystander() -> None:
        inside_started.wait(5)
        print("bystander output")
        outside.set()

    @flow(log_prints=True)
    def pipeline() -> None:
        inside_started.set()
        outside.wait(5)

    thread = threading.Thread(target=bystander)
    thread.start()
    pipeline()
    thread.join()
    assert "bystander output" in capsys.readouterr().out
    assert "bystander output" not in reporter.log_messages()


def test_console_lines_follow_the_prefect_layout(capsys: pytest.CaptureFixture[str]) -> None:
    @flow(flow_run_name="layout-check")
    def pipeline() -> int:
        return square(2)

    pipeline()
    err = capsys.readouterr().err.splitlines()
    assert any(
        line.endswith(
            "| INFO    | flowyard.engine - Created flow run 'layout-check' for flow 'pipeline'"
        )
        for line in err
    )
    assert any(
        "| INFO    | Task run 'square-" in line and "Finished in state Completed()" in line
        for line in err
    )
    assert any(
        line.endswith("| INFO    | Flow run 'layout-check' - Finished in state Completed()")
        for line in err
    )


def test_a_task_started_by_a_task_names_its_parent_task_run(reporter: RecordingReporter) -> None:
    @task
    def outer() -> int:
        return square(2) + square.submit(3).result()

    @flow
    def pipeline() -> int:
        return outer()

    assert pipeline() == 13
    created = {e.task_name: e for e in reporter.of_type(TaskRunCreated) if e.task_name == "outer"}
    children = [e for e in reporter.of_type(TaskRunCreated) if e.task_name == "square"]
    assert len(children) == 2
    assert {c.parent_task_run_id for c in children} == {created["outer"].task_run_id}
    assert created["outer"].parent_task_run_id is None


def test_a_task_called_outside_a_flow_is_reported_and_flushed(reporter: RecordingReporter) -> None:
    assert square(4) == 16
    created = reporter.of_type(TaskRunCreated)
    assert len(created) == 1
    assert created[0].flow_run_id is None
    assert reporter.flush_count == 1


def test_console_lines_from_many_task_threads_are_each_written_once_and_whole(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @task
    def shout(i: int) -> int:
        get_run_logger().info("line %d of many", i)
        return i

    @flow
    def pipeline() -> int:
        return sum(f.result() for f in [shout.submit(i) for i in range(400)])

    assert pipeline() == sum(range(400))
    err = capsys.readouterr().err.splitlines()
    shouted = [line.rpartition(" - ")[2] for line in err if " of many" in line]
    assert sorted(shouted) == sorted(f"line {i} of many" for i in range(400))
    finished = [line for line in err if "Finished in state Completed()" in line]
    assert len(finished) == 401  # every task run, then the flow run


class _SlowStream:
    """A stream whose first write waits until told to go on."""

    def __init__(self) -> None:
        self.text = ""
        self.writing = threading.Event()
        self.go_on = threading.Event()

    def write(self, text: str) -> None:
        if not self.writing.is_set():
            self.writing.set()
            assert self.go_on.wait(10)
        self.text += text

    def flush(self) -> None:
        pass


def test_a_console_line_logged_while_another_thread_writes_is_written_by_that_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler = _logging._StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    stream = _SlowStream()
    monkeypatch.setattr(sys, "stderr", stream)

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("flowyard", logging.INFO, __file__, 1, message, None, None)

    first = threading.Thread(target=handler.handle, args=(record("first"),))
    first.start()
    assert stream.writing.wait(10)
    handler.handle(record("second"))  # the other thread is writing: queued, not waited for
    assert stream.text == ""
    stream.go_on.set()
    first.join(10)
    assert stream.text == "first\nsecond\n"
