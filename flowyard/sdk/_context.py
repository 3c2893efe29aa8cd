"""The run context: which flow run and task run the current code belongs to.

Two context variables, one for the innermost flow run and one for the
innermost task run, so that ``get_run_logger()``, ``flowyard.runtime`` and
nested ``submit`` find their run in any thread the engine hands work to
(submitted work runs inside a copy of the submitter's context).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from flowyard.sdk._errors import MissingContextError

if TYPE_CHECKING:
    from flowyard.sdk._flows import Flow
    from flowyard.sdk._reporting import Reporter
    from flowyard.sdk._results import ResultStore
    from flowyard.sdk._runs import FlowRun, TaskRun
    from flowyard.sdk._task_runners import TaskRunner
    from flowyard.sdk._tasks import Task

__all__ = [
    "FlowRunContext",
    "TaskRunContext",
    "get_run_context",
    "tags",
]


class FlowRunContext:
    """What the engine knows about the flow run in progress."""

    __slots__ = (
        "flow",
        "flow_run",
        "log_prints",
        "logger",
        "parameters",
        "persist_result",
        "reporter",
        "result_store",
        "task_runner",
    )

    def __init__(
        self,
        *,
        flow: Flow[..., object],
        flow_run: FlowRun,
        parameters: Mapping[str, object],
        task_runner: TaskRunner,
        reporter: Reporter | None,
        result_store: ResultStore | None,
        log_prints: bool,
        persist_result: bool,
    ) -> None:
        self.flow = flow
        self.flow_run = flow_run
        self.parameters = parameters
        self.task_runner = task_runner
        self.reporter = reporter
        self.result_store = result_store
        self.log_prints = log_prints
        self.persist_result = persist_result
        self.logger: logging.LoggerAdapter[logging.Logger] | None = None

    @staticmethod
    def get() -> FlowRunContext | None:
        """The innermost flow run context, or None outside a flow run."""
        return flow_run_context.get()


class TaskRunContext:
    """What the engine knows about the task run in progress."""

    __slots__ = (
        "flow_run_context",
        "log_prints",
        "logger",
        "parameters",
        "persist_result",
        "reporter",
        "task",
        "task_run",
    )

    def __init__(
        self,
        *,
        task: Task[..., object],
        task_run: TaskRun,
        parameters: Mapping[str, object],
        flow_run_context: FlowRunContext | None,
        reporter: Reporter | None,
        log_prints: bool,
        persist_result: bool,
    ) -> None:
        self.task = task
        self.task_run = task_run
        self.parameters = parameters
        self.flow_run_context = flow_run_context
        self.reporter = reporter
        self.log_prints = log_prints
        self.persist_result = persist_result
        self.logger: logging.LoggerAdapter[logging.Logger] | None = None

    @staticmethod
    def get() -> TaskRunContext | None:
        """The innermost task run context, or None outside a task run."""
        return task_run_context.get()


flow_run_context: contextvars.ContextVar[FlowRunContext | None] = contextvars.ContextVar(
    "flowyard_flow_run", default=None
)
task_run_context: contextvars.ContextVar[TaskRunContext | None] = contextvars.ContextVar(
    "flowyard_task_run", default=None
)
current_tags: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "flowyard_tags", default=frozenset()
)


def get_run_context() -> FlowRunContext | TaskRunContext:
    """The innermost task run context, else the flow run context.

    Raises:
        MissingContextError: outside any flow or task run.
    """
    context: FlowRunContext | TaskRunContext | None = (
        task_run_context.get() or flow_run_context.get()
    )
    if context is None:
        raise MissingContextError("No run context available. You are not in a flow or task run.")
    return context


@contextmanager
def tags(*names: str) -> Iterator[frozenset[str]]:
    """Add tags to every flow and task run created inside the block.

    Yields the full set of tags now in effect.
    """
    merged = current_tags.get() | frozenset(names)
    token = current_tags.set(merged)
    try:
        yield merged
    finally:
        current_tags.reset(token)
