"""What a managed run loads before its flow starts: every module here is start-up CPU of every run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

# The runner's imports, then the SDK's server integration installed as in a managed run.
SCRIPT = """
import json, sys
import flowyard.client._errors, flowyard.client._wire, flowyard.sdk, flowyard.sdk._entrypoints
from flowyard.client import sdk_integration
sdk_integration.install("unix:///run/flowyard/api/api.sock")
print(json.dumps(sorted(sys.modules)))
"""

NOT_ON_THE_START_UP_PATH = (
    "http.client",  # the wire client speaks HTTP itself
    "email",
    "ssl",  # only for an https API
    "tomllib",  # only with a settings or profiles file to read
    "httpx",
    "pydantic",  # only for parameters that need it
    "flowyard.sdk._deployments",  # deployment, variable and secret support: on first use
    "flowyard.sdk._variables",
    "flowyard.sdk._secrets",
    "flowyard.client._sdk_deployments",
    "flowyard.server",
)


def test_a_managed_runs_start_up_loads_only_what_running_a_flow_needs() -> None:
    env = {
        **os.environ,
        "FLOWYARD_API_URL": "unix:///run/flowyard/api/api.sock",
        "FLOWYARD_API_KEY": "fyr_token",
        "FLOWYARD_RUN_ID": "00000000-0000-0000-0000-000000000001",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))

    unexpected = [name for name in NOT_ON_THE_START_UP_PATH if name in loaded]
    assert unexpected == []
