"""Errors the SDK raises on purpose.

Names follow ``prefect.exceptions`` where a Prefect user would catch them
(``UpstreamTaskError``, ``ParameterTypeError``, ``MissingContextError``...), so
an ``except`` clause carries over after renaming the import. Every one derives
from :class:`flowyard.errors.FlowyardError`; a few also derive from the builtin
a caller would naturally catch (``TypeError`` for a bad call, ``TimeoutError``
for a timeout).
"""

from __future__ import annotations

from flowyard.errors import FlowyardError

__all__ = [
    "CancelRun",
    "CancelledRun",
    "CrashedRun",
    "EntrypointError",
    "FailedRun",
    "FlowRunTimeoutError",
    "FlowScriptError",
    "MappingLengthMismatch",
    "MappingMissingIterable",
    "MissingContextError",
    "MissingResult",
    "NoServerConfigured",
    "ObjectNotFound",
    "ParameterTypeError",
    "PausedRun",
    "SDKError",
    "SignatureMismatchError",
    "TaskRunTimeoutError",
    "UnfinishedRun",
    "UpstreamTaskError",
]


class SDKError(FlowyardError):
    """Base class of the SDK's errors."""


class MissingContextError(SDKError, RuntimeError):
    """Something that needs a running flow or task was used outside of one."""


class UpstreamTaskError(SDKError):
    """A task could not start because a task it depends on did not complete."""


class UnfinishedRun(SDKError):
    """The result of a run that has not reached a final state was requested."""


class MissingResult(SDKError):
    """A final state carries no result (for example it was read back without its data)."""


class FailedRun(SDKError):
    """A run failed and its state holds no exception to re-raise."""


class CrashedRun(SDKError):
    """A run was ended by its infrastructure rather than by its code."""


class CancelledRun(SDKError):
    """A run was cancelled."""


class PausedRun(SDKError):
    """A paused run has no result yet."""


class ParameterTypeError(SDKError):
    """Flow parameters do not match the flow's signature types.

    The message lists each offending parameter and what was expected.
    """


class SignatureMismatchError(SDKError, TypeError):
    """Call arguments do not fit the function's signature."""


class MappingLengthMismatch(SDKError, ValueError):
    """``Task.map`` was given iterables of different lengths."""


class MappingMissingIterable(SDKError, ValueError):
    """``Task.map`` was given no iterable to map over."""


class TaskRunTimeoutError(SDKError, TimeoutError):
    """A task run exceeded its ``timeout_seconds``."""


class FlowRunTimeoutError(SDKError, TimeoutError):
    """A flow run exceeded its ``timeout_seconds``."""


class NoServerConfigured(SDKError):
    """An operation needs a Flowyard server and none is configured."""


class ObjectNotFound(SDKError, LookupError):
    """A named variable, secret or deployment does not exist."""


class EntrypointError(SDKError, ValueError):
    """An entrypoint is malformed or does not name a flow."""


class FlowScriptError(SDKError):
    """A flow file raised while it was being imported."""


class CancelRun(BaseException):
    """Raised into a running flow to cancel it.

    A runner that is told to cancel a flow run raises this in the flow's
    thread; the engine records the run as CANCELLED and runs the
    ``on_cancellation`` hooks. It derives from ``BaseException`` so that user
    code catching ``Exception`` does not swallow the cancellation.
    """
