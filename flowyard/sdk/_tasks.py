"""``@task`` and ``Task``: calling, submitting and mapping task runs.

Options and their meanings follow Prefect 3's ``@task``. A task given a
``cache_policy``, ``cache_key_fn``, ``result_storage``, ``result_serializer``
or ``result_storage_key`` persists its results (and so caches) unless
``persist_result=False`` says otherwise.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import hashlib
import inspect
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    ParamSpec,
    TypedDict,
    TypeVar,
    Unpack,
    cast,
    overload,
)

from flowyard.sdk import _task_engine
from flowyard.sdk._annotations import BaseAnnotation, allow_failure, quote, unmapped
from flowyard.sdk._cache_policies import (
    DEFAULT,
    NONE,
    CacheKeyFnPolicy,
    CachePolicy,
    source_hash,
)
from flowyard.sdk._context import flow_run_context
from flowyard.sdk._errors import (
    MappingLengthMismatch,
    MappingMissingIterable,
    MissingContextError,
)
from flowyard.sdk._futures import FlowyardFuture, FlowyardFutureList
from flowyard.sdk._parameters import CallSignature
from flowyard.sdk._resolution import resolve_value, upstream_futures
from flowyard.sdk._results import LocalResultStore, ResultStore, Serializer

if TYPE_CHECKING:
    from flowyard.sdk._context import TaskRunContext
    from flowyard.sdk._runs import TaskRun
    from flowyard.sdk._states import State

__all__ = ["Task", "TaskOptions", "exponential_backoff", "task"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

TaskHook = Callable[["Task[..., Any]", "TaskRun", "State[Any]"], object]
RetryDelays = float | Sequence[float] | Callable[[int], Sequence[float]]
_MAX_RETRY_DELAYS = 50


class TaskOptions(TypedDict, total=False):
    """The options of ``@task`` and ``Task.with_options`` (Prefect 3's names)."""

    name: str
    description: str | None
    tags: Iterable[str] | None
    version: str | None
    cache_policy: CachePolicy | None
    cache_key_fn: Callable[[TaskRunContext, dict[str, Any]], str | None] | None
    cache_expiration: timedelta | None
    task_run_name: str | Callable[..., str] | None
    retries: int | None
    retry_delay_seconds: RetryDelays | None
    retry_jitter_factor: float | None
    persist_result: bool | None
    result_storage: ResultStore | str | Path | None
    result_serializer: Serializer | None
    result_storage_key: str | None
    cache_result_in_memory: bool
    timeout_seconds: float | None
    log_prints: bool | None
    refresh_cache: bool | None
    on_completion: Sequence[TaskHook] | None
    on_failure: Sequence[TaskHook] | None
    retry_condition_fn: Callable[[Task[..., Any], TaskRun, State[Any]], object] | None
    viz_return_value: object


_OPTION_NAMES = frozenset(TaskOptions.__annotations__)


def check_options(kind: str, options: dict[str, object], allowed: frozenset[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"{kind}() got an unexpected keyword argument {unknown[0]!r}")


def check_hooks(name: str, hooks: object) -> tuple[Callable[..., object], ...]:
    if hooks is None:
        return ()
    if callable(hooks) or not isinstance(hooks, Iterable):
        raise TypeError(f"Expected iterable for {name!r}; got {type(hooks).__name__} instead.")
    checked = tuple(hooks)
    for hook in checked:
        if not callable(hook):
            raise TypeError(f"Expected callables in {name!r}; got {type(hook).__name__} instead.")
    return checked


def positive_timeout(value: object) -> float | None:
    if value is None:
        return None
    seconds = float(value)  # type: ignore[arg-type]
    if seconds <= 0:
        raise ValueError(f"timeout_seconds must be a positive number of seconds, got {value!r}")
    return seconds


def exponential_backoff(backoff_factor: float) -> Callable[[int], list[float]]:
    """``retry_delay_seconds`` of ``factor * 2**n`` for the n-th retry (Prefect's helper)."""

    def delays(retries: int) -> list[float]:
        return [backoff_factor * 2**n for n in range(min(retries, _MAX_RETRY_DELAYS))]

    return delays


class Task(Generic[P, R]):
    """A function whose calls become tracked task runs."""

    def __init__(self, fn: Callable[P, R], **options: Unpack[TaskOptions]) -> None:
        check_options("task", dict(options), _OPTION_NAMES)
        if not callable(fn):
            raise TypeError("'fn' must be callable")
        self.fn = fn
        self._options = options
        self.isasync = inspect.iscoroutinefunction(fn)
        self.name: str = str(options.get("name") or getattr(fn, "__name__", type(fn).__name__))
        self.description = options.get("description") or inspect.getdoc(fn)
        self.version = options.get("version")
        self.tags: frozenset[str] = frozenset(options.get("tags") or ())
        self.task_run_name = options.get("task_run_name")
        self.retries = int(options.get("retries") or 0)
        if self.retries < 0:
            raise ValueError("retries must be zero or more")
        self.retry_delay_seconds = _retry_delays(options.get("retry_delay_seconds"), self.retries)
        jitter = options.get("retry_jitter_factor")
        if jitter is not None and jitter < 0:
            raise ValueError("`retry_jitter_factor` must be >= 0.")
        self.retry_jitter_factor = jitter
        self.retry_condition_fn = options.get("retry_condition_fn")
        self.timeout_seconds = positive_timeout(options.get("timeout_seconds"))
        self.log_prints = options.get("log_prints")
        self.refresh_cache = options.get("refresh_cache")
        self.cache_expiration = options.get("cache_expiration")
        self.result_storage_key = options.get("result_storage_key")
        self.cache_result_in_memory = options.get("cache_result_in_memory", True)
        self.result_store = _result_store(
            options.get("result_storage"), options.get("result_serializer")
        )
        self.on_completion_hooks = check_hooks("on_completion", options.get("on_completion"))
        self.on_failure_hooks = check_hooks("on_failure", options.get("on_failure"))
        self.persist_result, self.cache_policy = _caching(options)
        self.call_signature = CallSignature(fn)
        module = getattr(fn, "__module__", "") or ""
        qualname = getattr(fn, "__qualname__", self.name)
        digest = hashlib.md5(module.encode(), usedforsecurity=False).hexdigest()[:8]
        self.task_key = f"{qualname}-{digest}"
        self._source_hash: str | None = None
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def source_hash(self) -> str:
        """A digest of the task's source, computed once."""
        if self._source_hash is None:
            self._source_hash = source_hash(self.fn)
        return self._source_hash

    def format_run_name(self, parameters: dict[str, object]) -> str:
        """The task run name from ``task_run_name`` (a template or a callable)."""
        template = self.task_run_name
        if callable(template):
            takes_parameters = bool(inspect.signature(template).parameters)
            return str(template(parameters) if takes_parameters else template())
        assert template is not None
        return template.format(**parameters)

    def with_options(self, **options: Unpack[TaskOptions]) -> Task[P, R]:
        """A copy of this task with some options changed."""
        check_options("with_options", dict(options), _OPTION_NAMES)
        merged = TaskOptions(**self._options)
        merged.update(options)
        return Task(self.fn, **merged)

    def __get__(self, instance: object, owner: type | None = None) -> Task[P, R]:
        if instance is None:
            return self
        bound = copy.copy(self)
        bound.fn = self.fn.__get__(instance, owner)  # type: ignore[attr-defined]
        bound.call_signature = CallSignature(bound.fn)
        return bound

    def __repr__(self) -> str:
        return f"Task(name={self.name!r})"

    # -- running ---------------------------------------------------------------

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the task now and return its result (a coroutine for async tasks).

        ``return_state=True`` returns the final state instead; ``wait_for=[...]``
        waits for other futures first.
        """
        return_state = False
        wait_for: Sequence[object] | None = None
        if kwargs:
            names = self.call_signature.name_set
            if "return_state" in kwargs and "return_state" not in names:
                return_state = bool(kwargs.pop("return_state"))
            if "wait_for" in kwargs and "wait_for" not in names:
                wait_for = cast("Sequence[object] | None", kwargs.pop("wait_for"))
        parameters = self.call_signature.bind(args, kwargs)
        if self.isasync:
            return self._call_async(parameters, wait_for, return_state)  # type: ignore[return-value]
        engine = _task_engine.TaskRunEngine(self, parameters, wait_for)  # type: ignore[arg-type]
        return _task_engine.run_task_sync(engine, return_state)  # type: ignore[return-value]

    async def _call_async(
        self, parameters: dict[str, object], wait_for: Sequence[object] | None, return_state: bool
    ) -> object:
        engine = _task_engine.TaskRunEngine(self, parameters, wait_for)  # type: ignore[arg-type]
        return await _task_engine.run_task_async(engine, return_state)

    @overload
    def submit(
        self: Task[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs
    ) -> FlowyardFuture[T]: ...

    @overload
    def submit(self: Task[P, T], *args: P.args, **kwargs: P.kwargs) -> FlowyardFuture[T]: ...

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        """Start a task run on the flow's task runner and return its future.

        Futures among the arguments are waited for and replaced by their
        results before the task runs. ``wait_for=[...]`` adds dependencies
        that pass no data; ``return_state=True`` waits and returns the state.
        """
        return_state = bool(kwargs.pop("return_state", False))
        wait_for = kwargs.pop("wait_for", None)
        parameters = self.call_signature.bind(args, kwargs)
        future = self._submit(parameters, wait_for)
        if return_state:
            future.wait()
            return future.state
        return future

    def _submit(
        self, parameters: dict[str, object], wait_for: Sequence[object] | None
    ) -> FlowyardFuture[object]:
        flow_ctx = flow_run_context.get()
        if flow_ctx is None:
            raise MissingContextError(
                f"Task {self.name!r} was submitted outside a flow run. submit() and map() "
                "use the flow's task runner; call the task directly to run it outside a flow."
            )
        upstream = upstream_futures(parameters, wait_for)
        engine = _task_engine.TaskRunEngine(self, parameters, wait_for, upstream)  # type: ignore[arg-type]
        context = contextvars.copy_context()
        if self.isasync:

            def run() -> State[object]:
                import asyncio

                coroutine = _task_engine.run_task_async(engine, False, in_worker=True)
                return context.run(asyncio.run, coroutine)  # type: ignore[arg-type,return-value]
        else:

            def run() -> State[object]:
                return cast(
                    "State[object]", context.run(_task_engine.run_task_sync, engine, False, True)
                )

        return flow_ctx.task_runner.submit_work(
            engine.task_run, run, self.isasync, upstream, engine.cancel_before_start
        )

    @overload
    def map(
        self: Task[P, Coroutine[Any, Any, T]], *args: Any, **kwargs: Any
    ) -> FlowyardFutureList[T]: ...

    @overload
    def map(self: Task[P, T], *args: Any, **kwargs: Any) -> FlowyardFutureList[T]: ...

    def map(self, *args: Any, **kwargs: Any) -> Any:
        """Submit one task run per element of the iterable arguments.

        Arguments wrapped in ``unmapped(...)`` (and non-iterables) are passed
        whole to every run; strings and bytes count as single values. Futures
        given directly are resolved first, so a task can map over another
        task's result.

        Raises:
            MappingMissingIterable: no argument is iterable.
            MappingLengthMismatch: iterables of different lengths.
        """
        return_state = bool(kwargs.pop("return_state", False))
        wait_for = kwargs.pop("wait_for", None)
        kwargs.pop("deferred", None)
        try:
            explicit = dict(self.call_signature.signature.bind(*args, **kwargs).arguments)
        except TypeError:
            self.call_signature.bind(args, kwargs)  # raises the detailed binding error
            raise
        iterables: dict[str, list[object]] = {}
        static: dict[str, object] = {}
        for name, value in explicit.items():
            if isinstance(value, FlowyardFuture) or _is_state(value):
                value = resolve_value(value)
            if isinstance(value, unmapped):
                static[name] = value.value
            elif isinstance(value, allow_failure | quote) and _is_iterable(value.value):
                wrapper = type(value)
                iterables[name] = [wrapper(item) for item in value.value]  # type: ignore[attr-defined]
            elif not isinstance(value, BaseAnnotation) and _is_iterable(value):
                iterables[name] = list(value)  # type: ignore[call-overload]
            else:
                static[name] = value
        if not iterables:
            raise MappingMissingIterable(
                "No iterable parameters were received. Parameters for map must include at "
                f"least one iterable. Parameter values: {explicit}"
            )
        lengths = {name: len(values) for name, values in iterables.items()}
        if len(set(lengths.values())) > 1:
            raise MappingLengthMismatch(
                "Received iterable parameters with different lengths. Parameters for map "
                f"must all be the same length. Got lengths: {lengths}"
            )
        futures: FlowyardFutureList[object] = FlowyardFutureList()
        signature = self.call_signature.signature
        for index in range(next(iter(lengths.values()))):
            call = {**static, **{name: values[index] for name, values in iterables.items()}}
            bound = inspect.BoundArguments(
                signature, {n: call[n] for n in signature.parameters if n in call}
            )  # type: ignore[arg-type]
            bound.apply_defaults()
            futures.append(self._submit(dict(bound.arguments), wait_for))
        if return_state:
            futures.wait()
            return [future.state for future in futures]
        return futures


def _is_state(value: object) -> bool:
    from flowyard.sdk._states import State

    return isinstance(value, State)


def _is_iterable(value: object) -> bool:
    if isinstance(value, str | bytes | bytearray) or hasattr(value, "read"):
        return False
    try:
        iter(value)  # type: ignore[call-overload]
    except TypeError:
        return False
    return True


def _retry_delays(value: RetryDelays | None, retries: int) -> float | list[float]:
    if value is None:
        return 0.0
    if callable(value):
        value = value(retries)
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("retry_delay_seconds must not be negative")
        return float(value)
    delays = [float(v) for v in value]
    if len(delays) > _MAX_RETRY_DELAYS:
        raise ValueError(f"Can not configure more than {_MAX_RETRY_DELAYS} retry delays per task.")
    if any(d < 0 for d in delays):
        raise ValueError("retry_delay_seconds must not be negative")
    return delays


def _result_store(storage: object, serializer: Serializer | None) -> ResultStore | None:
    if serializer is not None and serializer not in ("pickle", "json"):
        raise ValueError(f"result_serializer must be 'pickle' or 'json', got {serializer!r}")
    if storage is None:
        return LocalResultStore(serializer=serializer) if serializer else None
    if isinstance(storage, str | Path):
        return LocalResultStore(storage, serializer=serializer or "pickle")
    if isinstance(storage, ResultStore):
        return storage
    raise TypeError(
        f"result_storage must be a ResultStore or a directory path, got {type(storage).__name__}"
    )


def _caching(options: TaskOptions) -> tuple[bool | None, CachePolicy | None]:
    persist = options.get("persist_result")
    policy = options.get("cache_policy", DEFAULT)
    key_fn = options.get("cache_key_fn")
    explicit_policy = "cache_policy" in options and policy is not None and policy is not NONE
    if persist is None and (
        explicit_policy
        or key_fn is not None
        or options.get("result_storage_key") is not None
        or options.get("result_storage") is not None
        or options.get("result_serializer") is not None
    ):
        persist = True
    if persist is False:
        return False, None
    if key_fn is not None:
        return persist, CacheKeyFnPolicy(key_fn)
    if "cache_policy" not in options and options.get("result_storage_key") is not None:
        return persist, None
    return persist, policy


@overload
def task(__fn: Callable[P, R]) -> Task[P, R]: ...


@overload
def task(
    __fn: None = None, **options: Unpack[TaskOptions]
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(
    __fn: Callable[P, R] | None = None, **options: Unpack[TaskOptions]
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Make a function a task: ``@task`` or ``@task(retries=3, ...)``."""
    if __fn is not None:
        return Task(__fn, **options)
    check_options("task", dict(options), _OPTION_NAMES)

    def decorator(fn: Callable[P, R]) -> Task[P, R]:
        return Task(fn, **options)

    return decorator
