"""Errors of the environment stage."""

from __future__ import annotations

from flowyard.errors import FlowyardError


class EnvironmentBuildError(FlowyardError):
    """A run's Python environment could not be built; the message carries uv's reason."""


class RequirementError(EnvironmentBuildError):
    """A requirement line is not one Flowyard accepts (options, local paths, bad syntax)."""


class UnknownRuntimeError(EnvironmentBuildError):
    """The runtime asked for is not one of the operator's official runtimes."""
