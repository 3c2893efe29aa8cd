from __future__ import annotations

import importlib

import flowyard
import flowyard.sdk

FLOWYARD_NAMES = [
    "Cancelled",
    "Completed",
    "Crashed",
    "Failed",
    "Flow",
    "FlowyardFuture",
    "GitRepository",
    "Pending",
    "PrefectFuture",
    "RemoteStorage",
    "Running",
    "Scheduled",
    "Secret",
    "State",
    "StateType",
    "Task",
    "Variable",
    "__version__",
    "allow_failure",
    "as_completed",
    "deploy",
    "flow",
    "get_run_logger",
    "run_deployment",
    "runtime",
    "serve",
    "tags",
    "task",
    "unmapped",
    "wait",
]

SDK_NAMES = [
    "AwaitingRetry",
    "CachePolicy",
    "CancelRun",
    "Cancelled",
    "CancelledRun",
    "Cancelling",
    "Completed",
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
    "SERVER_INTEGRATION_MODULE",
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

PREFECT_STYLE_IMPORTS = [
    ("flowyard", ["flow", "task", "get_run_logger", "tags", "unmapped", "allow_failure", "State"]),
    ("flowyard.logging", ["get_run_logger", "get_logger", "disable_run_logger"]),
    ("flowyard.states", ["Completed", "Failed", "Cancelled", "Crashed", "State", "StateType"]),
    ("flowyard.futures", ["wait", "as_completed", "PrefectFuture", "PrefectFutureList"]),
    ("flowyard.cache_policies", ["INPUTS", "TASK_SOURCE", "NONE", "NO_CACHE", "RUN_ID"]),
    ("flowyard.task_runners", ["ThreadPoolTaskRunner", "ConcurrentTaskRunner"]),
    ("flowyard.runtime", ["flow_run", "task_run", "deployment"]),
    ("flowyard.blocks.system", ["Secret"]),
    ("flowyard.variables", ["Variable"]),
    ("flowyard.deployments", ["run_deployment"]),
    ("flowyard.tasks", ["task", "Task", "task_input_hash", "exponential_backoff"]),
    ("flowyard.exceptions", ["PrefectException", "UpstreamTaskError", "MissingContextError"]),
    ("flowyard.exceptions", ["FailedRun", "CrashedRun", "ParameterTypeError", "ScriptError"]),
    ("flowyard.context", ["get_run_context", "FlowRunContext", "TaskRunContext", "tags"]),
    ("flowyard.runner.storage", ["GitRepository", "RemoteStorage"]),
]


def test_the_top_level_public_names_are_pinned() -> None:
    assert sorted(flowyard.__all__) == sorted(FLOWYARD_NAMES)
    for name in flowyard.__all__:
        assert getattr(flowyard, name) is not None


def test_the_sdk_public_names_resolve_and_are_pinned() -> None:
    names = flowyard.sdk.__all__
    assert sorted(names) == SDK_NAMES
    for name in names:
        assert getattr(flowyard.sdk, name) is not None, name


def test_every_prefect_import_path_works_after_renaming() -> None:
    for module_name, names in PREFECT_STYLE_IMPORTS:
        module = importlib.import_module(module_name)
        for name in names:
            assert hasattr(module, name), f"{module_name}.{name}"


def test_the_version_comes_from_the_version_module() -> None:
    from flowyard._version import __version__

    assert flowyard.__version__ == __version__
