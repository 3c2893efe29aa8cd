"""The reporting seam: where flow runs, task runs, states and logs go.

The engine emits small frozen events to a :class:`Reporter`. With no server,
there is no reporter at all (``None``), and the engine skips building events,
which keeps a trivial task run cheap. A server-backed reporter batches events
and sends them in the background; the engine calls :meth:`Reporter.flush`
once at the end of every top-level flow run so that the final state is
durable before the flow call returns.

A reporter is chosen per flow run: the innermost :func:`use_reporter` block,
else the process-wide :func:`set_reporter` value. Subflows and tasks use their
parent flow run's reporter.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, TypeVar, runtime_checkable
from uuid import UUID

from flowyard.sdk._states import State, StateType

__all__ = [
    "Event",
    "FlowRunFinished",
    "FlowRunStarted",
    "LogEmitted",
    "RecordingReporter",
    "Reporter",
    "StateChanged",
    "StateSnapshot",
    "TaskRunCreated",
    "current_reporter",
    "set_reporter",
    "use_reporter",
]


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """A state without its data: what a reporter may send over the wire."""

    type: StateType
    name: str
    message: str | None
    timestamp: datetime
    scheduled_time: datetime | None = None

    @classmethod
    def of(cls, state: State[object]) -> StateSnapshot:
        return cls(
            state.type,
            state.name,
            state.message,
            state.timestamp,
            state.state_details.scheduled_time,
        )


@dataclass(frozen=True, slots=True)
class FlowRunStarted:
    """A flow run was created (its first state follows as a StateChanged)."""

    flow_run_id: UUID
    flow_run_name: str
    flow_name: str
    flow_version: str | None
    parameters: Mapping[str, object]
    parent_task_run_id: UUID | None
    parent_flow_run_id: UUID | None
    tags: frozenset[str]
    deployment_id: UUID | None
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class TaskRunCreated:
    """A task run was created.

    ``upstream_task_run_ids`` are its data dependencies (futures among its
    arguments and ``wait_for``); ``parent_task_run_id`` is the task run it was
    called or submitted from, when a task starts another task.
    """

    task_run_id: UUID
    flow_run_id: UUID | None
    task_name: str
    task_run_name: str
    task_key: str
    dynamic_key: str
    tags: frozenset[str]
    upstream_task_run_ids: tuple[UUID, ...]
    timestamp: datetime
    parent_task_run_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class StateChanged:
    """A flow run or task run entered a new state."""

    run_kind: Literal["flow", "task"]
    run_id: UUID
    flow_run_id: UUID | None
    state: StateSnapshot
    run_count: int
    cache_key: str | None = None


@dataclass(frozen=True, slots=True)
class LogEmitted:
    """A log line of a flow run or task run."""

    flow_run_id: UUID | None
    task_run_id: UUID | None
    level: int
    logger_name: str
    message: str
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class FlowRunFinished:
    """A flow run reached its final state and its task runs have ended."""

    flow_run_id: UUID
    state: StateSnapshot
    timestamp: datetime


Event = FlowRunStarted | TaskRunCreated | StateChanged | LogEmitted | FlowRunFinished


@runtime_checkable
class Reporter(Protocol):
    """Receives the engine's events. Must be thread-safe and must not block long.

    ``emit`` is called on the hot path (several times per task run); an
    implementation should enqueue and return. ``flush`` is called once after
    each top-level flow run and returns when everything emitted so far is
    durable (or has been given up on, with a logged reason).
    """

    def emit(self, event: Event) -> None: ...

    def flush(self) -> None: ...


_E = TypeVar("_E", FlowRunStarted, TaskRunCreated, StateChanged, LogEmitted, FlowRunFinished)


class RecordingReporter:
    """A reporter that keeps every event in memory, for tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []
        self.flush_count = 0

    def emit(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    def flush(self) -> None:
        with self._lock:
            self.flush_count += 1

    @property
    def events(self) -> list[Event]:
        """A copy of the events received so far, in order."""
        with self._lock:
            return list(self._events)

    def of_type(self, kind: type[_E]) -> list[_E]:
        """The events of one type, in order."""
        return [event for event in self.events if isinstance(event, kind)]

    def state_names(self, run_id: UUID) -> list[str]:
        """The names of the states a run went through, in order."""
        return [e.state.name for e in self.of_type(StateChanged) if e.run_id == run_id]

    def log_messages(self) -> list[str]:
        """Every log message received, in order."""
        return [e.message for e in self.of_type(LogEmitted)]


_failed_reporters: set[int] = set()
_logger = logging.getLogger("flowyard.sdk")


def report(reporter: Reporter, event: Event) -> None:
    """Give ``event`` to ``reporter``; a failing reporter never fails the run.

    The first failure of each reporter is logged with its traceback; later
    ones are not, so that a broken reporter cannot flood the console.
    """
    try:
        reporter.emit(event)
    except Exception:
        if id(reporter) not in _failed_reporters:
            _failed_reporters.add(id(reporter))
            _logger.exception(
                "Reporter %r failed on %s; the run goes on, and further failures of this "
                "reporter are not logged",
                reporter,
                type(event).__name__,
            )


def flush(reporter: Reporter) -> None:
    """Flush ``reporter``, logging (not raising) a failure."""
    try:
        reporter.flush()
    except Exception:
        _logger.exception("Reporter %r failed to flush; some run events may be lost", reporter)


_process_reporter: Reporter | None = None
_scoped_reporter: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar(
    "flowyard_reporter", default=None
)


def set_reporter(reporter: Reporter | None) -> Reporter | None:
    """Set the process-wide reporter (None: report nothing). Returns the previous one."""
    global _process_reporter
    previous, _process_reporter = _process_reporter, reporter
    return previous


def current_reporter() -> Reporter | None:
    """The reporter a new top-level flow run would use."""
    return _scoped_reporter.get() or _process_reporter


@contextmanager
def use_reporter(reporter: Reporter) -> Iterator[Reporter]:
    """Use ``reporter`` for flow runs started inside the block (this context only)."""
    token = _scoped_reporter.set(reporter)
    try:
        yield reporter
    finally:
        _scoped_reporter.reset(token)
