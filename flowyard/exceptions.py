"""The SDK's exceptions (``from flowyard.exceptions import UpstreamTaskError``), where
Prefect keeps them; ``PrefectException`` is Flowyard's root, :class:`FlowyardError`."""

from __future__ import annotations

from flowyard.errors import FlowyardError
from flowyard.sdk import (
    CancelledRun,
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

PrefectException = FlowyardError
ScriptError = FlowScriptError

__all__ = [
    "CancelledRun",
    "CrashedRun",
    "EntrypointError",
    "FailedRun",
    "FlowRunTimeoutError",
    "FlowScriptError",
    "FlowyardError",
    "MappingLengthMismatch",
    "MappingMissingIterable",
    "MissingContextError",
    "MissingResult",
    "NoServerConfigured",
    "ObjectNotFound",
    "ParameterTypeError",
    "PausedRun",
    "PrefectException",
    "SDKError",
    "ScriptError",
    "SignatureMismatchError",
    "TaskRunTimeoutError",
    "UnfinishedRun",
    "UpstreamTaskError",
]
