"""Python environments for runs: content-addressed, built once with uv, shared.

See ``docs/sources-and-environments.md``.
"""

from __future__ import annotations

from flowyard.execution.environments._builder import EnvironmentBuilder, ReadyEnvironment
from flowyard.execution.environments._errors import (
    EnvironmentBuildError,
    RequirementError,
    UnknownRuntimeError,
)
from flowyard.execution.environments._eviction import EvictionReport
from flowyard.execution.environments._metadata import EnvironmentRecord
from flowyard.execution.environments._requirements import (
    DEFAULT_SDK_REQUIREMENTS,
    IndexSettings,
    environment_key,
    normalize_requirement,
    normalize_requirements,
    parse_requirements_text,
    read_requirements_file,
)
from flowyard.execution.environments._runtimes import Runtime, RuntimeRegistry, probe_runtime
from flowyard.execution.environments._sdk import default_sdk_path

__all__ = [
    "DEFAULT_SDK_REQUIREMENTS",
    "EnvironmentBuildError",
    "EnvironmentBuilder",
    "EnvironmentRecord",
    "EvictionReport",
    "IndexSettings",
    "ReadyEnvironment",
    "RequirementError",
    "Runtime",
    "RuntimeRegistry",
    "UnknownRuntimeError",
    "default_sdk_path",
    "environment_key",
    "normalize_requirement",
    "normalize_requirements",
    "parse_requirements_text",
    "probe_runtime",
    "read_requirements_file",
]
