"""All runs together stay within the host's budget: a real parent cgroup, a real OOM kill."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowyard.execution.host import HostCapabilities
from flowyard.execution.sandbox import Ending, Limits, LocalSandbox, MiB
from tests.integration.sandbox.conftest import SMALL, python_spec, run_python

pytestmark = pytest.mark.sandbox

BUDGET = 96 * MiB


@pytest.fixture(scope="module")
def tight(
    capabilities: HostCapabilities, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalSandbox]:
    """A sandbox whose runs share a budget smaller than one run's own limit."""
    name = f"flowyard-runs-test-{uuid.uuid4().hex[:8]}"
    made = LocalSandbox(
        tmp_path_factory.mktemp("budget-state"),
        capabilities=capabilities,
        images_per_size=1,
        runs_memory_bytes=BUDGET,
        runs_cgroup=name,
    )
    yield made
    made.close()
    assert made.budget is not None
    for directory in set(made.budget.layout.dirs.values()):
        with contextlib.suppress(OSError):
            directory.rmdir()


def test_runs_live_under_the_budget_cgroup_with_its_limit(tight: LocalSandbox) -> None:
    assert tight.budget is not None
    memory = tight.budget.layout.dirs["memory"]
    limit_file = "memory.max" if tight.budget.layout.version == 2 else "memory.limit_in_bytes"
    assert int((memory / limit_file).read_text()) == BUDGET
    assert tight.pressure() is None


async def test_a_run_killed_by_the_hosts_budget_says_so_not_its_own_limit(
    tight: LocalSandbox,
) -> None:
    own = Limits(memory_bytes=512 * MiB, storage_bytes=SMALL.storage_bytes, max_run_seconds=60)
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(1 << 20))\n"
    result = await run_python(tight, code, limits=own)
    assert result.ending is Ending.OUT_OF_MEMORY
    assert result.crash_reason is not None
    assert result.crash_reason.startswith(
        "out of memory: the host's memory for runs (96 MiB) was used up by all runs together"
    ), result.crash_reason
    assert "its own limit 512 MiB" in result.crash_reason


async def test_run_processes_are_the_oom_killers_first_choice(tight: LocalSandbox) -> None:
    result = await run_python(tight, "print(open('/proc/self/oom_score_adj').read().strip())")
    assert result.succeeded, result.output_tail
    assert result.output_tail.strip().splitlines()[-1] == "1000"


async def test_each_runs_cgroup_is_a_child_of_the_budget(tight: LocalSandbox) -> None:
    handle = await tight.start(python_spec("import time; time.sleep(30)"))
    try:
        seen = Path(f"/proc/{handle.pid}/cgroup").read_text()
    finally:
        handle.kill()
        await handle.wait()
    assert tight.budget is not None
    memory = tight.budget.layout.dirs["memory"]
    line = next(x for x in seen.splitlines() if ":memory:" in x or x.startswith("0::"))
    assert f"/{memory.name}/flowyard-run-{handle.run_id}" in line
