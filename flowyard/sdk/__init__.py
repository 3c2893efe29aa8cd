"""The in-process SDK: flows, tasks, futures, states, run context and the server seams.

Public names are listed here; the modules behind them are private. The
Prefect-style import paths (``flowyard.states``, ``flowyard.futures``,
``flowyard.logging``...) re-export from here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from flowyard.sdk._annotations import allow_failure, quote, unmapped
from flowyard.sdk._backends import SERVER_INTEGRATION_MODULE, configured_api_url
from flowyard.sdk._cache_policies import CachePolicy, task_input_hash
from flowyard.sdk._context import (
    FlowRunContext,
    TaskRunContext,
    get_run_context,
    tags,
)
from flowyard.sdk._errors import (
    CancelledRun,
    CancelRun,
    CrashedRun,
    EntrypointError,
    FailedRun,
    FlowRunTimeoutError,
    FlowScriptError,
    MappingLengthMismatch,
    MappingMissingIterable,
    MissingContextError,
    MissingResult,
    NoServerConfigured,
    ObjectNotFound,
    ParameterTypeError,
    PausedRun,
    SDKError,
    SignatureMismatchError,
    TaskRunTimeoutError,
    UnfinishedRun,
    UpstreamTaskError,
)
from flowyard.sdk._flow_engine import run_flow
from flowyard.sdk._flows import Flow, FlowOptions, flow
from flowyard.sdk._futures import (
    DoneAndNotDoneFutures,
    FlowyardConcurrentFuture,
    FlowyardFuture,
    FlowyardFutureList,
    as_completed,
    resolve_futures_to_states,
    wait,
)
from flowyard.sdk._logging import disable_run_logger, get_logger, get_run_logger
from flowyard.sdk._reporting import (
    Event,
    FlowRunFinished,
    FlowRunStarted,
    LogEmitted,
    RecordingReporter,
    Reporter,
    StateChanged,
    StateSnapshot,
    TaskRunCreated,
    current_reporter,
    set_reporter,
    use_reporter,
)
from flowyard.sdk._results import (
    InMemoryResultStore,
    LocalResultStore,
    ResultRecord,
    ResultStore,
    get_result_store,
    set_result_store,
)
from flowyard.sdk._runs import FlowRun, TaskRun
from flowyard.sdk._states import (
    AwaitingRetry,
    Cancelled,
    Cancelling,
    Completed,
    Crashed,
    Failed,
    Late,
    Paused,
    Pending,
    Retrying,
    Running,
    Scheduled,
    State,
    StateDetails,
    StateType,
    TimedOut,
)
from flowyard.sdk._task_runners import ConcurrentTaskRunner, TaskRunner, ThreadPoolTaskRunner
from flowyard.sdk._tasks import Task, TaskOptions, exponential_backoff, task

PrefectFuture = FlowyardFuture

# Deployment, source, variable, secret and schema support load on first use:
# a flow run needs none of it, and ``import flowyard`` should stay light.
_LAZY = {
    "DeploymentBackend": "flowyard.sdk._deployments",
    "DeploymentRef": "flowyard.sdk._deployments",
    "DeploymentSpec": "flowyard.sdk._deployments",
    "Entrypoint": "flowyard.sdk._entrypoints",
    "GitRepository": "flowyard.sdk._sources",
    "RemoteStorage": "flowyard.sdk._sources",
    "InMemorySecrets": "flowyard.sdk._secrets",
    "InMemoryVariables": "flowyard.sdk._variables",
    "ArtifactBackend": "flowyard.sdk._artifacts",
    "ArtifactDraft": "flowyard.sdk._artifacts",
    "InMemoryArtifacts": "flowyard.sdk._artifacts",
    "set_artifact_backend": "flowyard.sdk._artifacts",
    "ConcurrencyBackend": "flowyard.sdk._concurrency",
    "set_concurrency_backend": "flowyard.sdk._concurrency",
    "RecordingDeploymentBackend": "flowyard.sdk._deployments",
    "RunDeploymentRequest": "flowyard.sdk._deployments",
    "ScheduleSpec": "flowyard.sdk._deployments",
    "Secret": "flowyard.sdk._secrets",
    "SecretBackend": "flowyard.sdk._secrets",
    "ServedDeployment": "flowyard.sdk._deployments",
    "SourceSpec": "flowyard.sdk._sources",
    "SourcedFlow": "flowyard.sdk._sources",
    "Variable": "flowyard.sdk._variables",
    "VariableBackend": "flowyard.sdk._variables",
    "default_serve_limit": "flowyard.sdk._deployments",
    "deploy": "flowyard.sdk._deployments",
    "load_flow_from_entrypoint": "flowyard.sdk._entrypoints",
    "parameter_schema": "flowyard.sdk._schema",
    "parse_entrypoint": "flowyard.sdk._entrypoints",
    "run_deployment": "flowyard.sdk._deployments",
    "serve": "flowyard.sdk._deployments",
    "set_deployment_backend": "flowyard.sdk._deployments",
    "set_secret_backend": "flowyard.sdk._secrets",
    "set_variable_backend": "flowyard.sdk._variables",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flowyard.sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from flowyard.sdk._artifacts import (
        ArtifactBackend,
        ArtifactDraft,
        InMemoryArtifacts,
        set_artifact_backend,
    )
    from flowyard.sdk._concurrency import ConcurrencyBackend, set_concurrency_backend
    from flowyard.sdk._deployments import (
        DeploymentBackend,
        DeploymentRef,
        DeploymentSpec,
        RecordingDeploymentBackend,
        RunDeploymentRequest,
        ScheduleSpec,
        ServedDeployment,
        default_serve_limit,
        deploy,
        run_deployment,
        serve,
        set_deployment_backend,
    )
    from flowyard.sdk._entrypoints import Entrypoint, load_flow_from_entrypoint, parse_entrypoint
    from flowyard.sdk._schema import parameter_schema
    from flowyard.sdk._secrets import InMemorySecrets, Secret, SecretBackend, set_secret_backend
    from flowyard.sdk._sources import GitRepository, RemoteStorage, SourcedFlow, SourceSpec
    from flowyard.sdk._variables import (
        InMemoryVariables,
        Variable,
        VariableBackend,
        set_variable_backend,
    )

__all__ = [
    "SERVER_INTEGRATION_MODULE",
    "ArtifactBackend",
    "ArtifactDraft",
    "AwaitingRetry",
    "CachePolicy",
    "CancelRun",
    "Cancelled",
    "CancelledRun",
    "Cancelling",
    "Completed",
    "ConcurrencyBackend",
    "ConcurrentTaskRunner",
    "Crashed",
    "CrashedRun",
    "DeploymentBackend",
    "DeploymentRef",
    "DeploymentSpec",
    "DoneAndNotDoneFutures",
    "Entrypoint",
    "EntrypointError",
    "Event",
    "Failed",
    "FailedRun",
    "Flow",
    "FlowOptions",
    "FlowRun",
    "FlowRunContext",
    "FlowRunFinished",
    "FlowRunStarted",
    "FlowRunTimeoutError",
    "FlowScriptError",
    "FlowyardConcurrentFuture",
    "FlowyardFuture",
    "FlowyardFutureList",
    "GitRepository",
    "InMemoryArtifacts",
    "InMemoryResultStore",
    "InMemorySecrets",
    "InMemoryVariables",
    "Late",
    "LocalResultStore",
    "LogEmitted",
    "MappingLengthMismatch",
    "MappingMissingIterable",
    "MissingContextError",
    "MissingResult",
    "NoServerConfigured",
    "ObjectNotFound",
    "ParameterTypeError",
    "Paused",
    "PausedRun",
    "Pending",
    "PrefectFuture",
    "RecordingDeploymentBackend",
    "RecordingReporter",
    "RemoteStorage",
    "Reporter",
    "ResultRecord",
    "ResultStore",
    "Retrying",
    "RunDeploymentRequest",
    "Running",
    "SDKError",
    "ScheduleSpec",
    "Scheduled",
    "Secret",
    "SecretBackend",
    "ServedDeployment",
    "SignatureMismatchError",
    "SourceSpec",
    "SourcedFlow",
    "State",
    "StateChanged",
    "StateDetails",
    "StateSnapshot",
    "StateType",
    "Task",
    "TaskOptions",
    "TaskRun",
    "TaskRunContext",
    "TaskRunCreated",
    "TaskRunTimeoutError",
    "TaskRunner",
    "ThreadPoolTaskRunner",
    "TimedOut",
    "UnfinishedRun",
    "UpstreamTaskError",
    "Variable",
    "VariableBackend",
    "allow_failure",
    "as_completed",
    "configured_api_url",
    "current_reporter",
    "default_serve_limit",
    "deploy",
    "disable_run_logger",
    "exponential_backoff",
    "flow",
    "get_logger",
    "get_result_store",
    "get_run_context",
    "get_run_logger",
    "load_flow_from_entrypoint",
    "parameter_schema",
    "parse_entrypoint",
    "quote",
    "resolve_futures_to_states",
    "run_deployment",
    "run_flow",
    "serve",
    "set_artifact_backend",
    "set_concurrency_backend",
    "set_deployment_backend",
    "set_reporter",
    "set_result_store",
    "set_secret_backend",
    "set_variable_backend",
    "tags",
    "task",
    "task_input_hash",
    "unmapped",
    "use_reporter",
    "wait",
]
