"""Task runners: where submitted task runs execute.

``ThreadPoolTaskRunner`` is the default, as in Prefect 3. Two deliberate
differences:

- A task run whose arguments include futures is handed to the pool only
  once those futures are done, instead of occupying a thread while it waits.
- The pool is bounded (64 threads unless told otherwise, or
  ``FLOWYARD_TASK_RUNNER_THREAD_POOL_MAX_WORKERS``) where Prefect's is
  unbounded: a burst of a thousand submissions reuses a few threads rather
  than starting hundreds. Waiting threads run queued work themselves (see
  ``_futures``), so a bounded pool cannot deadlock on nested waits.

Each flow run gets its own runner (``duplicate()``); leaving it waits for
every task run submitted through it, so a flow call never returns while its
tasks still run.
"""

from __future__ import annotations

import abc
import concurrent.futures
import os
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Self

from flowyard.sdk._futures import FlowyardConcurrentFuture, FlowyardFuture, WorkItem

if TYPE_CHECKING:
    from flowyard.sdk._runs import TaskRun
    from flowyard.sdk._states import State

__all__ = ["ConcurrentTaskRunner", "TaskRunner", "ThreadPoolTaskRunner"]

DEFAULT_MAX_WORKERS = 64


def _default_max_workers() -> int:
    configured = os.environ.get("FLOWYARD_TASK_RUNNER_THREAD_POOL_MAX_WORKERS", "").strip()
    return int(configured) if configured else DEFAULT_MAX_WORKERS


class TaskRunner(abc.ABC):
    """Executes submitted task runs and returns their futures."""

    @property
    def name(self) -> str:
        return type(self).__name__.removesuffix("TaskRunner").lower() or "task"

    @abc.abstractmethod
    def duplicate(self) -> Self:
        """A fresh, unstarted runner with the same settings (one per flow run)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    @abc.abstractmethod
    def submit_work(
        self,
        task_run: TaskRun,
        run: Callable[[], State[object]],
        is_async: bool,
        upstream: Sequence[FlowyardFuture[object]],
        cancel: Callable[[], State[object]],
    ) -> FlowyardFuture[object]:
        """Start ``run`` (which returns the final state) once ``upstream`` is done.

        ``cancel`` records the run as cancelled and returns that state; a runner
        calls it instead of ``run`` for work that had not started when the flow
        run crashed.
        """


class ThreadPoolTaskRunner(TaskRunner):
    """Runs submitted task runs in a pool of threads."""

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._requested = max_workers
        self.max_workers = max_workers if max_workers is not None else _default_max_workers()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._all_done = threading.Condition(self._lock)
        self._outstanding = 0
        self._cancelling = False

    @property
    def name(self) -> str:
        return "threadpool"

    def duplicate(self) -> Self:
        return type(self)(max_workers=self._requested)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and not issubclass(exc_type, Exception):
            # The flow run crashed (interrupt, exit): cancel work not yet started
            # rather than running all of it before the process can stop.
            self._cancelling = True
        with self._lock:
            while self._outstanding:
                self._all_done.wait()
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def submit_work(
        self,
        task_run: TaskRun,
        run: Callable[[], State[object]],
        is_async: bool,
        upstream: Sequence[FlowyardFuture[object]],
        cancel: Callable[[], State[object]],
    ) -> FlowyardFuture[object]:
        future: concurrent.futures.Future[State[object]] = concurrent.futures.Future()

        def execute() -> None:
            try:
                future.set_result(cancel() if self._cancelling else run())
            finally:
                with self._lock:
                    self._outstanding -= 1
                    if not self._outstanding:
                        self._all_done.notify_all()

        item = WorkItem(execute, is_async, tuple(upstream))
        with self._lock:
            self._outstanding += 1
        pending = [u for u in upstream if not u.done()]
        if not pending:
            self._dispatch(item)
        else:
            self._dispatch_after(item, pending)
        return FlowyardConcurrentFuture(task_run, future, item)

    def _dispatch_after(self, item: WorkItem, pending: list[FlowyardFuture[object]]) -> None:
        remaining = [len(pending)]
        lock = threading.Lock()

        def on_upstream_done(_: FlowyardFuture[object]) -> None:
            with lock:
                remaining[0] -= 1
                ready = remaining[0] == 0
            if ready:
                self._dispatch(item)

        for upstream in pending:
            upstream.add_done_callback(on_upstream_done)

    def _dispatch(self, item: WorkItem) -> None:
        executor = self._executor
        if executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = concurrent.futures.ThreadPoolExecutor(
                        max_workers=self.max_workers, thread_name_prefix="flowyard-task"
                    )
                executor = self._executor
        executor.submit(item.run_if_unclaimed)

    def __repr__(self) -> str:
        return f"ThreadPoolTaskRunner(max_workers={self.max_workers})"


ConcurrentTaskRunner = ThreadPoolTaskRunner
