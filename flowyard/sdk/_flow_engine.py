"""Running one flow run: parameters, states, retries, timeout, subflow links, hooks.

Like the task engine, a synchronous core (``FlowRunEngine``) and two small
drivers that differ only in how the flow function is called and waited on.

A flow called inside another flow run is a subflow: the parent gets a task
run standing for it (named after the flow), and the child flow run points to
that task run through ``parent_task_run_id``. A flow called inside a task run
points to that task run instead.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import ExitStack
from datetime import datetime
from typing import TYPE_CHECKING, cast
from uuid import UUID

from flowyard.sdk import _logging
from flowyard.sdk._backends import ensure_server_integration
from flowyard.sdk._context import (
    FlowRunContext,
    current_tags,
    flow_run_context,
    task_run_context,
)
from flowyard.sdk._errors import (
    CancelRun,
    FlowRunTimeoutError,
    SignatureMismatchError,
    UpstreamTaskError,
)
from flowyard.sdk._futures import resolve_futures_to_states
from flowyard.sdk._ids import new_id, short_key
from flowyard.sdk._reporting import (
    FlowRunFinished,
    FlowRunStarted,
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
from flowyard.sdk._runs import FlowRun, TaskRun, generate_flow_run_name
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
from flowyard.sdk._task_engine import set_task_run_state
from flowyard.sdk._timeouts import async_timeout, sync_timeout

if TYPE_CHECKING:
    from flowyard.sdk._flows import Flow

__all__ = ["FlowRunEngine", "run_flow", "run_flow_async", "run_flow_sync"]

_INFO = logging.INFO
_NOT_SET = object()
_engine_logger = logging.getLogger(_logging.ENGINE_LOGGER)
_flow_logger = logging.getLogger(_logging.FLOW_RUN_LOGGER)


class FlowRunEngine:
    """The state machine of one flow run; drivers call its steps in order."""

    def __init__(
        self,
        flow: Flow[..., object],
        parameters: dict[str, object],
        *,
        wait_for: Sequence[object] | None = None,
        flow_run_id: UUID | None = None,
        flow_run_name: str | None = None,
        deployment_id: UUID | None = None,
        deployment_name: str | None = None,
        scheduled_start_time: datetime | None = None,
    ) -> None:
        parent_flow = flow_run_context.get()
        parent_task = task_run_context.get()
        self.top_level = parent_flow is None and parent_task is None
        if self.top_level:
            ensure_server_integration()
            reporter = current_reporter()
        else:
            reporter = (parent_task or parent_flow).reporter  # type: ignore[union-attr]
        self.flow = flow
        self.wait_for = wait_for
        self.reporter: Reporter | None = reporter
        self.retries_done = 0
        self.result_value: object = _NOT_SET
        self.raised: BaseException | None = None
        self.interrupted: BaseException | None = None
        self.parent_flow = parent_flow
        self.stand_in: TaskRun | None = None
        self.tokens: list[contextvars.Token[object]] = []
        self.stack = ExitStack()
        parent_task_run_id: UUID | None = None
        parent_flow_run_id: UUID | None = None
        if parent_task is not None:
            parent_task_run_id = parent_task.task_run.id
            parent_flow_run_id = parent_task.task_run.flow_run_id
        elif parent_flow is not None:
            self.stand_in = self._create_stand_in(parent_flow)
            parent_task_run_id = self.stand_in.id
            parent_flow_run_id = parent_flow.flow_run.id
        extra_tags = current_tags.get()
        run_id = flow_run_id or new_id()
        name = flow_run_name or (
            flow.format_run_name(parameters) if flow.flow_run_name else generate_flow_run_name()
        )
        self.flow_run = run = FlowRun(
            id=run_id,
            name=name,
            flow_name=flow.name,
            flow_version=flow.version,
            parameters=parameters,
            state=Pending(),
            tags=flow.tags | extra_tags if extra_tags else flow.tags,
            parent_task_run_id=parent_task_run_id,
            parent_flow_run_id=parent_flow_run_id,
            deployment_id=deployment_id,
            deployment_name=deployment_name,
            scheduled_start_time=scheduled_start_time,
        )
        if reporter is not None:
            report(
                reporter,
                FlowRunStarted(
                    flow_run_id=run_id,
                    flow_run_name=name,
                    flow_name=flow.name,
                    flow_version=run.flow_version,
                    parameters=parameters,
                    parent_task_run_id=parent_task_run_id,
                    parent_flow_run_id=parent_flow_run_id,
                    tags=run.tags,
                    deployment_id=deployment_id,
                    timestamp=run.state.timestamp,
                ),
            )
        self.set_state(run.state)
        self.context = FlowRunContext(
            flow=flow,
            flow_run=run,
            parameters=parameters,
            task_runner=flow.task_runner.duplicate(),
            reporter=reporter,
            result_store=flow.result_store,
            log_prints=bool(flow.log_prints)
            if flow.log_prints is not None
            else bool(parent_flow and parent_flow.log_prints),
            persist_result=bool(flow.persist_result)
            if flow.persist_result is not None
            else bool(parent_flow and parent_flow.persist_result),
        )
        _logging.ensure_configured()
        if parent_flow is not None:
            if _flow_logger.isEnabledFor(_INFO):
                _logging.emit(
                    _flow_logger,
                    _INFO,
                    f"Created subflow run {name!r} for flow {flow.name!r}",
                    _logging.flow_run_attributes(parent_flow),
                )
        elif _engine_logger.isEnabledFor(_INFO):
            _logging.emit(
                _engine_logger, _INFO, f"Created flow run {name!r} for flow {flow.name!r}", {}
            )

    def _create_stand_in(self, parent: FlowRunContext) -> TaskRun:
        run_id = new_id()
        fn = self.flow.fn
        run = TaskRun(
            id=run_id,
            name=f"{self.flow.name}-{short_key(run_id)}",
            task_name=self.flow.name,
            task_key=f"{getattr(fn, '__qualname__', self.flow.name)}-subflow",
            dynamic_key=short_key(run_id),
            flow_run_id=parent.flow_run.id,
            tags=current_tags.get(),
            state=Pending(),
        )
        if self.reporter is not None:
            report(
                self.reporter,
                TaskRunCreated(
                    task_run_id=run_id,
                    flow_run_id=parent.flow_run.id,
                    task_name=run.task_name,
                    task_run_name=run.name,
                    task_key=run.task_key,
                    dynamic_key=run.dynamic_key,
                    tags=run.tags,
                    upstream_task_run_ids=(),
                    timestamp=run.state.timestamp,
                ),
            )
        set_task_run_state(self.reporter, run, run.state)
        return run

    # -- states -----------------------------------------------------------------

    def set_state(self, state: State[object]) -> None:
        run = self.flow_run
        state.state_details.flow_run_id = run.id
        run.state = state
        if self.reporter is not None:
            report(
                self.reporter,
                StateChanged(
                    run_kind="flow",
                    run_id=run.id,
                    flow_run_id=run.id,
                    state=StateSnapshot.of(state),
                    run_count=run.run_count,
                ),
            )
        if self.stand_in is not None and (
            state.type is not self.stand_in.state.type or state.name != self.stand_in.state.name
        ):
            mirror: State[object] = State(
                state.type, name=state.name, message=state.message, data=state.data
            )
            self.stand_in.run_count = run.run_count
            set_task_run_state(self.reporter, self.stand_in, mirror)

    def log(self, level: int, message: str, exc_info: BaseException | None = None) -> None:
        if _flow_logger.isEnabledFor(level):
            attributes = _logging.flow_run_attributes(self.context)
            _logging.emit(_flow_logger, level, message, attributes, exc_info)

    # -- steps ------------------------------------------------------------------

    def enter(self) -> None:
        self.tokens.append(flow_run_context.set(self.context))  # type: ignore[arg-type]
        self.tokens.append(task_run_context.set(None))  # type: ignore[arg-type]
        self.stack.enter_context(self.context.task_runner)
        if self.context.log_prints:
            self.stack.enter_context(_logging.patch_print())

    def resolve_and_validate(self) -> bool:
        """Resolve futures in the parameters and validate them; False if the run cannot start."""
        ctx = self.context
        try:
            parameters = resolve_parameters(cast("dict[str, object]", ctx.parameters))
            if self.wait_for:
                wait_for_upstream(self.wait_for)
        except UpstreamTaskError as exc:
            self.set_state(Pending(name="NotReady", message=str(exc)))
            self.raised = exc
            return False
        if self.flow.should_validate_parameters and parameters:
            try:
                parameters = self.flow.validate_parameters(parameters)
            except Exception as exc:
                message = "Validation of flow parameters failed with error:"
                self.log(logging.ERROR, f"{message} {exc}")
                self.set_state(exception_to_failed_state(exc, message))
                self.raised = exc
                return False
        ctx.parameters = parameters
        self.flow_run.parameters = parameters
        return True

    def begin_attempt(self) -> None:
        run = self.flow_run
        run.run_count += 1
        state = Retrying() if self.retries_done else State(StateType.RUNNING)
        if run.start_time is None:
            run.start_time = state.timestamp
        self.set_state(state)

    def succeed(self, value: object) -> float | None:
        resolved = resolve_futures_to_states(value)
        state = return_value_to_state(resolved)
        if state.type is StateType.FAILED:
            delay = self._retry_delay(state)
            if delay is not None:
                return delay
        if self.context.persist_result and state.type is StateType.COMPLETED:
            self._persist(state)
        self.result_value = resolved
        self._final(state)
        return None

    def fail(self, exc: BaseException) -> float | None:
        if isinstance(exc, TimeoutError):
            if isinstance(exc, FlowRunTimeoutError):
                message = f"Flow run exceeded timeout of {self.flow.timeout_seconds:g} second(s)"
            else:
                message = f"Flow run failed due to timeout: {exc!r}"
            self.log(logging.ERROR, message)
            state = Failed(data=exc, message=message, name="TimedOut")
        else:
            self.log(
                logging.ERROR, f"Encountered exception during execution: {exc!r}", exc_info=exc
            )
            state = exception_to_failed_state(exc, "Flow run encountered an exception:")
        delay = self._retry_delay(state)
        if delay is not None:
            return delay
        self.raised = exc
        self._final(state)
        return None

    def _retry_delay(self, failed: State[object]) -> float | None:
        if self.retries_done >= self.flow.retries:
            return None
        self.retries_done += 1
        delay = self.flow.retry_delay_seconds
        self.log(
            _INFO,
            f"Received non-final state 'AwaitingRetry' when proposing final state "
            f"{failed.name!r} and will attempt to run again...",
        )
        self.set_state(AwaitingRetry(scheduled_time=in_seconds(delay)))
        return delay

    def cancel(self, exc: CancelRun) -> None:
        self.interrupted = exc  # task runs not yet started are cancelled, not run
        # No data: reading the result raises CancelledRun with the message, not the signal.
        self._final(Cancelled(message=str(exc) or "Flow run was cancelled."))

    def crash(self, exc: BaseException) -> None:
        state = exception_to_crashed_state(exc)
        self.log(logging.ERROR, f"Crash detected! {state.message}")
        self.raised = exc
        self._final(state)

    def _final(self, state: State[object]) -> None:
        self.flow_run.end_time = state.timestamp
        self.set_state(state)

    def _persist(self, state: State[object]) -> None:
        record = ResultRecord(
            key=f"flow-runs/{self.flow_run.id}", value=state.data, created=state.timestamp
        )
        try:
            (self.flow.result_store or get_result_store()).write(record)
        except Exception as exc:
            self.log(logging.WARNING, f"Encountered an error while persisting result: {exc}")

    def hooks(self, running: bool = False) -> Sequence[Callable[..., object]]:
        flow = self.flow
        if running:
            return flow.on_running_hooks
        kind = self.flow_run.state.type
        if kind is StateType.COMPLETED:
            return flow.on_completion_hooks
        if kind is StateType.FAILED:
            return flow.on_failure_hooks
        if kind in (StateType.CANCELLED, StateType.CANCELLING):
            return flow.on_cancellation_hooks
        if kind is StateType.CRASHED:
            return flow.on_crashed_hooks
        return ()

    def run_hook(self, hook: Callable[..., object]) -> Awaitable[object] | None:
        state = self.flow_run.state
        name = getattr(hook, "__name__", repr(hook))
        self.log(_INFO, f"Running hook {name!r} in response to entering state {state.name!r}")
        outcome = hook(self.flow, self.flow_run, state)
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

    def exit(self, crash: BaseException | None = None) -> None:
        """Wait for submitted task runs, log the final state, report, restore the context.

        After a crash, task runs that have not started are cancelled instead.
        """
        crash = crash or self.interrupted
        try:
            if crash is None:
                self.stack.close()
            else:
                self.stack.__exit__(type(crash), crash, crash.__traceback__)
        finally:
            state = self.flow_run.state
            level = _INFO if state.type is StateType.COMPLETED else logging.ERROR
            self.log(level, f"Finished in state {state}")
            while self.tokens:
                token = self.tokens.pop()
                token.var.reset(token)  # type: ignore[arg-type]
            if self.reporter is not None:
                report(
                    self.reporter,
                    FlowRunFinished(
                        flow_run_id=self.flow_run.id,
                        state=StateSnapshot.of(state),
                        timestamp=state.timestamp,
                    ),
                )
                if self.top_level:
                    flush(self.reporter)

    def outcome(self, return_state: bool) -> object:
        """What the caller of the flow receives (Prefect's rules).

        The return value itself when the function returned (futures in it
        replaced by states), else the exception it raised, else the final
        state's result (which raises for a failed or cancelled run).
        """
        if return_state:
            return self.flow_run.state
        value = self.result_value
        if value is not _NOT_SET and not isinstance(value, State):
            return value
        if self.raised is not None:
            raise self.raised
        return self.flow_run.state.result()


def _call_hooks_sync(engine: FlowRunEngine, running: bool = False) -> None:
    for hook in engine.hooks(running):
        try:
            pending = engine.run_hook(hook)
            if pending is not None:
                import asyncio

                asyncio.run(_awaited(pending))
        except Exception as exc:
            engine.hook_done(hook, exc)
        else:
            engine.hook_done(hook, None)


async def _awaited(awaitable: Awaitable[object]) -> object:
    return await awaitable


def run_flow_sync(engine: FlowRunEngine, return_state: bool = False) -> object:
    """Run a synchronous flow to its final state and return per ``return_state``."""
    flow = engine.flow
    engine.enter()
    try:
        if engine.resolve_and_validate():
            while True:
                engine.begin_attempt()
                if engine.flow_run.run_count == 1:
                    _call_hooks_sync(engine, running=True)
                try:
                    with sync_timeout(flow.timeout_seconds, FlowRunTimeoutError):
                        value = flow.call_signature.call(engine.context.parameters)
                except CancelRun as exc:
                    engine.cancel(exc)
                    break
                except Exception as exc:
                    delay = engine.fail(exc)
                else:
                    delay = engine.succeed(value)
                if delay is None:
                    break
                time.sleep(delay)
        _call_hooks_sync(engine)
    except BaseException as exc:
        try:
            engine.crash(exc)
            _call_hooks_sync(engine)
        finally:
            engine.exit(crash=exc)
        raise
    engine.exit()
    return engine.outcome(return_state)


async def _call_hooks_async(engine: FlowRunEngine, running: bool = False) -> None:
    for hook in engine.hooks(running):
        try:
            pending = engine.run_hook(hook)
            if pending is not None:
                await pending
        except Exception as exc:
            engine.hook_done(hook, exc)
        else:
            engine.hook_done(hook, None)


async def run_flow_async(engine: FlowRunEngine, return_state: bool = False) -> object:
    """Run an asynchronous flow to its final state and return per ``return_state``."""
    flow = engine.flow
    engine.enter()
    try:
        if engine.resolve_and_validate():
            while True:
                engine.begin_attempt()
                if engine.flow_run.run_count == 1:
                    await _call_hooks_async(engine, running=True)
                try:
                    async with async_timeout(flow.timeout_seconds, FlowRunTimeoutError):
                        value = await cast(
                            "Awaitable[object]", flow.call_signature.call(engine.context.parameters)
                        )
                except CancelRun as exc:
                    engine.cancel(exc)
                    break
                except Exception as exc:
                    delay = engine.fail(exc)
                else:
                    delay = engine.succeed(value)
                if delay is None:
                    break
                import asyncio

                await asyncio.sleep(delay)
        await _call_hooks_async(engine)
    except BaseException as exc:
        try:
            engine.crash(exc)
            await _call_hooks_async(engine)
        finally:
            engine.exit(crash=exc)
        raise
    engine.exit()
    return engine.outcome(return_state)


def run_flow(
    flow: Flow[..., object],
    parameters: Mapping[str, object] | None = None,
    *,
    flow_run_id: UUID | None = None,
    flow_run_name: str | None = None,
    deployment_id: UUID | None = None,
    deployment_name: str | None = None,
    scheduled_start_time: datetime | None = None,
) -> State[object]:
    """Run ``flow`` with a parameters dict and return its final state.

    This is how a runner executes a deployment's flow run: the ids and names
    given here become the run's (``flowyard.runtime.deployment.name`` and so
    on), defaults fill missing parameters, and the flow's exception, if any,
    is in the returned state rather than raised.

    Raises:
        SignatureMismatchError: a parameter is not in the flow's signature.
    """
    given = dict(parameters or {})
    signature = flow.call_signature
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.signature.parameters.values())
    unknown = sorted(set(given) - signature.name_set)
    if unknown and not accepts_any:
        raise SignatureMismatchError(
            f"Function expects parameters {list(signature.names)} but was provided with "
            f"parameters {list(given)}"
        )
    args, kwargs = signature.to_call(given) if not signature.plain else ((), given)
    bound = signature.bind(args, kwargs)
    engine = FlowRunEngine(
        flow,
        bound,
        flow_run_id=flow_run_id,
        flow_run_name=flow_run_name,
        deployment_id=deployment_id,
        deployment_name=deployment_name,
        scheduled_start_time=scheduled_start_time,
    )
    if flow.isasync:
        import asyncio

        return cast("State[object]", asyncio.run(_run_async_state(engine)))
    return cast("State[object]", run_flow_sync(engine, return_state=True))


async def _run_async_state(engine: FlowRunEngine) -> object:
    return await run_flow_async(engine, return_state=True)
