from __future__ import annotations

import threading
import time

import pytest

from flowyard import allow_failure, as_completed, flow, task, unmapped, wait
from flowyard.futures import PrefectFutureList
from flowyard.sdk import (
    FlowyardFuture,
    MappingLengthMismatch,
    MappingMissingIterable,
    MissingContextError,
    RecordingReporter,
    SignatureMismatchError,
    State,
    TaskRunCreated,
    UnfinishedRun,
    UpstreamTaskError,
    quote,
)


@task
def double(x: int) -> int:
    return x * 2


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def explode(message: str = "boom") -> int:
    raise ValueError(message)


def test_a_task_called_in_a_flow_returns_its_value() -> None:
    @flow
    def pipeline() -> int:
        return add(double(2), 1)

    assert pipeline() == 5


def test_a_task_can_be_called_outside_a_flow() -> None:
    assert double(21) == 42


def test_the_original_function_is_kept_as_fn() -> None:
    assert double.fn(4) == 8
    assert double.name == "double"
    assert double.__name__ == "double"


def test_a_failing_task_raises_in_the_flow_and_fails_the_flow() -> None:
    @flow
    def pipeline() -> int:
        return explode("nope")

    state = pipeline(return_state=True)
    assert state.is_failed()
    with pytest.raises(ValueError, match="nope"):
        pipeline()


def test_return_state_on_a_task_call_returns_its_failed_state() -> None:
    @flow
    def pipeline() -> str:
        state = explode(return_state=True)  # type: ignore[call-arg]
        assert isinstance(state, State)
        return state.message or ""

    assert pipeline() == "Task run encountered an exception ValueError: boom"


def test_bad_call_arguments_name_the_problem() -> None:
    with pytest.raises(SignatureMismatchError, match="missing a required argument: 'y'"):
        add(1)  # type: ignore[call-arg]
    with pytest.raises(SignatureMismatchError, match="unexpected keyword argument 'z'"):
        add(1, 2, z=3)  # type: ignore[call-arg]


def test_submit_returns_a_future_with_result_wait_and_state() -> None:
    @flow
    def pipeline() -> tuple[int, str]:
        future = double.submit(5)
        assert isinstance(future, FlowyardFuture)
        future.wait()
        return future.result(), future.state.name

    assert pipeline() == (10, "Completed")


def test_submit_outside_a_flow_says_how_to_run_the_task() -> None:
    with pytest.raises(MissingContextError, match="call the task directly"):
        double.submit(1)


def test_futures_passed_to_tasks_are_resolved_to_their_results() -> None:
    @flow
    def pipeline() -> int:
        a = double.submit(1)
        b = double.submit(2)
        total = add.submit(a, b)
        return add(total, double(10))

    assert pipeline() == 26


def test_futures_inside_lists_and_dicts_are_resolved() -> None:
    @task
    def combine(items: list[int], mapping: dict[str, int]) -> int:
        return sum(items) + sum(mapping.values())

    @flow
    def pipeline() -> int:
        return combine([double.submit(1), 3], {"a": double.submit(2)})

    assert pipeline() == 9


def test_quote_keeps_futures_unresolved() -> None:
    @task
    def kind(value: object) -> str:
        return type(value).__name__

    @flow
    def pipeline() -> str:
        future = double.submit(1)
        future.wait()
        return kind(quote([future]))

    assert pipeline() == "list"


def test_a_task_whose_upstream_failed_does_not_run_and_is_not_ready(
    reporter: RecordingReporter,
) -> None:
    ran: list[int] = []

    @task
    def downstream(x: int) -> None:
        ran.append(x)

    @flow
    def pipeline() -> tuple[str, str]:
        failed = explode.submit()
        after = downstream.submit(failed)
        after.wait()
        with pytest.raises(UnfinishedRun):
            after.result()
        with pytest.raises(UpstreamTaskError):
            downstream(failed)
        return after.state.name, after.state.message or ""

    name, message = pipeline()
    assert ran == []
    assert name == "NotReady"
    assert "did not reach a 'COMPLETED' state" in message


def test_allow_failure_passes_the_upstream_exception_to_the_downstream_task() -> None:
    @task
    def describe(value: object) -> str:
        return f"got {type(value).__name__}"

    @flow
    def pipeline() -> str:
        failed = explode.submit()
        return describe(allow_failure(failed))

    assert pipeline() == "got ValueError"


def test_wait_for_orders_tasks_without_passing_data() -> None:
    order: list[str] = []

    @task
    def first() -> None:
        time.sleep(0.02)
        order.append("first")

    @task
    def second() -> None:
        order.append("second")

    @flow
    def pipeline() -> None:
        a = first.submit()
        second.submit(wait_for=[a])  # type: ignore[call-arg]

    pipeline()
    assert order == ["first", "second"]


def test_upstream_task_run_ids_are_reported_as_dependencies(reporter: RecordingReporter) -> None:
    @flow
    def pipeline() -> int:
        a = double.submit(1)
        return add.submit(a, 2).result()

    assert pipeline() == 4
    created = reporter.of_type(TaskRunCreated)
    double_run = next(e for e in created if e.task_name == "double")
    add_run = next(e for e in created if e.task_name == "add")
    assert add_run.upstream_task_run_ids == (double_run.task_run_id,)


def test_map_submits_one_run_per_element_in_order() -> None:
    @flow
    def pipeline() -> list[int]:
        futures = double.map([1, 2, 3])
        assert isinstance(futures, PrefectFutureList)
        return futures.result()

    assert pipeline() == [2, 4, 6]


def test_map_with_unmapped_passes_the_value_whole_to_every_run() -> None:
    @task
    def scale(x: int, factors: list[int]) -> int:
        return x * sum(factors)

    @flow
    def pipeline() -> list[int]:
        return scale.map([1, 2], unmapped([1, 2])).result()

    assert pipeline() == [3, 6]


def test_map_treats_strings_and_non_iterables_as_static() -> None:
    @task
    def label(x: int, prefix: str, n: int) -> str:
        return f"{prefix}{x * n}"

    @flow
    def pipeline() -> list[str]:
        return label.map([1, 2], "item-", 10).result()

    assert pipeline() == ["item-10", "item-20"]


def test_map_over_another_tasks_result() -> None:
    @task
    def numbers() -> list[int]:
        return [1, 2, 3]

    @flow
    def pipeline() -> list[int]:
        return double.map(numbers.submit()).result()

    assert pipeline() == [2, 4, 6]


def test_map_with_iterables_of_different_lengths_is_refused() -> None:
    @flow
    def pipeline() -> None:
        add.map([1, 2], [1])

    with pytest.raises(MappingLengthMismatch, match="Got lengths"):
        pipeline()


def test_map_without_an_iterable_is_refused() -> None:
    @flow
    def pipeline() -> None:
        add.map(1, 2)

    with pytest.raises(MappingMissingIterable):
        pipeline()


def test_wait_returns_done_and_not_done_sets() -> None:
    gate = threading.Event()

    @task
    def blocked() -> None:
        gate.wait(5)

    @flow
    def pipeline() -> tuple[int, int, int]:
        quick = double.submit(1)
        slow = blocked.submit()
        quick.wait()
        first = wait([quick, slow], timeout=0.05)
        gate.set()
        second = wait([quick, slow])
        return len(first.done), len(first.not_done), len(second.done)

    assert pipeline() == (1, 1, 2)


def test_as_completed_yields_futures_as_they_finish() -> None:
    @task
    def sleepy(delay: float) -> float:
        time.sleep(delay)
        return delay

    @flow
    def pipeline() -> list[float]:
        futures = [sleepy.submit(0.15), sleepy.submit(0.0)]
        return [f.result() for f in as_completed(futures)]

    assert pipeline() == [0.0, 0.15]


def test_future_result_timeout_raises_timeout_error() -> None:
    gate = threading.Event()

    @task
    def blocked() -> None:
        gate.wait(5)

    @flow
    def pipeline() -> str:
        future = blocked.submit()
        try:
            future.result(timeout=0.01)
        except TimeoutError as exc:
            return str(exc)
        finally:
            gate.set()
        return "no timeout"

    assert "did not complete within 0.01 seconds" in pipeline()


def test_tasks_can_call_and_submit_other_tasks() -> None:
    @task
    def outer(x: int) -> int:
        return double(x) + double.submit(x).result()

    @flow
    def pipeline() -> int:
        return outer(3)

    assert pipeline() == 12


def test_a_task_method_binds_its_instance() -> None:
    class Calculator:
        def __init__(self, offset: int) -> None:
            self.offset = offset

        @task
        def shift(self, x: int) -> int:
            return x + self.offset

    @flow
    def pipeline() -> int:
        return Calculator(10).shift(5)

    assert pipeline() == 15


def test_task_run_name_template_uses_parameters(reporter: RecordingReporter) -> None:
    @task(task_run_name="fetch-{city}")
    def fetch(city: str) -> str:
        return city

    @flow
    def pipeline() -> None:
        fetch("paris")

    pipeline()
    assert reporter.of_type(TaskRunCreated)[0].task_run_name == "fetch-paris"


def test_default_task_run_name_is_task_name_and_a_short_key(reporter: RecordingReporter) -> None:
    @flow
    def pipeline() -> None:
        double(1)

    pipeline()
    name = reporter.of_type(TaskRunCreated)[0].task_run_name
    assert name.startswith("double-")
    assert len(name) == len("double-") + 3
