"""States as the user sees them: ``State``, ``StateType`` and the constructors.

``State`` is a plain slotted class rather than a pydantic model: every task run
creates three of them (Pending, Running, a final state), and a pydantic model
would cost more than the whole rest of a trivial task's overhead. The wire form
lives in ``flowyard.schemas``; reporters translate.

The semantics follow Prefect 3: ``state.result()`` re-raises the exception of a
failed run, returns the exception with ``raise_on_failure=False``, and raises
``UnfinishedRun`` for a run that has not finished.
"""

from __future__ import annotations

import enum
import traceback
from datetime import UTC, datetime, timedelta
from types import GeneratorType
from typing import Generic, TypeVar, cast
from uuid import UUID

from flowyard.sdk._errors import (
    CancelledRun,
    CrashedRun,
    FailedRun,
    PausedRun,
    UnfinishedRun,
)

R = TypeVar("R")


class StateType(enum.StrEnum):
    """The kind of a state; named variants (Late, Retrying, ...) ride on these."""

    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"


# Reading ``.value`` of an enum member is slow on the hot path; names are precomputed.
_DEFAULT_NAMES = {kind: kind.value.capitalize() for kind in StateType}

TERMINAL_STATE_TYPES = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
)


class StateDetails:
    """Links and scheduling facts attached to a state."""

    __slots__ = (
        "cache_expiration",
        "cache_key",
        "flow_run_id",
        "retriable",
        "scheduled_time",
        "task_run_id",
    )

    def __init__(
        self,
        *,
        flow_run_id: UUID | None = None,
        task_run_id: UUID | None = None,
        scheduled_time: datetime | None = None,
        cache_key: str | None = None,
        cache_expiration: datetime | None = None,
        retriable: bool | None = None,
    ) -> None:
        self.flow_run_id = flow_run_id
        self.task_run_id = task_run_id
        self.scheduled_time = scheduled_time
        self.cache_key = cache_key
        self.cache_expiration = cache_expiration
        self.retriable = retriable

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in self.__slots__
            if getattr(self, name) is not None
        )
        return f"StateDetails({fields})"


class State(Generic[R]):
    """The state of a flow or task run, with its result or exception in ``data``."""

    __slots__ = ("data", "message", "name", "state_details", "timestamp", "type")

    def __init__(
        self,
        type: StateType,
        name: str | None = None,
        message: str | None = None,
        data: R | BaseException | object = None,
        timestamp: datetime | None = None,
        state_details: StateDetails | None = None,
    ) -> None:
        if type.__class__ is not StateType:
            type = StateType(type)
        self.type = type
        self.name = name or _DEFAULT_NAMES[type]
        self.message = message
        self.data = data
        self.timestamp = timestamp or datetime.now(UTC)
        self.state_details = state_details or StateDetails()

    def is_scheduled(self) -> bool:
        return self.type is StateType.SCHEDULED

    def is_pending(self) -> bool:
        return self.type is StateType.PENDING

    def is_running(self) -> bool:
        return self.type is StateType.RUNNING

    def is_completed(self) -> bool:
        return self.type is StateType.COMPLETED

    def is_failed(self) -> bool:
        return self.type is StateType.FAILED

    def is_crashed(self) -> bool:
        return self.type is StateType.CRASHED

    def is_cancelled(self) -> bool:
        return self.type is StateType.CANCELLED

    def is_cancelling(self) -> bool:
        return self.type is StateType.CANCELLING

    def is_paused(self) -> bool:
        return self.type is StateType.PAUSED

    def is_final(self) -> bool:
        return self.type in TERMINAL_STATE_TYPES

    def result(self, raise_on_failure: bool = True, fetch: bool = True) -> R:
        """The run's return value; re-raises its exception when it did not complete.

        ``fetch`` is accepted for compatibility; results are always fetched.
        """
        del fetch
        return get_state_result(self, raise_on_failure=raise_on_failure)

    def copy(
        self, *, name: str | None = None, message: str | None = None, data: object = None
    ) -> State[R]:
        """A new state of the same type, timestamped now, with the given changes."""
        return State(
            self.type,
            name=name or self.name,
            message=self.message if message is None else message,
            data=self.data if data is None else data,
            state_details=self.state_details,
        )

    def __str__(self) -> str:
        display = []
        if self.message:
            display.append(repr(self.message))
        if _DEFAULT_NAMES[self.type].lower() != self.name.lower():
            display.append(f"type={self.type.value}")
        return f"{self.name}({', '.join(display)})"

    def __repr__(self) -> str:
        display = []
        if self.message:
            display.append(repr(self.message))
        if _DEFAULT_NAMES[self.type].lower() != self.name.lower():
            display.append(f"type={self.type.value}")
        if self.data is not None:
            display.append(f"result={self.data!r}")
        return f"{self.name}({', '.join(display)})"


def _state(
    type: StateType,
    name: str | None,
    message: str | None,
    data: object,
    state_details: StateDetails | None,
    scheduled_time: datetime | None = None,
) -> State[object]:
    if scheduled_time is not None:
        state_details = state_details or StateDetails()
        state_details.scheduled_time = scheduled_time
    return State(type, name=name, message=message, data=data, state_details=state_details)


def Completed(
    *,
    message: str | None = None,
    data: object = None,
    name: str | None = None,
    state_details: StateDetails | None = None,
) -> State[object]:
    """A COMPLETED state; ``data`` is the result."""
    return _state(StateType.COMPLETED, name, message, data, state_details)


def Failed(
    *,
    message: str | None = None,
    data: object = None,
    name: str | None = None,
    state_details: StateDetails | None = None,
) -> State[object]:
    """A FAILED state: the run's own code raised or chose to fail."""
    return _state(StateType.FAILED, name, message, data, state_details)


def Crashed(
    *,
    message: str | None = None,
    data: object = None,
    name: str | None = None,
    state_details: StateDetails | None = None,
) -> State[object]:
    """A CRASHED state: the infrastructure ended the run; the message says why."""
    return _state(StateType.CRASHED, name, message, data, state_details)


def Cancelled(
    *,
    message: str | None = None,
    data: object = None,
    name: str | None = None,
    state_details: StateDetails | None = None,
) -> State[object]:
    """A CANCELLED state."""
    return _state(StateType.CANCELLED, name, message, data, state_details)


def Cancelling(*, message: str | None = None, name: str | None = None) -> State[object]:
    """A CANCELLING state: cancellation was requested and is under way."""
    return _state(StateType.CANCELLING, name, message, None, None)


def Pending(*, message: str | None = None, name: str | None = None) -> State[object]:
    """A PENDING state: the run exists and waits to start."""
    return _state(StateType.PENDING, name, message, None, None)


def Running(*, message: str | None = None, name: str | None = None) -> State[object]:
    """A RUNNING state."""
    return _state(StateType.RUNNING, name, message, None, None)


def Scheduled(
    *,
    scheduled_time: datetime | None = None,
    message: str | None = None,
    name: str | None = None,
) -> State[object]:
    """A SCHEDULED state, due at ``scheduled_time`` (now when omitted)."""
    return _state(
        StateType.SCHEDULED, name, message, None, None, scheduled_time or datetime.now(UTC)
    )


def Paused(*, message: str | None = None, name: str | None = None) -> State[object]:
    """A PAUSED state."""
    return _state(StateType.PAUSED, name, message, None, None)


def AwaitingRetry(
    *, scheduled_time: datetime | None = None, message: str | None = None
) -> State[object]:
    """A SCHEDULED state named AwaitingRetry: a failed attempt waits for its retry."""
    return Scheduled(scheduled_time=scheduled_time, message=message, name="AwaitingRetry")


def Retrying(*, message: str | None = None) -> State[object]:
    """A RUNNING state named Retrying: a retry attempt is running."""
    return Running(message=message, name="Retrying")


def Late(*, scheduled_time: datetime | None = None, message: str | None = None) -> State[object]:
    """A SCHEDULED state named Late: the run is past its start time."""
    return Scheduled(scheduled_time=scheduled_time, message=message, name="Late")


def TimedOut(*, message: str | None = None, data: object = None) -> State[object]:
    """A FAILED state named TimedOut: the run exceeded its ``timeout_seconds``."""
    return Failed(message=message, data=data, name="TimedOut")


def in_seconds(seconds: float) -> datetime:
    """Now plus ``seconds``, as an aware UTC datetime."""
    return datetime.now(UTC) + timedelta(seconds=seconds)


def is_state_iterable(value: object) -> bool:
    """A non-empty list, tuple or set made only of states."""
    return (
        isinstance(value, list | tuple | set | frozenset)
        and len(value) > 0
        and all(isinstance(item, State) for item in value)
    )


def get_state_result(state: State[R], raise_on_failure: bool = True) -> R:
    """What ``State.result`` returns: the value, or the run's exception."""
    if state.type is StateType.PAUSED:
        raise PausedRun("Run is paused, its result is not available.")
    if state.type not in TERMINAL_STATE_TYPES:
        raise UnfinishedRun(f"Run is in {state.type.value} state, its result is not available.")
    if state.type is not StateType.COMPLETED:
        exc = get_state_exception(state)
        if raise_on_failure:
            raise exc
        return cast(R, exc)
    return cast(R, _load(state.data))


def _load(data: object) -> object:
    loader = getattr(data, "__flowyard_load_result__", None)
    return loader() if loader is not None else data


def get_state_exception(state: State[R]) -> BaseException:
    """The exception a failed, crashed or cancelled state stands for."""
    wrapper: type[Exception]
    if state.type is StateType.FAILED:
        wrapper, default_message = FailedRun, "Run failed."
    elif state.type is StateType.CRASHED:
        wrapper, default_message = CrashedRun, "Run crashed."
    elif state.type is StateType.CANCELLED:
        wrapper, default_message = CancelledRun, "Run cancelled."
    else:
        raise ValueError(f"Expected a failed, crashed or cancelled state, got {state!r}.")
    result = _load(state.data)
    if result is None:
        return wrapper(state.message or default_message)
    if isinstance(result, BaseException):
        return result
    if isinstance(result, str):
        return wrapper(result)
    if isinstance(result, State):
        return get_state_exception(result)
    if is_state_iterable(result):
        for inner in cast("list[State[object]]", result):
            if inner.type in (StateType.FAILED, StateType.CRASHED, StateType.CANCELLED):
                return get_state_exception(inner)
    return wrapper(state.message or default_message)


def format_exception(exc: BaseException) -> str:
    """``TypeName: message``, without our own module paths."""
    formatted = traceback.format_exception_only(type(exc), exc)[-1].strip()
    module = type(exc).__module__
    if module.startswith("flowyard."):
        formatted = formatted.replace(f"{module}.{type(exc).__qualname__}", type(exc).__name__)
    return formatted


def exception_to_failed_state(exc: BaseException, message: str = "") -> State[object]:
    """A FAILED state carrying ``exc``; the message ends with the exception."""
    if message and not message.endswith(" "):
        message += " "
    state = Failed(data=exc, message=message + format_exception(exc))
    state.state_details.retriable = False
    return state


def exception_to_crashed_state(exc: BaseException) -> State[object]:
    """A CRASHED state for an exception raised outside user code, saying why."""
    import asyncio

    if isinstance(exc, asyncio.CancelledError):
        message = "Execution was cancelled by the runtime environment."
    elif isinstance(exc, KeyboardInterrupt):
        message = "Execution was aborted by an interrupt signal."
    elif isinstance(exc, SystemExit):
        message = "Execution was aborted by Python system exit call."
    else:
        message = f"Execution was interrupted by an unexpected exception: {format_exception(exc)}"
    return Crashed(message=message, data=exc)


def return_value_to_state(retval: object) -> State[object]:
    """The final state for a run that returned ``retval`` (Prefect's aggregate rule).

    A state made by the user is used as is; a run's state or a collection of
    them is aggregated (all completed: COMPLETED; any cancelled: CANCELLED;
    any paused: PAUSED; otherwise FAILED); anything else is a COMPLETED state
    holding the value.
    """
    if isinstance(retval, State):
        if retval.state_details.flow_run_id is None and retval.state_details.task_run_id is None:
            return retval
        return _aggregate([retval], retval)
    if is_state_iterable(retval):
        return _aggregate(list(cast("list[State[object]]", retval)), retval)
    if isinstance(retval, GeneratorType):
        retval = list(retval)
    return State(StateType.COMPLETED, data=retval)


def _aggregate(states: list[State[object]], data: object) -> State[object]:
    total = len(states)
    counts: dict[StateType, int] = {}
    for state in states:
        counts[state.type] = counts.get(state.type, 0) + 1
    if counts.get(StateType.COMPLETED, 0) == total:
        return State(StateType.COMPLETED, message="All states completed.", data=data)
    if StateType.CANCELLED in counts:
        return State(
            StateType.CANCELLED,
            message=f"{counts[StateType.CANCELLED]}/{total} states cancelled.",
            data=data,
        )
    if StateType.PAUSED in counts:
        return State(
            StateType.PAUSED,
            message=f"{counts[StateType.PAUSED]}/{total} states paused.",
            data=data,
        )
    failed = counts.get(StateType.FAILED, 0) + counts.get(StateType.CRASHED, 0)
    if failed:
        message = f"{failed}/{total} states failed."
    else:
        not_final = sum(n for kind, n in counts.items() if kind not in TERMINAL_STATE_TYPES)
        message = f"{not_final}/{total} states are not final."
    return State(StateType.FAILED, message=message, data=data)
