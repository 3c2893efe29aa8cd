"""Sandboxes for managed runs: namespaces, cgroups, a size-limited disk, a deadline.

:class:`LocalSandbox` isolates each run on this host (see ``docs/sandbox.md``);
:class:`FakeSandbox` stands in for it in tests of its callers. Callers build a
:class:`SandboxSpec`, ``await sandbox.start(spec)`` and ``await handle.wait()``
for a :class:`SandboxResult` whose ``crash_reason`` is ready to show a user.
"""

from __future__ import annotations

from flowyard.execution.sandbox._budget import RunsBudget, memory_pressure
from flowyard.execution.sandbox._errors import (
    InvalidSandboxSpec,
    IsolationUnavailable,
    SandboxError,
)
from flowyard.execution.sandbox._fake import FakeSandbox
from flowyard.execution.sandbox._layout import (
    API_SOCKET_PATH,
    EGRESS_PROXY_URL,
    ENVIRONMENT_PATH,
    RUNTIME_PATH,
    SDK_PATH,
    TMP_PATH,
    WORK_PATH,
    Placeholder,
)
from flowyard.execution.sandbox._local import LocalSandbox
from flowyard.execution.sandbox._protocol import Isolation, Sandbox, SandboxHandle
from flowyard.execution.sandbox._result import (
    Ending,
    SandboxResult,
    SandboxStats,
    format_bytes,
    format_duration,
)
from flowyard.execution.sandbox._spec import Bind, GiB, Limits, MiB, NetworkMode, SandboxSpec

__all__ = [
    "API_SOCKET_PATH",
    "EGRESS_PROXY_URL",
    "ENVIRONMENT_PATH",
    "RUNTIME_PATH",
    "SDK_PATH",
    "TMP_PATH",
    "WORK_PATH",
    "Bind",
    "Ending",
    "FakeSandbox",
    "GiB",
    "InvalidSandboxSpec",
    "Isolation",
    "IsolationUnavailable",
    "Limits",
    "LocalSandbox",
    "MiB",
    "NetworkMode",
    "Placeholder",
    "RunsBudget",
    "Sandbox",
    "SandboxError",
    "SandboxHandle",
    "SandboxResult",
    "SandboxSpec",
    "SandboxStats",
    "format_bytes",
    "format_duration",
    "memory_pressure",
]
