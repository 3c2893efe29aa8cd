from __future__ import annotations

import uuid

import pytest

from flowyard import Cancelled, Completed, Crashed, Failed, Pending, Running, Scheduled, flow, task
from flowyard.runtime import deployment, flow_run, task_run
from flowyard.sdk import CrashedRun, FailedRun, UnfinishedRun, run_flow
from flowyard.states import AwaitingRetry, StateType, is_state_iterable, return_value_to_state


def test_runtime_is_empty_outside_a_run() -> None:
    assert flow_run.id is None
    assert flow_run.name is None
    assert flow_run.parameters == {}
    assert task_run.id is None
    assert deployment.name is None
    assert deployment.id is None


def test_runtime_describes_the_current_flow_and_task_run() -> None:
    seen: dict[str, object] = {}

    @task
    def inner(x: int) -> None:
        seen["task_id"] = task_run.id
        seen["task_name"] = task_run.task_name
        seen["task_parameters"] = task_run.parameters
        seen["flow_from_task"] = flow_run.name

    @flow(flow_run_name="nightly-{day}")
    def outer(day: str, retries: int = 1) -> None:
        seen["flow_id"] = flow_run.id
        seen["flow_name"] = flow_run.flow_name
        seen["name"] = flow_run.name
        seen["parameters"] = flow_run.parameters
        seen["run_count"] = flow_run.run_count
        inner(7)

    outer("monday")
    uuid.UUID(str(seen["flow_id"]))
    uuid.UUID(str(seen["task_id"]))
    assert seen["flow_name"] == "outer"
    assert seen["name"] == "nightly-monday"
    assert seen["parameters"] == {"day": "monday", "retries": 1}
    assert seen["run_count"] == 1
    assert seen["task_name"] == "inner"
    assert seen["task_parameters"] == {"x": 7}
    assert seen["flow_from_task"] == "nightly-monday"


def test_runtime_reads_deployment_facts_given_by_the_runner() -> None:
    seen: dict[str, object] = {}
    deployment_id = uuid.uuid4()
    run_id = uuid.uuid4()

    @flow
    def deployed(n: int) -> int:
        seen.update(
            id=deployment.id, name=deployment.name, run=flow_run.id, params=deployment.parameters
        )
        return n

    state = run_flow(
        deployed,
        {"n": "4"},
        flow_run_id=run_id,
        deployment_id=deployment_id,
        deployment_name="daily",
    )
    assert state.result() == 4
    assert seen == {
        "id": str(deployment_id),
        "name": "daily",
        "run": str(run_id),
        "params": {"n": 4},
    }


def test_runtime_values_can_be_forced_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWYARD__RUNTIME__DEPLOYMENT__NAME", "from-env")
    assert deployment.name == "from-env"


def test_run_flow_returns_failed_states_instead_of_raising() -> None:
    @flow
    def broken() -> None:
        raise ValueError("x")

    state = run_flow(broken)
    assert state.is_failed()


def test_state_helpers_build_the_right_types_and_names() -> None:
    assert Completed().type is StateType.COMPLETED
    assert Failed().name == "Failed"
    assert Crashed().is_crashed()
    assert Cancelled().is_cancelled()
    assert Pending().is_pending()
    assert Running().is_running()
    scheduled = Scheduled()
    assert scheduled.is_scheduled()
    assert scheduled.state_details.scheduled_time is not None
    retry = AwaitingRetry()
    assert (retry.type, retry.name) == (StateType.SCHEDULED, "AwaitingRetry")
    assert str(retry) == "AwaitingRetry(type=SCHEDULED)"
    assert str(Failed(message="bad")) == "Failed('bad')"
    assert Completed().is_final()
    assert not Running().is_final()


def test_state_result_raises_the_right_error_for_each_outcome() -> None:
    assert Completed(data=3).result() == 3
    with pytest.raises(ValueError, match="inner"):
        Failed(data=ValueError("inner")).result()
    assert isinstance(Failed(data=ValueError("inner")).result(raise_on_failure=False), ValueError)
    with pytest.raises(FailedRun, match="no data"):
        Failed(message="no data").result()
    with pytest.raises(CrashedRun):
        Crashed().result()
    with pytest.raises(UnfinishedRun, match="RUNNING"):
        Running().result()


def test_return_value_to_state_aggregates_run_states() -> None:
    done = Completed(data=1)
    done.state_details.task_run_id = uuid.uuid4()
    failed = Failed(data=ValueError("x"))
    failed.state_details.task_run_id = uuid.uuid4()
    assert is_state_iterable([done, failed])
    assert not is_state_iterable([])
    aggregate = return_value_to_state([done, failed])
    assert aggregate.is_failed()
    assert aggregate.message == "1/2 states failed."
    assert return_value_to_state([done]).message == "All states completed."
    manual = Completed(message="mine")
    assert return_value_to_state(manual) is manual
    assert return_value_to_state(x for x in range(2)).result() == [0, 1]
