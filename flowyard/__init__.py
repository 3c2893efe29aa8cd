"""Flowyard: self-hosted workflow orchestration for Python.

The names a flow file imports (``from flowyard import flow, task``) are the
SDK's; everything else lives in subpackages. Importing ``flowyard`` loads the
SDK only: no server, database or web framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowyard import runtime
from flowyard._version import __version__
from flowyard.sdk import (
    Cancelled,
    Completed,
    Crashed,
    Failed,
    Flow,
    FlowyardFuture,
    Pending,
    PrefectFuture,
    Running,
    Scheduled,
    State,
    StateType,
    Task,
    allow_failure,
    as_completed,
    flow,
    get_run_logger,
    tags,
    task,
    unmapped,
    wait,
)

_LAZY = frozenset(
    {"GitRepository", "RemoteStorage", "Secret", "Variable", "deploy", "run_deployment", "serve"}
)


def __getattr__(name: str) -> object:
    # Deployment, variable and secret support loads on first use (see flowyard.sdk).
    if name in _LAZY:
        import flowyard.sdk

        return getattr(flowyard.sdk, name)
    raise AttributeError(f"module 'flowyard' has no attribute {name!r}")


if TYPE_CHECKING:
    from flowyard.sdk import (
        GitRepository,
        RemoteStorage,
        Secret,
        Variable,
        deploy,
        run_deployment,
        serve,
    )

__all__ = [
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
