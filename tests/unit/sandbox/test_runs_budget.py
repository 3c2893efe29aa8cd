"""The runs' memory budget and admission by memory, on cgroup files in a temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowyard.execution.host import CgroupLayout
from flowyard.execution.sandbox import GiB, Limits, MiB, RunsBudget, memory_pressure
from flowyard.execution.sandbox._budget import default_budget, reserve_bytes
from flowyard.execution.sandbox._result import Ending, Observation, decide

V1_NO_LIMIT = 9223372036854771712


def meminfo(tmp_path: Path, *, total: int, available: int) -> Path:
    path = tmp_path / "meminfo"
    path.write_text(
        f"MemTotal:       {total // 1024} kB\nMemFree:  1 kB\nMemAvailable:   {available // 1024} kB\n"
    )
    return path


def v1_layout(root: Path) -> CgroupLayout:
    dirs = {}
    for controller in ("memory", "cpu", "cpuacct", "pids", "freezer"):
        directory = root / controller
        directory.mkdir(parents=True)
        dirs[controller] = directory
    (root / "memory" / "memory.limit_in_bytes").write_text(str(V1_NO_LIMIT))
    return CgroupLayout(version=1, dirs=dirs, writable=frozenset(dirs))


def test_the_reserve_is_a_tenth_of_memory_within_bounds() -> None:
    assert reserve_bytes(2 * GiB) == 512 * MiB
    assert reserve_bytes(24 * GiB) == 24 * GiB // 10
    assert reserve_bytes(256 * GiB) == 4 * GiB


def test_the_default_budget_is_the_smaller_of_host_and_own_cgroup_less_the_reserve() -> None:
    assert default_budget(24 * GiB, None) == 24 * GiB - reserve_bytes(24 * GiB)
    assert default_budget(24 * GiB, V1_NO_LIMIT) == 24 * GiB - reserve_bytes(24 * GiB)
    assert default_budget(24 * GiB, 8 * GiB) == 8 * GiB - reserve_bytes(8 * GiB)


def test_creating_the_budget_writes_its_limits_and_moves_runs_under_it(tmp_path: Path) -> None:
    layout = v1_layout(tmp_path)
    budget = RunsBudget.create(layout, 3 * GiB, 5000)
    memory = tmp_path / "memory" / "flowyard-runs"
    assert (memory / "memory.limit_in_bytes").read_text() == str(3 * GiB)
    assert (tmp_path / "pids" / "flowyard-runs" / "pids.max").read_text() == "5000"
    assert budget.layout.dirs["memory"] == memory
    assert set(budget.layout.dirs) == set(layout.dirs)
    assert budget.memory_bytes == 3 * GiB


def test_runs_using_most_of_the_budget_hold_new_runs_back_saying_how_much(tmp_path: Path) -> None:
    budget = RunsBudget.create(v1_layout(tmp_path), 10 * GiB, 5000)
    memory = tmp_path / "memory" / "flowyard-runs"
    host = meminfo(tmp_path, total=24 * GiB, available=20 * GiB)
    memory.joinpath("memory.stat").write_text(f"cache 0\ntotal_inactive_file {GiB}\n")

    memory.joinpath("memory.usage_in_bytes").write_text(str(9 * GiB))
    assert memory_pressure(budget, host) is None  # 8 GiB working set: 80%

    memory.joinpath("memory.usage_in_bytes").write_text(str(10 * GiB))
    assert memory_pressure(budget, host) == (
        "runs use 90% of the host's memory for runs (9 GiB of 10 GiB)"
    )


def test_a_host_short_of_memory_holds_new_runs_back_with_or_without_a_budget(
    tmp_path: Path,
) -> None:
    short = meminfo(tmp_path, total=24 * GiB, available=GiB)
    assert memory_pressure(None, short) == (
        "the host has 1 GiB of memory available, below its reserve of 2.3 GiB"
    )
    assert memory_pressure(None, meminfo(tmp_path, total=24 * GiB, available=10 * GiB)) is None


@pytest.mark.parametrize(
    ("peak", "expected"),
    [
        (
            60 * MiB,
            "out of memory: the host's memory for runs (1 GiB) was used up by all runs "
            "together (this run's peak 60 MiB, its own limit 256 MiB)",
        ),
        (256 * MiB, "out of memory: limit 256 MiB reached (peak 256 MiB)"),
    ],
)
def test_an_oom_kill_below_the_runs_own_limit_blames_the_hosts_budget(
    peak: int, expected: str
) -> None:
    seen = Observation(
        limits=Limits(memory_bytes=256 * MiB),
        exit_code=None,
        signal=9,
        peak_memory_bytes=peak,
        oom_killed=True,
        budget_bytes=GiB,
    )
    assert decide(seen) == (Ending.OUT_OF_MEMORY, expected)
