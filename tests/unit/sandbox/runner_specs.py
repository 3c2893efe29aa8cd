"""A managed runner's spec, as the keys of standbys and zygotes see it."""

from __future__ import annotations

from pathlib import Path

from flowyard.execution.sandbox import SandboxSpec

RUNNER_ENV = {"FLOWYARD_RUN_ID": "1", "FLOWYARD_API_KEY": "secret", "PYTHONUNBUFFERED": "1"}
RUNNER = {
    "run_id": "r1",
    "argv": ["{python}", "-m", "flowyard.execution.runner"],
    "runtime_dir": Path("/opt/python"),
    "environment_dir": Path("/cache/envs/abc"),
    "env": RUNNER_ENV,
    "workdir_source": Path("/scratch/code"),
    "standby": True,
}


def runner_spec(**changes: object) -> SandboxSpec:
    """The runner's spec with ``changes``."""
    return SandboxSpec(**{**RUNNER, **changes})  # type: ignore[arg-type]
