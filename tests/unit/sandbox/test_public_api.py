"""The sandbox package's public names, and that both sandboxes fit the protocol."""

from __future__ import annotations

from pathlib import Path

import flowyard.execution.sandbox as sandbox_package
from flowyard.execution.sandbox import FakeSandbox, Sandbox

PUBLIC = {
    "API_SOCKET_PATH", "EGRESS_PROXY_URL", "ENVIRONMENT_PATH", "RUNTIME_PATH", "SDK_PATH", "TMP_PATH",
    "WORK_PATH", "Bind", "Ending", "FakeSandbox", "GiB", "InvalidSandboxSpec", "Isolation",
    "IsolationUnavailable", "Limits", "LocalSandbox", "MiB", "NetworkMode", "Placeholder", "RunsBudget",
    "Sandbox",
    "SandboxError", "SandboxHandle", "SandboxResult", "SandboxSpec", "SandboxStats", "format_bytes",
    "format_duration", "memory_pressure",
}  # fmt: skip


def test_the_public_names_are_pinned() -> None:
    assert set(sandbox_package.__all__) == PUBLIC
    assert all(hasattr(sandbox_package, name) for name in PUBLIC)


def test_the_fake_is_a_sandbox(tmp_path: Path) -> None:
    sandbox: Sandbox = FakeSandbox(tmp_path)  # checked by mypy as much as here
    assert sandbox.isolation == "none"
