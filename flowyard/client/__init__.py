"""The typed HTTP client of the Flowyard API; the SDK, CLI, runner and UI tests use it.

::

    from flowyard.client import get_client

    async with get_client(required=True) as client:
        run = await client.create_flow_run(deployment.id, FlowRunCreate(parameters={"n": 3}))

``FlowyardClient`` is async; ``SyncClient`` offers the same methods to
synchronous code. Requests and answers are the models of
:mod:`flowyard.schemas`. Importing this package is cheap: httpx and pydantic,
never the server.
"""

from __future__ import annotations

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
