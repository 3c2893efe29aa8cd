"""Running one task run: states, retries, timeouts, caching, hooks.

The engine is written once as a synchronous core (``TaskRunEngine``) with
two small drivers, ``run_task_sync`` and ``run_task_async``, that differ only
where the user's function is called, awaited, timed out, or slept on between
retries. Running synchronous tasks through an event loop was rejected: a loop
per call costs more than the whole per-task budget.

Hot-path rules: no pydantic, no copies of arguments, nothing built for the
reporter when there is none, the logger built only when a line is logged.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, cast

from flowyard.sdk import _logging
from flowyard.sdk._backends import ensure_server_integration
from flowyard.sdk._context import (
    TaskRunContext,
    current_tags,
    flow_run_context,
    task_run_context,
)
from flowyard.sdk._errors import CancelRun, TaskRunTimeoutError, UpstreamTaskError
from flowyard.sdk._ids import new_id, short_key
from flowyard.sdk._reporting import (
    Reporter,
    StateChanged,
    StateSnapshot,
    TaskRunCreated,
    current_reporter,
    flush,
    report,
)
from flowyard.sdk._resolution import resolve_parameters, wait_for_upstream
from flowyard.sdk._results import ResultRecord, get_result_store
from flowyard.sdk._runs import TaskRun
from flowyard.sdk._states import (
    AwaitingRetry,
    Cancelled,
    Failed,
    Pending,
    Retrying,
    State,
    StateType,
    exception_to_crashed_state,
    exception_to_failed_state,
    in_seconds,
    return_value_to_state,
)
from flowyard.sdk._timeouts import async_timeout, sync_timeout

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager, AbstractContextManager

    from flowyard.sdk._futures import FlowyardFuture
    from flowyard.sdk._results import ResultStore
    from flowyard.sdk._tasks import Task

__all__ = ["TaskRunEngine", "run_task_async", "run_task_sync", "set_task_run_state"]

_INFO = logging.INFO
_task_logger = logging.getLogger(_logging.TASK_RUN_LOGGER)


def jittered(delay: float, factor: float | None) -> float:
    """Prefect's clamped Poisson jitter: a delay in about [delay*(1-f), delay*(1+f)]."""
    if not factor or delay <= 0:
        return delay
    upper = delay * (1 + factor)
    multiple = 1 + factor
    lower_multiple = 0.0 if multiple >= 50 else math.log(2**multiple / (2**multiple - 1), 2)
    lower = max(0.0, delay * lower_multiple)
    lower_rv = 1 - math.exp(-lower / delay)
    upper_rv = 1 - math.exp(-upper / delay)
    return -math.log(max(1 - random.uniform(lower_rv, upper_rv), 1e-10)) * delay


def set_task_run_state(reporter: Reporter | None, run: TaskRun, state: State[object]) -> None:
    """Make ``state`` the run's current state and report it."""
    details = state.state_details
    details.task_run_id = run.id
    details.flow_run_id = run.flow_run_id
    run.state = state
    if reporter is not None:
        # Positional: a frozen dataclass takes keywords measurably slower, and this
        # runs three times per task run.
        snapshot = StateSnapshot.of(state)
        report(
            reporter,
            StateChanged("task", run.id, run.flow_run_id, snapshot, run.run_count, run.cache_key),
        )


class TaskRunEngine:
    """The state machine of one task run; drivers call its steps in order."""

    __slots__ = (
        "context",
        "persist",
        "reporter",
        "result_value",
        "retries_done",
        "store",
        "task",
        "task_run",
        "token",
        "top_level",
        "wait_for",
    )

    def __init__(
        self,
        task: Task[..., object],
        parameters: dict[str, object],
        wait_for: Sequence[object] | None,
        upstream: Sequence[FlowyardFuture[object]] = (),
    ) -> None:
        flow_ctx = flow_run_context.get()
        self.top_level = False
        if flow_ctx is not None:
            reporter = flow_ctx.reporter
        else:
            # A task called outside any flow: it may be the whole "run".
            parent_task = task_run_context.get()
            self.top_level = parent_task is None
            if self.top_level:
                ensure_server_integration()
            _logging.ensure_configured()
            reporter = parent_task.reporter if parent_task is not None else current_reporter()
        self.task = task
        self.wait_for = wait_for
        self.reporter = reporter
        self.retries_done = 0
        self.result_value: object = None
        self.token: contextvars.Token[TaskRunContext | None] | None = None
        self.store: ResultStore | None = None
        persist = task.persist_result
        if persist is None:
            persist = flow_ctx.persist_result if flow_ctx is not None else False
        self.persist = persist
        run_id = new_id()
        dynamic_key = short_key(run_id)
        extra_tags = current_tags.get()
        run_tags = task.tags | extra_tags if extra_tags else task.tags
        flow_run_id = flow_ctx.flow_run.id if flow_ctx is not None else None
        name = task.task_run_name
        self.task_run = run = TaskRun(
            id=run_id,
            name=f"{task.name}-{dynamic_key}" if name is None else task.format_run_name(parameters),
            task_name=task.name,
            task_key=task.task_key,
            dynamic_key=dynamic_key,
            flow_run_id=flow_run_id,
            tags=run_tags,
            state=Pending(),
        )
        self.context = TaskRunContext(
            task=task,
            task_run=run,
            parameters=parameters,
            flow_run_context=flow_ctx,
            reporter=reporter,
            log_prints=task.log_prints
            if task.log_prints is not None
            else (flow_ctx.log_prints if flow_ctx is not None else False),
            persist_result=persist,
        )
        if reporter is not None:
            parent = task_run_context.get()
            report(
                reporter,
                TaskRunCreated(  # positional, as above
                    run_id,
                    flow_run_id,
                    task.name,
                    run.name,
                    task.task_key,
                    dynamic_key,
                    run_tags,
                    tuple([u.task_run_id for u in upstream]) if upstream else (),
                    run.state.timestamp,
                    parent.task_run.id if parent is not None else None,
                ),
            )
        self.set_state(run.state)

    # -- states -----------------------------------------------------------

    def set_state(self, state: State[object]) -> None:
        set_task_run_state(self.reporter, self.task_run, state)

    def log(self, level: int, message: str, exc_info: BaseException | None = None) -> None:
        if _task_logger.isEnabledFor(level):
            attributes = _logging.task_run_attributes(self.context)
            _logging.emit(_task_logger, level, message, attributes, exc_info)

    # -- steps --------------------------------------------------------------

    def enter(self) -> None:
        self.token = task_run_context.set(self.context)

    def exit(self) -> None:
        if self.token is not None:
            task_run_context.reset(self.token)
            self.token = None

    def resolve_inputs(self) -> bool:
        """Resolve futures in the arguments; False (state NotReady) if an upstream failed."""
        ctx = self.context
        try:
            ctx.parameters = resolve_parameters(cast("dict[str, object]", ctx.parameters))
            if self.wait_for:
                wait_for_upstream(self.wait_for)
        except UpstreamTaskError as exc:
            self.set_state(Pending(name="NotReady", message=str(exc)))
            return False
        return True

    def load_cached(self) -> bool:
        """Look the run up in the result store; True (state Cached) on a hit."""
        if not self.persist:
            return False
        task = self.task
        flow_ctx = self.context.flow_run_context
        key: str | None = None
        if task.cache_policy is not None:
            try:
                key = task.cache_policy.compute_key(
                    self.context,
                    self.context.parameters,
                    flow_ctx.parameters if flow_ctx is not None else None,
                )
            except Exception as exc:
                self.log(
                    logging.ERROR,
                    "Error encountered when computing cache key - result will not be persisted.",
                    exc_info=exc,
                )
                self.persist = False
                return False
        elif task.result_storage_key is not None:
            key = task.result_storage_key.format(**self.context.parameters)
        self.task_run.cache_key = key
        self.store = (
            task.result_store
            or (flow_ctx.result_store if flow_ctx is not None else None)
            or get_result_store()
        )
        if key is None or task.refresh_cache:
            return False
        try:
            record = self.store.read(key)
        except Exception as exc:
            self.log(logging.WARNING, f"Could not read cached result {key!r}: {exc}")
            return False
        if record is None:
            return False
        state: State[object] = State(StateType.COMPLETED, name="Cached", data=record.value)
        state.state_details.cache_key = key
        state.state_details.cache_expiration = record.expiration
        self.set_state(state)
        self.result_value = record.value
        return True

    def begin_attempt(self) -> None:
        run = self.task_run
        run.run_count += 1
        state = Retrying() if self.retries_done else State(StateType.RUNNING)
        if run.start_time is None:
            run.start_time = state.timestamp
        self.set_state(state)

    def succeed(self, value: object) -> None:
        state = return_value_to_state(value)
        run = self.task_run
        if self.persist and state.type is StateType.COMPLETED:
            self._persist(state)
        run.end_time = state.timestamp
        self.set_state(state)
        self.result_value = value

    def _persist(self, state: State[object]) -> None:
        key = self.task_run.cache_key or new_id().hex
        expiration = self.task.cache_expiration
        record = ResultRecord(
            key=key,
            value=state.data,
            created=state.timestamp,
            expiration=state.timestamp + expiration if expiration is not None else None,
        )
        state.state_details.cache_key = self.task_run.cache_key
        state.state_details.cache_expiration = record.expiration
        try:
            (self.store or get_result_store()).write(record)
        except Exception as exc:
            self.log(
                logging.WARNING,
                f"Encountered an error while persisting result: {exc} Execution will "
                "continue, but the result has not been persisted",
            )

    def retry_delay(self, exc: BaseException) -> float | None:
        """The delay before the next attempt, or None when the run should fail now."""
        task = self.task
        if self.retries_done >= task.retries:
            if task.retries:
                self.log(
                    logging.ERROR,
                    f"Task run failed with exception: {exc!r} - Retries are exhausted",
                    exc_info=exc,
                )
            return None
        if task.retry_condition_fn is not None and not self._should_retry(exc):
            return None
        delays = task.retry_delay_seconds
        if isinstance(delays, list | tuple):
            delay = float(delays[min(self.retries_done, len(delays) - 1)]) if delays else 0.0
        else:
            delay = float(delays or 0)
        delay = jittered(delay, task.retry_jitter_factor)
        self.retries_done += 1
        self.log(
            _INFO,
            f"Task run failed with exception: {exc!r} - Retry {self.retries_done}/{task.retries} "
            f"will start {f'{delay:g} second(s) from now' if delay else 'immediately'}",
        )
        if delay:
            self.set_state(AwaitingRetry(scheduled_time=in_seconds(delay)))
        return delay

    def _should_retry(self, exc: BaseException) -> bool:
        condition = self.task.retry_condition_fn
        assert condition is not None
        state = Failed(data=exc, message=f"Task run encountered unexpected exception: {exc!r}")
        try:
            verdict = condition(self.task, self.task_run, state)
            if inspect.isawaitable(verdict):
                verdict = _run_coroutine(verdict)
            return bool(verdict)
        except Exception as error:
            self.log(
                logging.ERROR,
                f"An error was encountered while running `retry_condition_fn` check "
                f"{condition!r} for task {self.task.name!r}",
                exc_info=error,
            )
            return False

    def fail(self, exc: BaseException) -> None:
        if isinstance(exc, TimeoutError):
            if isinstance(exc, TaskRunTimeoutError):
                message = f"Task run exceeded timeout of {self.task.timeout_seconds:g} second(s)"
            else:
                message = f"Task run failed due to timeout: {exc!r}"
            self.log(logging.ERROR, message)
            state = Failed(data=exc, message=message, name="TimedOut")
        else:
            state = exception_to_failed_state(exc, "Task run encountered an exception")
        self.task_run.end_time = state.timestamp
        self.set_state(state)

    def cancel_before_start(self) -> State[object]:
        """Record that the run was cancelled before it started, and return that state."""
        state = Cancelled(message="The flow run ended before this task run started.")
        self.task_run.end_time = state.timestamp
        self.set_state(state)
        self.finish()
        return state

    def crash(self, exc: BaseException) -> None:
        if isinstance(exc, CancelRun):
            state = Cancelled(message=str(exc) or "Task run was cancelled.")
        else:
            state = exception_to_crashed_state(exc)
            self.log(logging.ERROR, f"Crash detected! {state.message}")
        self.task_run.end_time = state.timestamp
        self.set_state(state)

    def hooks(self) -> Sequence[Callable[..., object]]:
        state = self.task_run.state
        if state.type is StateType.COMPLETED:
            return self.task.on_completion_hooks
        if state.type is StateType.FAILED:
            return self.task.on_failure_hooks
        return ()

    def run_hook(self, hook: Callable[..., object]) -> Awaitable[object] | None:
        state = self.task_run.state
        name = getattr(hook, "__name__", repr(hook))
        self.log(_INFO, f"Running hook {name!r} in response to entering state {state.name!r}")
        outcome = hook(self.task, self.task_run, state)
        return cast("Awaitable[object]", outcome) if inspect.isawaitable(outcome) else None

    def hook_done(self, hook: Callable[..., object], error: BaseException | None) -> None:
        name = getattr(hook, "__name__", repr(hook))
        if error is None:
            self.log(_INFO, f"Hook {name!r} finished running successfully")
        else:
            self.log(
                logging.ERROR,
                f"An error was encountered while running hook {name!r}",
                exc_info=error,
            )

    def finish(self) -> None:
        state = self.task_run.state
        level = _INFO if state.type is StateType.COMPLETED else logging.ERROR
        if _task_logger.isEnabledFor(level):
            self.log(level, f"Finished in state {state}")
        if self.top_level and self.reporter is not None:
            flush(self.reporter)

    def outcome(self, return_state: bool) -> object:
        """What the caller of a direct task call receives."""
        state = self.task_run.state
        if return_state:
            return state
        if state.type is StateType.PENDING and state.name == "NotReady":
            raise UpstreamTaskError(state.message or "An upstream task run did not complete.")
        if state.type is StateType.COMPLETED and not isinstance(self.result_value, State):
            return self.result_value
        return state.result()


def _run_coroutine(awaitable: Awaitable[object]) -> object:
    import asyncio

    async def wrapper() -> object:
        return await awaitable

    return asyncio.run(wrapper())


def _tag_slots(engine: TaskRunEngine) -> tuple[AbstractContextManager[None] | None, bool]:
    """The slots of a tagged task run's ``tag:`` concurrency limits, taken (waiting while
    full), and whether the task may run: a refusal (a limit of 0 slots) fails it; the
    server being away lets it run unthrottled rather than fail it."""
    from flowyard.sdk._concurrency import tag_slots

    slots = tag_slots(engine.task_run.tags)
    if slots is None:
        return None, True
    try:
        slots.__enter__()
    except Exception as exc:
        return None, _may_run_after(engine, exc)
    return slots, True


def _may_run_after(engine: TaskRunEngine, exc: Exception) -> bool:
    """A refusal (a limit of 0 slots) fails the task; the server being away lets it run."""
    if isinstance(exc, ValueError):
        engine.fail(exc)
        return False
    engine.log(logging.WARNING, f"Running without its tag concurrency limits: {exc}")
    return True


async def _atag_slots(
    engine: TaskRunEngine,
) -> tuple[AbstractAsyncContextManager[None] | None, bool]:
    """:func:`_tag_slots` for an async task run: it waits on the event loop."""
    from flowyard.sdk._concurrency import atag_slots

    slots = await atag_slots(engine.task_run.tags)
    if slots is None:
        return None, True
    try:
        await slots.__aenter__()
    except Exception as exc:
        return None, _may_run_after(engine, exc)
    return slots, True


def run_task_sync(engine: TaskRunEngine, return_state: bool, in_worker: bool = False) -> object:
    """Run a synchronous task to its final state (``in_worker``: never raise)."""
    task = engine.task
    engine.enter()
    patch = _logging.patch_print() if engine.context.log_prints else None
    if patch is not None:
        patch.__enter__()
    try:
        if engine.resolve_inputs() and not engine.load_cached():
            call = task.call_signature.call
            # A slot of each limited tag, held through the retries.
            slots, may_run = _tag_slots(engine) if engine.task_run.tags else (None, True)
            try:
                while may_run:
                    engine.begin_attempt()
                    try:
                        if task.timeout_seconds:
                            with sync_timeout(task.timeout_seconds, TaskRunTimeoutError):
                                value = call(engine.context.parameters)
                        else:
                            value = call(engine.context.parameters)
                    except Exception as exc:
                        delay = engine.retry_delay(exc)
                        if delay is None:
                            engine.fail(exc)
                            break
                        if delay:
                            time.sleep(delay)
                    else:
                        engine.succeed(value)
                        break
            finally:
                if slots is not None:
                    slots.__exit__(None, None, None)
        for hook in engine.hooks():
            try:
                pending = engine.run_hook(hook)
                if pending is not None:
                    _run_coroutine(pending)
            except Exception as exc:
                engine.hook_done(hook, exc)
            else:
                engine.hook_done(hook, None)
    except BaseException as exc:
        engine.crash(exc)
        engine.finish()
        if in_worker:
            return engine.task_run.state
        raise
    finally:
        if patch is not None:
            patch.__exit__(None, None, None)
        engine.exit()
    engine.finish()
    return engine.task_run.state if in_worker else engine.outcome(return_state)


async def run_task_async(
    engine: TaskRunEngine, return_state: bool, in_worker: bool = False
) -> object:
    """Run an asynchronous task to its final state (``in_worker``: never raise)."""
    task = engine.task
    engine.enter()
    patch = _logging.patch_print() if engine.context.log_prints else None
    if patch is not None:
        patch.__enter__()
    try:
        if engine.resolve_inputs() and not engine.load_cached():
            aslots, may_run = await _atag_slots(engine) if engine.task_run.tags else (None, True)
            try:
                while may_run:
                    engine.begin_attempt()
                    try:
                        async with async_timeout(task.timeout_seconds, TaskRunTimeoutError):
                            value = await cast(
                                "Awaitable[object]",
                                task.call_signature.call(engine.context.parameters),
                            )
                    except Exception as exc:
                        delay = engine.retry_delay(exc)
                        if delay is None:
                            engine.fail(exc)
                            break
                        if delay:
                            import asyncio

                            await asyncio.sleep(delay)
                    else:
                        engine.succeed(value)
                        break
            finally:
                if aslots is not None:
                    await aslots.__aexit__(None, None, None)
        for hook in engine.hooks():
            try:
                pending = engine.run_hook(hook)
                if pending is not None:
                    await pending
            except Exception as exc:
                engine.hook_done(hook, exc)
            else:
                engine.hook_done(hook, None)
    except BaseException as exc:
        engine.crash(exc)
        engine.finish()
        if in_worker:
            return engine.task_run.state
        raise
    finally:
        if patch is not None:
            patch.__exit__(None, None, None)
        engine.exit()
    engine.finish()
    return engine.task_run.state if in_worker else engine.outcome(return_state)
