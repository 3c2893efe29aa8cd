from __future__ import annotations

import pytest

from flowyard import Completed, Failed, State, StateType, flow, tags, task
from flowyard.sdk import (
    FailedRun,
    FlowRunStarted,
    RecordingReporter,
    StateChanged,
    TaskRunCreated,
    ThreadPoolTaskRunner,
    UpstreamTaskError,
)
from flowyard.sdk._context import FlowRunContext


def test_calling_a_flow_runs_it_and_returns_its_value() -> None:
    @flow
    def add(x: int, y: int = 2) -> int:
        return x + y

    assert add(1) == 3
    assert add(1, y=5) == 6


def test_a_failing_flow_raises_the_users_exception() -> None:
    @flow
    def broken() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        broken()


def test_return_state_gives_the_final_state_instead_of_raising() -> None:
    @flow
    def broken() -> None:
        raise ValueError("bad input")

    state = broken(return_state=True)
    assert isinstance(state, State)
    assert state.is_failed()
    assert state.message == "Flow run encountered an exception: ValueError: bad input"
    assert isinstance(state.result(raise_on_failure=False), ValueError)


def test_completed_state_holds_the_return_value() -> None:
    @flow
    def answer() -> int:
        return 42

    state = answer(return_state=True)
    assert state.is_completed()
    assert state.result() == 42
    assert str(state) == "Completed()"


def test_default_flow_name_replaces_underscores_with_dashes() -> None:
    @flow
    def my_etl_flow() -> None:
        return None

    assert my_etl_flow.name == "my-etl-flow"
    assert flow(name="custom")(lambda: None).name == "custom"


def test_flow_names_with_a_slash_are_refused() -> None:
    with pytest.raises(ValueError, match="invalid character"):
        flow(name="a/b")(lambda: None)


def test_unknown_decorator_options_are_a_type_error() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'retires'"):
        flow(retires=3)  # type: ignore[call-overload]


def test_flow_returning_a_failed_state_fails_and_raises_its_message() -> None:
    @flow
    def gives_up() -> State[object]:
        return Failed(message="nothing to do")

    state = gives_up(return_state=True)
    assert state.is_failed()
    with pytest.raises(FailedRun, match="nothing to do"):
        gives_up()


def test_flow_returning_a_completed_state_uses_it() -> None:
    @flow
    def done() -> State[object]:
        return Completed(message="all good", data=7)

    state = done(return_state=True)
    assert state.message == "all good"
    assert done() == 7


def test_a_flow_returning_a_failed_future_fails_with_the_tasks_exception() -> None:
    @task
    def explode() -> None:
        raise KeyError("gone")

    @flow
    def returns_future() -> object:
        return explode.submit()

    state = returns_future(return_state=True)
    assert state.is_failed()
    assert state.message == "1/1 states failed."
    with pytest.raises(KeyError):
        returns_future()


def test_returning_futures_gives_their_states_and_aggregates_them() -> None:
    @task
    def one() -> int:
        return 1

    @flow
    def many() -> list[object]:
        return [one.submit(), one.submit()]

    states = many()
    assert [s.result() for s in states] == [1, 1]  # type: ignore[attr-defined]
    assert many(return_state=True).message == "All states completed."


def test_unreturned_failed_tasks_do_not_fail_the_flow() -> None:
    @task
    def explode() -> None:
        raise RuntimeError("ignored")

    @flow
    def fire_and_forget() -> str:
        explode.submit()
        return "done"

    assert fire_and_forget() == "done"


def test_a_subflow_is_a_child_run_linked_to_a_task_run_of_its_parent(
    reporter: RecordingReporter,
) -> None:
    @flow
    def child(x: int) -> int:
        return x * 2

    @flow
    def parent() -> int:
        return child(3) + child(4)

    assert parent() == 14
    started = reporter.of_type(FlowRunStarted)
    top, first, second = started
    assert top.parent_task_run_id is None
    stand_ins = {e.task_run_id: e for e in reporter.of_type(TaskRunCreated)}
    assert first.parent_task_run_id in stand_ins
    assert second.parent_task_run_id in stand_ins
    assert first.parent_flow_run_id == top.flow_run_id
    assert stand_ins[first.parent_task_run_id].task_name == "child"
    stand_in_states = reporter.state_names(first.parent_task_run_id)  # type: ignore[arg-type]
    assert stand_in_states == ["Pending", "Running", "Completed"]


def test_a_failing_subflow_raises_in_the_parent() -> None:
    @flow
    def child() -> None:
        raise ValueError("child broke")

    @flow
    def parent() -> str:
        try:
            child()
        except ValueError as exc:
            return f"caught {exc}"
        return "not caught"

    assert parent() == "caught child broke"


def test_flow_run_name_template_is_formatted_with_parameters() -> None:
    seen: list[str] = []

    @flow(flow_run_name="etl-{region}")
    def etl(region: str) -> None:
        ctx = FlowRunContext.get()
        assert ctx is not None
        seen.append(ctx.flow_run.name)

    etl("eu")
    assert seen == ["etl-eu"]


def test_tags_context_and_decorator_tags_reach_the_runs(reporter: RecordingReporter) -> None:
    @task(tags=["db"])
    def load() -> None:
        return None

    @flow(tags=["nightly"])
    def pipeline() -> None:
        load()

    with tags("prod", "eu"):
        pipeline()
    flow_started = reporter.events[0]
    assert flow_started.tags == frozenset({"nightly", "prod", "eu"})  # type: ignore[union-attr]
    created = reporter.of_type(TaskRunCreated)[0]
    assert created.tags == frozenset({"db", "prod", "eu"})


def test_with_options_changes_options_and_keeps_the_function() -> None:
    @flow(name="original", retries=0)
    def base(x: int) -> int:
        return x

    changed = base.with_options(name="changed", retries=2)
    assert changed.name == "changed"
    assert changed.retries == 2
    assert base.name == "original"
    assert changed(5) == 5


def test_task_runner_class_or_instance_is_accepted() -> None:
    def work() -> int:
        return 1

    assert isinstance(
        flow(task_runner=ThreadPoolTaskRunner)(work).task_runner, ThreadPoolTaskRunner
    )
    runner = ThreadPoolTaskRunner(max_workers=3)
    assert flow(task_runner=runner)(work).task_runner is runner


def test_a_flow_waits_for_submitted_tasks_before_returning() -> None:
    finished: list[int] = []

    @task
    def slow(i: int) -> None:
        import time

        time.sleep(0.01)
        finished.append(i)

    @flow
    def spray() -> None:
        for i in range(5):
            slow.submit(i)

    spray()
    assert sorted(finished) == [0, 1, 2, 3, 4]


def test_a_flow_depending_on_a_failed_future_through_wait_for_does_not_start() -> None:
    @task
    def explode() -> None:
        raise RuntimeError("no")

    @flow
    def child() -> str:
        return "ran"

    seen: list[object] = []

    @flow
    def parent() -> None:
        upstream = explode.submit()
        seen.append(child(wait_for=[upstream], return_state=True))  # type: ignore[call-arg]

    parent()
    state = seen[0]
    assert isinstance(state, State)
    assert state.type is StateType.PENDING
    assert state.name == "NotReady"
    assert "did not reach a 'COMPLETED' state" in (state.message or "")


def test_calling_a_flow_whose_upstream_failed_raises_upstream_task_error() -> None:
    @task
    def explode() -> None:
        raise RuntimeError("no")

    @flow
    def child() -> str:
        return "ran"

    @flow
    def parent() -> str:
        upstream = explode.submit()
        return child(wait_for=[upstream])  # type: ignore[call-arg]

    with pytest.raises(UpstreamTaskError):
        parent()


def test_each_state_change_is_reported_with_a_timestamp(reporter: RecordingReporter) -> None:
    @flow
    def quick() -> int:
        return 1

    quick()
    changes = [e for e in reporter.of_type(StateChanged) if e.run_kind == "flow"]
    assert [c.state.name for c in changes] == ["Pending", "Running", "Completed"]
    stamps = [c.state.timestamp for c in changes]
    assert stamps == sorted(stamps)
    assert all(s.tzinfo is not None for s in stamps)
