"""Deployments from the SDK: building and checking specs, and the server seam.

``flow.to_deployment`` / ``.deploy`` / ``.serve`` and ``run_deployment``
check everything that can be checked without a server (names, schedules,
parameters against the flow's signature and types) and then hand a frozen
spec to a :class:`DeploymentBackend`, installed by the server integration.
With no server configured they raise ``NoServerConfigured``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from uuid import UUID

from flowyard.sdk._backends import (
    ensure_server_integration,
    in_async_context,
    install_deferred,
    missing_backend,
)
from flowyard.sdk._context import flow_run_context
from flowyard.sdk._ids import new_id, short_key
from flowyard.sdk._runs import FlowRun, TaskRun
from flowyard.sdk._sources import SourcedFlow, SourceSpec
from flowyard.sdk._states import Pending, Scheduled, State
from flowyard.sdk._task_engine import set_task_run_state

if TYPE_CHECKING:
    from flowyard.sdk._flows import Flow

__all__ = [
    "DeploymentBackend",
    "DeploymentRef",
    "DeploymentSpec",
    "RecordingDeploymentBackend",
    "RunDeploymentRequest",
    "ScheduleSpec",
    "ServedDeployment",
    "default_serve_limit",
    "deploy",
    "run_deployment",
    "serve",
    "set_deployment_backend",
]


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """One schedule: exactly one of ``cron``, ``interval`` (seconds) or ``rrule``."""

    cron: str | None = None
    interval: float | None = None
    rrule: str | None = None
    timezone: str | None = None
    active: bool = True

    def __post_init__(self) -> None:
        given = [k for k in ("cron", "interval", "rrule") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a schedule needs exactly one of cron, interval or rrule")
        if self.interval is not None and self.interval <= 0:
            raise ValueError(f"schedule interval must be positive, got {self.interval!r} seconds")
        if self.cron is not None:
            _check_cron(self.cron)
        if self.rrule is not None:
            _check_rrule(self.rrule)


def _check_cron(expression: str) -> None:
    from croniter import croniter

    if not croniter.is_valid(expression):
        raise ValueError(f"schedule cron {expression!r} is not a valid cron expression")


def _check_rrule(expression: str) -> None:
    from dateutil.rrule import rrulestr

    try:
        rrulestr(expression)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"schedule rrule {expression!r} is not valid: {exc}") from None


@dataclass(frozen=True)
class DeploymentSpec:
    """Everything the server needs to create or update a deployment."""

    name: str
    flow_name: str
    entrypoint: str | None
    source: SourceSpec | None
    work_pool_name: str | None = None
    work_queue_name: str | None = None
    job_variables: Mapping[str, object] = field(default_factory=dict)
    parameters: Mapping[str, object] = field(default_factory=dict)
    parameter_schema: Mapping[str, object] | None = None
    schedules: tuple[ScheduleSpec, ...] = ()
    paused: bool = False
    concurrency_limit: int | None = None
    tags: tuple[str, ...] = ()
    description: str | None = None
    version: str | None = None
    enforce_parameter_schema: bool = True
    # The flow object, when it is loaded in this process (what serve() runs); not sent.
    flow: Flow[..., object] | None = field(default=None, compare=False, repr=False)

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"


@dataclass(frozen=True, slots=True)
class DeploymentRef:
    """What the server answers when a deployment is applied."""

    id: UUID
    flow_name: str
    name: str
    created: bool


@dataclass(frozen=True, slots=True)
class RunDeploymentRequest:
    """A request to run a deployment (``run_deployment``'s arguments, checked)."""

    name: str | UUID
    parameters: Mapping[str, object]
    scheduled_time: datetime | None
    flow_run_name: str | None
    timeout: float | None
    poll_interval: float
    tags: tuple[str, ...]
    idempotency_key: str | None
    work_queue_name: str | None
    job_variables: Mapping[str, object] | None
    parent_task_run_id: UUID | None


@dataclass(frozen=True, slots=True)
class ServedDeployment:
    """A deployment served by this process, with the flow that runs it."""

    spec: DeploymentSpec
    flow: Flow[..., object]


@runtime_checkable
class DeploymentBackend(Protocol):
    """The server side of deployments."""

    def apply(self, spec: DeploymentSpec) -> DeploymentRef:
        """Create or update the deployment."""
        ...

    def run(self, request: RunDeploymentRequest) -> FlowRun:
        """Create a flow run of a deployment; wait for it up to ``request.timeout``."""
        ...

    def serve(self, deployments: Sequence[ServedDeployment], limit: int) -> None:
        """Register the deployments and run their flow runs here until interrupted."""
        ...


class RecordingDeploymentBackend:
    """A deployment backend that records what it is asked to do, for tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.applied: list[DeploymentSpec] = []
        self.runs: list[RunDeploymentRequest] = []
        self.served: list[tuple[tuple[ServedDeployment, ...], int]] = []
        self._ids: dict[str, UUID] = {}

    def apply(self, spec: DeploymentSpec) -> DeploymentRef:
        with self._lock:
            self.applied.append(spec)
            created = spec.full_name not in self._ids
            deployment_id = self._ids.setdefault(spec.full_name, new_id())
        return DeploymentRef(deployment_id, spec.flow_name, spec.name, created)

    def run(self, request: RunDeploymentRequest) -> FlowRun:
        with self._lock:
            self.runs.append(request)
        flow_name, _, deployment_name = str(request.name).partition("/")
        return FlowRun(
            id=new_id(),
            name=request.flow_run_name or "recorded-run",
            flow_name=flow_name,
            parameters=dict(request.parameters),
            state=Scheduled(scheduled_time=request.scheduled_time),
            tags=frozenset(request.tags),
            parent_task_run_id=request.parent_task_run_id,
            deployment_name=deployment_name or None,
        )

    def serve(self, deployments: Sequence[ServedDeployment], limit: int) -> None:
        with self._lock:
            self.served.append((tuple(deployments), limit))


_backend: DeploymentBackend | None = None


def set_deployment_backend(backend: DeploymentBackend | None) -> DeploymentBackend | None:
    """Install the deployment backend (None: none). Returns the previous one."""
    global _backend
    previous, _backend = _backend, backend
    return previous


def _require_backend(action: str) -> DeploymentBackend:
    ensure_server_integration()
    if _backend is None:
        install_deferred()
    if _backend is None:
        raise missing_backend(action)
    return _backend


def default_serve_limit() -> int:
    """The default cap on concurrent runs of ``serve``: four per CPU, at least four."""
    return max(4, 4 * (os.cpu_count() or 1))


def _schedules(
    interval: float | timedelta | Iterable[float | timedelta] | None,
    cron: str | Iterable[str] | None,
    rrule: str | Iterable[str] | None,
    schedules: Sequence[ScheduleSpec] | None,
) -> tuple[ScheduleSpec, ...]:
    found: list[ScheduleSpec] = list(schedules or ())
    if interval is not None:
        values = [interval] if isinstance(interval, int | float | timedelta) else list(interval)
        for value in values:
            seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
            found.append(ScheduleSpec(interval=seconds))
    for expression in [cron] if isinstance(cron, str) else list(cron or ()):
        found.append(ScheduleSpec(cron=expression))
    for expression in [rrule] if isinstance(rrule, str) else list(rrule or ()):
        found.append(ScheduleSpec(rrule=expression))
    return tuple(found)


def build_spec(
    flow: Flow[..., Any] | SourcedFlow,
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
    """Check a deployment's settings against the flow and freeze them into a spec."""
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise ValueError(f"deployment name {name!r} must be a non-empty string without '/'")
    if concurrency_limit is not None and concurrency_limit < 1:
        raise ValueError("concurrency_limit must be at least 1")
    values = dict(parameters or {})
    schema: Mapping[str, object] | None = None
    if isinstance(flow, SourcedFlow):
        source: SourceSpec | None = flow.source
        entrypoint: str | None = flow.entrypoint
        flow_name = flow.name
    else:
        source = flow.source if isinstance(flow.source, SourceSpec) else None
        entrypoint = flow.entrypoint
        flow_name = flow.name
        _check_parameters(flow, values)
        schema = flow.parameters
    return DeploymentSpec(
        name=name.strip(),
        flow_name=flow_name,
        entrypoint=entrypoint,
        source=source,
        work_pool_name=work_pool_name,
        work_queue_name=work_queue_name,
        job_variables=dict(job_variables or {}),
        parameters=values,
        parameter_schema=schema,
        schedules=_schedules(interval, cron, rrule, schedules),
        paused=bool(paused),
        concurrency_limit=concurrency_limit,
        tags=tuple(tags or ()),
        description=description if description is not None else getattr(flow, "description", None),
        version=version if version is not None else getattr(flow, "version", None),
        enforce_parameter_schema=enforce_parameter_schema,
        flow=None if isinstance(flow, SourcedFlow) else flow,
    )


def _check_parameters(flow: Flow[..., object], values: dict[str, object]) -> None:
    signature = flow.call_signature
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.signature.parameters.values())
    unknown = sorted(set(values) - signature.name_set)
    if unknown and not accepts_any:
        raise ValueError(
            f"parameter {unknown[0]!r} is not a parameter of flow {flow.name!r} "
            f"(it takes: {', '.join(signature.names) or 'no parameters'})"
        )
    if values and flow.should_validate_parameters:
        signature.validate(values, f"Deployment of flow {flow.name!r}")


def apply_spec(spec: DeploymentSpec, print_next_steps: bool = True) -> UUID:
    """Send a spec to the server; optionally print how to run the deployment."""
    if spec.source is None:
        raise ValueError(
            f"flow {spec.flow_name!r} has no source the server can fetch: use "
            "Flow.from_source(<git URL, storage URL or directory>, entrypoint='file.py:flow') "
            "before .deploy(...), or run it locally with .serve(...)"
        )
    ref = _require_backend(f"deploy {spec.full_name!r}").apply(spec)
    if print_next_steps:
        verb = "created" if ref.created else "updated"
        print(
            f"Successfully {verb} deployment '{ref.flow_name}/{ref.name}'.\n\n"
            "To schedule a run for this deployment, use the following command:\n\n"
            f"\t$ flowyard deployment run '{ref.flow_name}/{ref.name}'\n"
        )
    return ref.id


def deploy(
    *specs: DeploymentSpec, work_pool_name: str | None = None, print_next_steps: bool = True
) -> list[UUID]:
    """Apply several deployments (optionally all to one work pool)."""
    ids = []
    for spec in specs:
        if work_pool_name is not None and spec.work_pool_name is None:
            spec = _replace(spec, work_pool_name=work_pool_name)
        ids.append(apply_spec(spec, print_next_steps=print_next_steps))
    return ids


def _replace(spec: DeploymentSpec, **changes: object) -> DeploymentSpec:
    from dataclasses import replace

    return replace(spec, **changes)  # type: ignore[arg-type]


def serve(*specs: DeploymentSpec, limit: int | None = None) -> None:
    """Serve deployments of flows loaded in this process until interrupted."""
    if limit is not None and limit < 1:
        raise ValueError("limit must be at least 1")
    served: list[ServedDeployment] = []
    for spec in specs:
        if spec.flow is None:
            raise ValueError(
                f"deployment {spec.full_name!r} was not built from a flow loaded in this "
                "process; serve() runs flows here, so build it with flow.to_deployment(...)"
            )
        served.append(ServedDeployment(spec, spec.flow))
    _require_backend("serve flows").serve(served, limit or default_serve_limit())


def run_deployment(
    name: str | UUID,
    parameters: Mapping[str, object] | None = None,
    scheduled_time: datetime | None = None,
    flow_run_name: str | None = None,
    timeout: float | None = None,
    poll_interval: float = 5,
    tags: Iterable[str] | None = None,
    idempotency_key: str | None = None,
    work_queue_name: str | None = None,
    as_subflow: bool = True,
    job_variables: Mapping[str, object] | None = None,
) -> FlowRun | Coroutine[object, object, FlowRun]:
    """Create a flow run of deployment ``"flow-name/deployment-name"`` (or its id).

    Waits up to ``timeout`` seconds for the run to finish (``None``: until it
    finishes; ``0``: not at all) and returns the flow run. Inside a flow run,
    the new run is linked to it as a subflow (``as_subflow=False`` to opt
    out). Returns a coroutine when called inside an event loop.
    """
    request, stand_in = _run_request(
        name, parameters, scheduled_time, flow_run_name, timeout, poll_interval, tags,
        idempotency_key, work_queue_name, as_subflow, job_variables,
    )  # fmt: skip
    backend = _require_backend(f"run deployment {str(name)!r}")
    if in_async_context():
        return _run_async(backend, request, stand_in)
    return _finish_run(backend.run(request), stand_in)


async def _run_async(
    backend: DeploymentBackend,
    request: RunDeploymentRequest,
    stand_in: tuple[TaskRun, object] | None,
) -> FlowRun:
    import asyncio

    return _finish_run(await asyncio.to_thread(backend.run, request), stand_in)


def _run_request(
    name: str | UUID,
    parameters: Mapping[str, object] | None,
    scheduled_time: datetime | None,
    flow_run_name: str | None,
    timeout: float | None,
    poll_interval: float,
    tags: Iterable[str] | None,
    idempotency_key: str | None,
    work_queue_name: str | None,
    as_subflow: bool,
    job_variables: Mapping[str, object] | None,
) -> tuple[RunDeploymentRequest, tuple[TaskRun, object] | None]:
    if isinstance(name, str):
        name = _deployment_name(name)
    if timeout is not None and timeout < 0:
        raise ValueError("timeout must not be negative")
    if poll_interval <= 0:
        raise ValueError("poll_interval must be positive")
    stand_in = None
    parent_task_run_id = None
    parent = flow_run_context.get()
    if as_subflow and parent is not None:
        run_id = new_id()
        label = str(name).rpartition("/")[2]
        run = TaskRun(
            id=run_id,
            name=f"{label}-{short_key(run_id)}",
            task_name=label,
            task_key=f"run_deployment-{label}",
            dynamic_key=short_key(run_id),
            flow_run_id=parent.flow_run.id,
            tags=frozenset(tags or ()),
            state=Pending(),
        )
        set_task_run_state(parent.reporter, run, run.state)
        stand_in = (run, parent.reporter)
        parent_task_run_id = run_id
    request = RunDeploymentRequest(
        name=name,
        parameters=dict(parameters or {}),
        scheduled_time=scheduled_time,
        flow_run_name=flow_run_name,
        timeout=timeout,
        poll_interval=poll_interval,
        tags=tuple(tags or ()),
        idempotency_key=idempotency_key,
        work_queue_name=work_queue_name,
        job_variables=dict(job_variables) if job_variables is not None else None,
        parent_task_run_id=parent_task_run_id,
    )
    return request, stand_in


def _deployment_name(name: str) -> str | UUID:
    try:
        return UUID(name)
    except ValueError:
        flow_name, sep, deployment_name = name.partition("/")
        if not sep or not flow_name or not deployment_name or "/" in deployment_name:
            raise ValueError(
                f"deployment name {name!r} must be 'flow-name/deployment-name' or an id"
            ) from None
        return name


def _finish_run(flow_run: FlowRun, stand_in: tuple[TaskRun, object] | None) -> FlowRun:
    if stand_in is not None:
        run, reporter = stand_in
        state = flow_run.state
        mirror: State[object] = State(state.type, name=state.name, message=state.message)
        set_task_run_state(reporter, run, mirror)  # type: ignore[arg-type]
    return flow_run
