"""The typed HTTP client of the Flowyard API; the SDK, CLI, runner and UI tests use it.

::

    from flowyard.client import get_client

    async with get_client(required=True) as client:
        run = await client.create_flow_run(deployment.id, FlowRunCreate(parameters={"n": 3}))

``FlowyardClient`` is async; ``SyncClient`` offers the same methods to
synchronous code. Requests and answers are the models of
:mod:`flowyard.schemas`. Importing this package is cheap: each name loads its module (httpx,
pydantic) on first use, and the server never.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowyard.client._client import FlowyardClient
    from flowyard.client._config import ClientConfig, parse_api_url, resolve_config
    from flowyard.client._connect import get_client, get_sync_client
    from flowyard.client._deployments import split_deployment_name
    from flowyard.client._errors import (
        ApiError,
        AuthError,
        ClientError,
        ConflictError,
        FieldError,
        InvalidArgument,
        NotConfigured,
        NotFoundError,
        ServerUnavailable,
        ValidationError,
    )
    from flowyard.client._flow_runs import FlowRunFilter, FlowRunSort
    from flowyard.client._http import RetryPolicy
    from flowyard.client._logs import LogEvent, LogReceived, StateChanged
    from flowyard.client._profiles import (
        Profile,
        Profiles,
        load_profiles,
        profiles_path,
        save_profiles,
    )
    from flowyard.client._sync import SyncClient

_LAZY = {
    "ApiError": "flowyard.client._errors",
    "AuthError": "flowyard.client._errors",
    "ClientConfig": "flowyard.client._config",
    "ClientError": "flowyard.client._errors",
    "ConflictError": "flowyard.client._errors",
    "FieldError": "flowyard.client._errors",
    "FlowRunFilter": "flowyard.client._flow_runs",
    "FlowRunSort": "flowyard.client._flow_runs",
    "FlowyardClient": "flowyard.client._client",
    "InvalidArgument": "flowyard.client._errors",
    "LogEvent": "flowyard.client._logs",
    "LogReceived": "flowyard.client._logs",
    "NotConfigured": "flowyard.client._errors",
    "NotFoundError": "flowyard.client._errors",
    "Profile": "flowyard.client._profiles",
    "Profiles": "flowyard.client._profiles",
    "RetryPolicy": "flowyard.client._http",
    "ServerUnavailable": "flowyard.client._errors",
    "StateChanged": "flowyard.client._logs",
    "SyncClient": "flowyard.client._sync",
    "ValidationError": "flowyard.client._errors",
    "get_client": "flowyard.client._connect",
    "get_sync_client": "flowyard.client._connect",
    "load_profiles": "flowyard.client._profiles",
    "parse_api_url": "flowyard.client._config",
    "profiles_path": "flowyard.client._profiles",
    "resolve_config": "flowyard.client._config",
    "save_profiles": "flowyard.client._profiles",
    "split_deployment_name": "flowyard.client._deployments",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flowyard.client' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ApiError",
    "AuthError",
    "ClientConfig",
    "ClientError",
    "ConflictError",
    "FieldError",
    "FlowRunFilter",
    "FlowRunSort",
    "FlowyardClient",
    "InvalidArgument",
    "LogEvent",
    "LogReceived",
    "NotConfigured",
    "NotFoundError",
    "Profile",
    "Profiles",
    "RetryPolicy",
    "ServerUnavailable",
    "StateChanged",
    "SyncClient",
    "ValidationError",
    "get_client",
    "get_sync_client",
    "load_profiles",
    "parse_api_url",
    "profiles_path",
    "resolve_config",
    "save_profiles",
    "split_deployment_name",
]
