"""Futures of submitted task runs, and ``wait`` / ``as_completed``.

A future wraps a ``concurrent.futures.Future`` that the engine completes
with the task run's final *state* (never with an exception), so that
``result()`` can re-raise the task's own exception and ``state`` can be read
without raising.

Work submitted to a thread pool can be run by a worker that waits for it:
when a task running in the pool calls ``wait()`` or ``result()`` on work
still queued, its thread claims and runs that work itself. A bounded pool
whose workers all wait on queued work therefore cannot deadlock.
"""

from __future__ import annotations

import abc
import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar, cast
from uuid import UUID

if TYPE_CHECKING:
    from flowyard.sdk._runs import TaskRun
    from flowyard.sdk._states import State

__all__ = [
    "DoneAndNotDoneFutures",
    "FlowyardConcurrentFuture",
    "FlowyardFuture",
    "FlowyardFutureList",
    "as_completed",
    "resolve_futures_to_states",
    "wait",
]

R = TypeVar("R")


class FlowyardFuture(abc.ABC, Generic[R]):
    """The future of a task run: ``wait()``, ``result()``, ``state``."""

    __slots__ = ("task_run",)

    def __init__(self, task_run: TaskRun) -> None:
        self.task_run = task_run

    @property
    def task_run_id(self) -> UUID:
        return self.task_run.id

    @property
    @abc.abstractmethod
    def state(self) -> State[R]:
        """The final state when done, else the run's current state."""

    @abc.abstractmethod
    def done(self) -> bool:
        """Whether the task run has finished."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> None:
        """Wait until the task run finishes (or ``timeout`` seconds pass)."""

    @abc.abstractmethod
    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        """The task's return value; re-raises its exception if it failed.

        Raises:
            TimeoutError: the run did not finish within ``timeout`` seconds.
        """

    @abc.abstractmethod
    def add_done_callback(self, fn: Callable[[FlowyardFuture[R]], object]) -> None:
        """Call ``fn(future)`` when the run finishes (at once if it has)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task_run={self.task_run.name!r}, state={self.state})"


_executing = threading.local()


def _running_work() -> bool:
    """Whether this thread is executing submitted work (a pool worker, or a helper)."""
    return getattr(_executing, "depth", 0) > 0


class WorkItem:
    """Work handed to a task runner; claimed and run exactly once."""

    __slots__ = ("_claimed", "_lock", "fn", "is_async", "upstream")

    def __init__(
        self, fn: Callable[[], None], is_async: bool, upstream: tuple[FlowyardFuture[object], ...]
    ) -> None:
        self.fn = fn
        self.is_async = is_async
        self.upstream = upstream
        self._claimed = False
        self._lock = threading.Lock()

    def try_claim(self) -> bool:
        with self._lock:
            if self._claimed:
                return False
            self._claimed = True
            return True

    def run_if_unclaimed(self) -> None:
        if self.try_claim():
            _executing.depth = getattr(_executing, "depth", 0) + 1
            try:
                self.fn()
            finally:
                _executing.depth -= 1

    def help_from_waiter(self) -> None:
        """Run the work in the waiting thread if it is a busy worker and nobody started it.

        Only threads already executing submitted work help: they hold a pool
        slot either way, so helping cannot raise concurrency above the pool's
        size, and it is what keeps a bounded pool from deadlocking. The flow's
        own thread just waits.
        """
        if self._claimed or not _running_work():
            return
        for upstream in self.upstream:
            upstream.wait()
        if self.is_async and _loop_running():
            return  # an event loop thread cannot start a nested loop for it
        self.run_if_unclaimed()


def _loop_running() -> bool:
    from flowyard.sdk._backends import in_async_context

    return in_async_context()


class FlowyardConcurrentFuture(FlowyardFuture[R]):
    """A future completed by a thread of a task runner."""

    __slots__ = ("_future", "_item")

    def __init__(
        self,
        task_run: TaskRun,
        future: concurrent.futures.Future[State[R]],
        item: WorkItem | None = None,
    ) -> None:
        super().__init__(task_run)
        self._future = future
        self._item = item

    @property
    def wrapped_future(self) -> concurrent.futures.Future[State[R]]:
        return self._future

    @property
    def state(self) -> State[R]:
        if self._future.done():
            return self._future.result()
        return cast("State[R]", self.task_run.state)

    def done(self) -> bool:
        return self._future.done()

    def _help(self) -> None:
        if self._item is not None and not self._future.done():
            self._item.help_from_waiter()

    def wait(self, timeout: float | None = None) -> None:
        self._help()
        concurrent.futures.wait([self._future], timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        self._help()
        try:
            state = self._future.result(timeout=timeout)
        except TimeoutError:
            raise TimeoutError(
                f"Task run {self.task_run_id} did not complete within {timeout} seconds"
            ) from None
        return state.result(raise_on_failure=raise_on_failure)

    def add_done_callback(self, fn: Callable[[FlowyardFuture[R]], object]) -> None:
        self._future.add_done_callback(lambda _: fn(self))


class FlowyardFutureList(list[FlowyardFuture[R]]):
    """The futures of a ``Task.map`` call, in input order."""

    def wait(self, timeout: float | None = None) -> None:
        """Wait for every future (or until ``timeout`` seconds pass)."""
        wait(self, timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[R]:
        """Every result, in order; re-raises the first failure met.

        Raises:
            TimeoutError: not all runs finished within ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        results: list[R] = []
        for future in self:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                results.append(future.result(remaining, raise_on_failure=raise_on_failure))
            except TimeoutError as exc:
                if future.done():
                    raise
                raise TimeoutError("Timed out waiting for all futures to complete.") from exc
        return results


class DoneAndNotDoneFutures(NamedTuple, Generic[R]):
    """What ``wait`` returns."""

    done: set[FlowyardFuture[R]]
    not_done: set[FlowyardFuture[R]]


def _wrapped(
    futures: Iterable[FlowyardFuture[R]],
) -> dict[concurrent.futures.Future[Any], FlowyardFuture[R]]:
    mapping: dict[concurrent.futures.Future[Any], FlowyardFuture[R]] = {}
    for future in futures:
        if not isinstance(future, FlowyardConcurrentFuture):
            raise TypeError(f"cannot wait on {future!r}: not a Flowyard future")
        mapping[future.wrapped_future] = future
    return mapping


def wait(
    futures: Iterable[FlowyardFuture[R]], timeout: float | None = None
) -> DoneAndNotDoneFutures[R]:
    """Wait for the futures to finish; returns the sets of done and not-done futures."""
    mapping = _wrapped(futures)
    done, not_done = concurrent.futures.wait(list(mapping), timeout=timeout)
    return DoneAndNotDoneFutures({mapping[f] for f in done}, {mapping[f] for f in not_done})


def as_completed(
    futures: Iterable[FlowyardFuture[R]], timeout: float | None = None
) -> Iterator[FlowyardFuture[R]]:
    """Yield the futures as their runs finish.

    Raises:
        TimeoutError: if ``timeout`` seconds pass before all have finished.
    """
    mapping = _wrapped(futures)
    for done in concurrent.futures.as_completed(list(mapping), timeout=timeout):
        yield mapping[done]


def resolve_futures_to_states(value: object) -> object:
    """``value`` with every future (in lists, tuples, sets and dict values) replaced by its final state."""
    if isinstance(value, FlowyardFuture):
        value.wait()
        return value.state
    if type(value) in (list, tuple, set, frozenset):
        items = [resolve_futures_to_states(item) for item in value]  # type: ignore[attr-defined]
        return type(value)(items)  # type: ignore[call-arg]
    if type(value) is dict:
        return {k: resolve_futures_to_states(v) for k, v in value.items()}  # type: ignore[attr-defined]
    return value
