"""Importing the client stays cheap: it is loaded by every flow run and CLI command."""

from __future__ import annotations

import json
import subprocess
import sys

import flowyard.client

HEAVY = ("fastapi", "starlette", "sqlalchemy", "uvicorn", "pydantic_settings", "flowyard.server")


def test_importing_the_client_loads_no_server_database_or_web_framework() -> None:
    code = "import json, sys; import flowyard.client; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(out.stdout)
    heavy = [m for m in loaded if m.startswith(HEAVY)]
    assert heavy == []


def test_the_public_names_of_the_client_are_pinned() -> None:
    assert sorted(flowyard.client.__all__) == [
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
    assert all(hasattr(flowyard.client, name) for name in flowyard.client.__all__)
