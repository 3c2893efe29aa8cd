"""A real strict sandbox for the whole session, on a host that can give one.

Without bubblewrap, cgroups, loop devices or root these tests skip with the
reason (and fail when ``CI`` is set).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowyard.execution.host import HostCapabilities, probe_host
from flowyard.execution.sandbox import (
    Limits,
    LocalSandbox,
    MiB,
    Placeholder,
    SandboxResult,
    SandboxSpec,
)
from tests.conftest import missing_feature

RUNTIME = Path(sys.base_prefix)
SMALL = Limits(cpus=2, memory_bytes=256 * MiB, pids=128, storage_bytes=64 * MiB, max_run_seconds=60)


@pytest.fixture(scope="session")
def capabilities() -> HostCapabilities:
    found = probe_host()
    if found.missing():
        missing_feature("strict sandbox unavailable: " + "; ".join(found.missing()))
    return found


@pytest.fixture(scope="session")
def sandbox(
    capabilities: HostCapabilities, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalSandbox]:
    made = LocalSandbox(
        tmp_path_factory.mktemp("sandbox-state"), capabilities=capabilities, images_per_size=1
    )
    made.warm(SMALL.storage_bytes)
    yield made
    made.close()


def python_spec(code: str, *, limits: Limits = SMALL, **fields: Any) -> SandboxSpec:
    """A spec running ``code`` with the test runtime's Python."""
    return SandboxSpec(
        run_id=fields.pop("run_id", f"t-{uuid.uuid4().hex[:12]}"),
        argv=[Placeholder.PYTHON, "-c", code],
        runtime_dir=RUNTIME,
        limits=limits,
        **fields,
    )


async def run_python(
    sandbox: LocalSandbox, code: str, *, limits: Limits = SMALL, **fields: Any
) -> SandboxResult:
    """Run ``code`` in the sandbox to the end."""
    handle = await sandbox.start(python_spec(code, limits=limits, **fields))
    return await handle.wait()
