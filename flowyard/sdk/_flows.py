"""``@flow`` and ``Flow``: calling flows, parameters, and the deployment entry points.

Options and meanings follow Prefect 3's ``@flow``; the default flow name is
the function name with ``_`` replaced by ``-``, as in Prefect. A flow's
``version`` defaults to a digest of its source file, computed when first read.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
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

from flowyard.sdk import _flow_engine
from flowyard.sdk._parameters import CallSignature
from flowyard.sdk._results import ResultStore, Serializer
from flowyard.sdk._task_runners import TaskRunner, ThreadPoolTaskRunner
from flowyard.sdk._tasks import _result_store, check_hooks, check_options, positive_timeout

if TYPE_CHECKING:
    from uuid import UUID

    from flowyard.sdk._deployments import DeploymentSpec, ScheduleSpec
    from flowyard.sdk._runs import FlowRun
    from flowyard.sdk._sources import GitRepository, RemoteStorage, SourcedFlow
    from flowyard.sdk._states import State

__all__ = ["Flow", "FlowOptions", "flow"]

P = ParamSpec("P")
R = TypeVar("R")

FlowHook = Callable[["Flow[..., Any]", "FlowRun", "State[Any]"], object]
BANNED_NAME_CHARACTERS = ("/", "%", "&", ">", "<")


class FlowOptions(TypedDict, total=False):
    """The options of ``@flow`` and ``Flow.with_options`` (Prefect 3's names, plus ``tags``)."""

    name: str
    version: str | None
    flow_run_name: str | Callable[..., str] | None
    retries: int | None
    retry_delay_seconds: float | None
    task_runner: TaskRunner | type[TaskRunner] | None
    description: str | None
    timeout_seconds: float | None
    validate_parameters: bool
    persist_result: bool | None
    result_storage: ResultStore | str | Path | None
    result_serializer: Serializer | None
    cache_result_in_memory: bool
    log_prints: bool | None
    on_completion: Sequence[FlowHook] | None
    on_failure: Sequence[FlowHook] | None
    on_cancellation: Sequence[FlowHook] | None
    on_crashed: Sequence[FlowHook] | None
    on_running: Sequence[FlowHook] | None
    tags: Iterable[str] | None


_OPTION_NAMES = frozenset(FlowOptions.__annotations__)


class Flow(Generic[P, R]):
    """A function whose calls become tracked flow runs."""

    def __init__(self, fn: Callable[P, R], **options: Unpack[FlowOptions]) -> None:
        check_options("flow", dict(options), _OPTION_NAMES)
        if not callable(fn):
            raise TypeError("'fn' must be callable")
        self.fn = fn
        self._options = options
        self.isasync = inspect.iscoroutinefunction(fn)
        self.name: str = options.get("name") or getattr(fn, "__name__", "flow").replace("_", "-")
        banned = [c for c in BANNED_NAME_CHARACTERS if c in self.name]
        if banned:
            raise ValueError(
                f"Flow name {self.name!r} contains an invalid character; it must not contain "
                f"any of {list(BANNED_NAME_CHARACTERS)}"
            )
        self._version = options.get("version")
        self.description = options.get("description") or inspect.getdoc(fn)
        self.flow_run_name = options.get("flow_run_name")
        self.retries = int(options.get("retries") or 0)
        if self.retries < 0:
            raise ValueError("retries must be zero or more")
        delay = options.get("retry_delay_seconds")
        self.retry_delay_seconds = float(delay or 0)
        if self.retry_delay_seconds < 0:
            raise ValueError("retry_delay_seconds must not be negative")
        runner = options.get("task_runner")
        if isinstance(runner, type):
            runner = runner()
        self.task_runner: TaskRunner = runner or ThreadPoolTaskRunner()
        self.timeout_seconds = positive_timeout(options.get("timeout_seconds"))
        self.should_validate_parameters = options.get("validate_parameters", True)
        self.persist_result = options.get("persist_result")
        self.result_store = _result_store(
            options.get("result_storage"), options.get("result_serializer")
        )
        self.cache_result_in_memory = options.get("cache_result_in_memory", True)
        self.log_prints = options.get("log_prints")
        self.tags: frozenset[str] = frozenset(options.get("tags") or ())
        self.on_completion_hooks = check_hooks("on_completion", options.get("on_completion"))
        self.on_failure_hooks = check_hooks("on_failure", options.get("on_failure"))
        self.on_cancellation_hooks = check_hooks("on_cancellation", options.get("on_cancellation"))
        self.on_crashed_hooks = check_hooks("on_crashed", options.get("on_crashed"))
        self.on_running_hooks = check_hooks("on_running", options.get("on_running"))
        self.call_signature = CallSignature(fn)
        # Set by Flow.from_source / load_flow_from_entrypoint: where the code came from.
        self.source: object | None = None
        self.entrypoint: str | None = None
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    @property
    def version(self) -> str | None:
        """The given version, else a digest of the flow's source file."""
        if self._version is None:
            try:
                path = inspect.getsourcefile(self.fn)
                if path:
                    self._version = hashlib.md5(
                        Path(path).read_bytes(), usedforsecurity=False
                    ).hexdigest()
            except (OSError, TypeError):
                return None
        return self._version

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the flow's parameters."""
        from flowyard.sdk._schema import parameter_schema

        return parameter_schema(self.fn)

    def validate_parameters(self, parameters: Mapping[str, object]) -> dict[str, object]:
        """Coerce parameters to the signature's type hints.

        Raises:
            ParameterTypeError: naming each parameter that does not fit and what was expected.
        """
        return self.call_signature.validate(parameters, "Flow run")

    def serialize_parameters(self, parameters: Mapping[str, object]) -> dict[str, object]:
        """Parameters as JSON-compatible values (unserializable ones as a placeholder)."""
        from pydantic_core import to_jsonable_python

        serialized: dict[str, object] = {}
        for name, value in parameters.items():
            try:
                serialized[name] = to_jsonable_python(value)
            except Exception:
                serialized[name] = f"<{type(value).__name__}>"
        return serialized

    def format_run_name(self, parameters: Mapping[str, object]) -> str:
        """The flow run name from ``flow_run_name`` (a template or a callable)."""
        template = self.flow_run_name
        if callable(template):
            takes_parameters = bool(inspect.signature(template).parameters)
            return str(template(parameters) if takes_parameters else template())
        assert template is not None
        return template.format(**parameters)

    def with_options(self, **options: Unpack[FlowOptions]) -> Flow[P, R]:
        """A copy of this flow with some options changed."""
        check_options("with_options", dict(options), _OPTION_NAMES)
        merged = FlowOptions(**self._options)
        merged.update(options)
        if "task_runner" not in options:
            merged["task_runner"] = self.task_runner.duplicate()
        clone: Flow[P, R] = Flow(self.fn, **merged)
        clone.source, clone.entrypoint = self.source, self.entrypoint
        return clone

    def __get__(self, instance: object, owner: type | None = None) -> Flow[P, R]:
        if instance is None:
            return self
        bound = copy.copy(self)
        bound.fn = self.fn.__get__(instance, owner)  # type: ignore[attr-defined]
        bound.call_signature = CallSignature(bound.fn)
        return bound

    def __repr__(self) -> str:
        return f"Flow(name={self.name!r})"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the flow and return its result (a coroutine for async flows).

        ``return_state=True`` returns the final state instead of raising on failure.
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
        engine = _flow_engine.FlowRunEngine(self, parameters, wait_for=wait_for)  # type: ignore[arg-type]
        return _flow_engine.run_flow_sync(engine, return_state)  # type: ignore[return-value]

    async def _call_async(
        self, parameters: dict[str, object], wait_for: Sequence[object] | None, return_state: bool
    ) -> object:
        engine = _flow_engine.FlowRunEngine(self, parameters, wait_for=wait_for)  # type: ignore[arg-type]
        return await _flow_engine.run_flow_async(engine, return_state)

    # -- deployments ---------------------------------------------------------------

    @classmethod
    def from_source(
        cls, source: str | Path | GitRepository | RemoteStorage, entrypoint: str
    ) -> Flow[..., Any] | SourcedFlow:
        """A deployable flow whose code lives at ``source``.

        A local directory is loaded at once (the result is a normal, callable
        flow). A git URL, a ``GitRepository``, a ``RemoteStorage`` or a storage URL (``s3://``,
        ``gs://``, ``az://``) gives a ``SourcedFlow``: the server fetches the
        code when it deploys and runs it.
        """
        from flowyard.sdk._sources import flow_from_source

        return flow_from_source(source, entrypoint)

    def to_deployment(
        self,
        name: str,
        *,
        interval: float | Iterable[float] | None = None,
        cron: str | Iterable[str] | None = None,
        rrule: str | Iterable[str] | None = None,
        paused: bool | None = None,
        schedules: Sequence[ScheduleSpec] | None = None,
        concurrency_limit: int | None = None,
        parameters: Mapping[str, object] | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        enforce_parameter_schema: bool = True,
        work_pool_name: str | None = None,
        work_queue_name: str | None = None,
        job_variables: Mapping[str, object] | None = None,
    ) -> DeploymentSpec:
        """A deployment of this flow, validated but not yet sent anywhere."""
        from flowyard.sdk._deployments import build_spec

        return build_spec(
            self,
            name,
            interval=interval,
            cron=cron,
            rrule=rrule,
            paused=paused,
            schedules=schedules,
            concurrency_limit=concurrency_limit,
            parameters=parameters,
            description=description,
            tags=tags,
            version=version,
            enforce_parameter_schema=enforce_parameter_schema,
            work_pool_name=work_pool_name,
            work_queue_name=work_queue_name,
            job_variables=job_variables,
        )

    def deploy(
        self,
        name: str,
        work_pool_name: str | None = None,
        *,
        image: str | None = None,
        job_variables: Mapping[str, object] | None = None,
        work_queue_name: str | None = None,
        interval: float | Iterable[float] | None = None,
        cron: str | Iterable[str] | None = None,
        rrule: str | Iterable[str] | None = None,
        paused: bool | None = None,
        schedules: Sequence[ScheduleSpec] | None = None,
        concurrency_limit: int | None = None,
        parameters: Mapping[str, object] | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        enforce_parameter_schema: bool = True,
        print_next_steps: bool = True,
        build: bool = False,
        push: bool = False,
    ) -> UUID:
        """Create or update a deployment of this flow on the server; returns its id.

        ``image`` names the managed runtime (a job variable); ``build`` and
        ``push`` are accepted for compatibility and ignored (nothing is built).
        """
        from flowyard.sdk._deployments import apply_spec

        del build, push
        variables = dict(job_variables or {})
        if image is not None:
            variables["image"] = image
        spec = self.to_deployment(
            name,
            interval=interval,
            cron=cron,
            rrule=rrule,
            paused=paused,
            schedules=schedules,
            concurrency_limit=concurrency_limit,
            parameters=parameters,
            description=description,
            tags=tags,
            version=version,
            enforce_parameter_schema=enforce_parameter_schema,
            work_pool_name=work_pool_name,
            work_queue_name=work_queue_name,
            job_variables=variables,
        )
        return apply_spec(spec, print_next_steps=print_next_steps)

    def serve(
        self,
        name: str | None = None,
        *,
        interval: float | Iterable[float] | None = None,
        cron: str | Iterable[str] | None = None,
        rrule: str | Iterable[str] | None = None,
        paused: bool | None = None,
        schedules: Sequence[ScheduleSpec] | None = None,
        parameters: Mapping[str, object] | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        enforce_parameter_schema: bool = True,
        limit: int | None = None,
    ) -> None:
        """Serve this flow: a long-lived process that runs its scheduled and triggered runs.

        ``limit`` caps concurrent runs (default: a few per CPU) so that a burst of
        runs cannot exhaust the host.
        """
        from flowyard.sdk._deployments import serve

        spec = self.to_deployment(
            name or self.name,
            interval=interval,
            cron=cron,
            rrule=rrule,
            paused=paused,
            schedules=schedules,
            parameters=parameters,
            description=description,
            tags=tags,
            version=version,
            enforce_parameter_schema=enforce_parameter_schema,
        )
        serve(spec, limit=limit)


class FlowDecorator:
    """``@flow`` / ``@flow(...)``; also ``flow.from_source(...)``, as in Prefect."""

    @overload
    def __call__(self, __fn: Callable[P, R]) -> Flow[P, R]: ...

    @overload
    def __call__(
        self, __fn: None = None, **options: Unpack[FlowOptions]
    ) -> Callable[[Callable[P, R]], Flow[P, R]]: ...

    def __call__(
        self, __fn: Callable[P, R] | None = None, **options: Unpack[FlowOptions]
    ) -> Flow[P, R] | Callable[[Callable[P, R]], Flow[P, R]]:
        """Make a function a flow: ``@flow`` or ``@flow(name=..., retries=..., ...)``."""
        if __fn is not None:
            return Flow(__fn, **options)
        check_options("flow", dict(options), _OPTION_NAMES)

        def decorator(fn: Callable[P, R]) -> Flow[P, R]:
            return Flow(fn, **options)

        return decorator

    from_source = staticmethod(Flow.from_source)

    def __repr__(self) -> str:
        return "flowyard.flow"


flow = FlowDecorator()
