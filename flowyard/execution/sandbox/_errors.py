"""Errors of the sandbox package."""

from __future__ import annotations

from collections.abc import Iterable

from flowyard.errors import FlowyardError


class SandboxError(FlowyardError):
    """A sandbox could not be prepared, started or torn down."""


class InvalidSandboxSpec(SandboxError):
    """A :class:`SandboxSpec` field has a value the sandbox cannot use."""

    def __init__(self, field: str, expected: str, got: object) -> None:
        super().__init__(f"sandbox spec field {field!r}: expected {expected}, got {got!r}")
        self.field = field


class IsolationUnavailable(SandboxError):
    """Strict isolation was asked for but the host lacks features it needs.

    ``missing`` names each feature, with what to do about it, one per entry.
    """

    def __init__(self, missing: Iterable[str]) -> None:
        self.missing = tuple(missing)
        lines = "\n".join(f"  - {item}" for item in self.missing)
        super().__init__(
            "strict isolation is unavailable on this host; missing:\n"
            f"{lines}\n"
            "Fix the host (see `flowyard doctor`), or set the pool's isolation to "
            "'none' to run flows unconfined."
        )
