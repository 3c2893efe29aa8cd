"""Run cgroups against a temporary directory standing in for /sys/fs/cgroup."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowyard.execution.host import CgroupLayout
from flowyard.execution.sandbox import GiB, Limits, MiB, SandboxError
from flowyard.execution.sandbox._cgroups import RunCgroup, parse_int, parse_keyed

V1 = ("memory", "cpu", "cpuacct", "pids", "freezer")


def v1_layout(root: Path, controllers: tuple[str, ...] = V1) -> CgroupLayout:
    dirs = {c: root / c for c in controllers}
    for directory in dirs.values():
        directory.mkdir(parents=True, exist_ok=True)
    return CgroupLayout(version=1, dirs=dirs, writable=frozenset(controllers))


def v2_layout(root: Path) -> CgroupLayout:
    root.mkdir(parents=True, exist_ok=True)
    return CgroupLayout(
        version=2,
        dirs=dict.fromkeys(("memory", "cpu", "pids"), root),
        writable=frozenset({"memory", "cpu", "pids"}),
    )


def write(directory: Path, **files: str) -> None:
    for name, text in files.items():
        (directory / name.replace("__", ".")).write_text(text)


def test_keyed_files_parse_to_numbers_and_skip_junk() -> None:
    text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\ngarbage\nx y\n"
    assert parse_keyed(text) == {"oom_kill_disable": 0, "under_oom": 0, "oom_kill": 3}


def test_max_reads_as_no_limit() -> None:
    assert parse_int("max\n") == -1
    assert parse_int(" 42\n") == 42


def test_a_run_cgroup_is_made_in_every_v1_controller(tmp_path: Path) -> None:
    cgroup = RunCgroup.create(v1_layout(tmp_path), "flowyard-run-a")
    assert {d.name for d in cgroup.dirs.values()} == {"flowyard-run-a"}
    assert all(d.is_dir() for d in cgroup.dirs.values())
    assert len(cgroup.procs_files) == len(V1)


def test_co_mounted_controllers_share_one_directory(tmp_path: Path) -> None:
    layout = v1_layout(tmp_path, ("memory", "pids", "freezer"))
    both = tmp_path / "cpu,cpuacct"
    both.mkdir()
    layout = CgroupLayout(1, {**layout.dirs, "cpu": both, "cpuacct": both}, frozenset(V1))
    cgroup = RunCgroup.create(layout, "run")
    assert len(cgroup.procs_files) == 4


def test_a_missing_required_controller_is_named(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="pids"):
        RunCgroup.create(v1_layout(tmp_path, ("memory", "cpu", "cpuacct")), "run")


def test_v1_limits_disable_swap_when_the_kernel_accounts_it(tmp_path: Path) -> None:
    cgroup = RunCgroup.create(v1_layout(tmp_path), "run")
    memory = cgroup.dirs["memory"]
    (memory / "memory.memsw.limit_in_bytes").write_text("")
    cgroup.apply(Limits(cpus=1.5, memory_bytes=512 * MiB, pids=64), extra_pids=2)
    assert (memory / "memory.limit_in_bytes").read_text() == str(512 * MiB)
    assert (memory / "memory.memsw.limit_in_bytes").read_text() == str(512 * MiB)
    assert (cgroup.dirs["cpu"] / "cpu.cfs_quota_us").read_text() == "150000"
    assert (cgroup.dirs["cpu"] / "cpu.cfs_period_us").read_text() == "100000"
    assert (cgroup.dirs["pids"] / "pids.max").read_text() == "66"


def test_v1_without_swap_accounting_sets_no_memsw_limit(tmp_path: Path) -> None:
    cgroup = RunCgroup.create(v1_layout(tmp_path), "run")
    cgroup.apply(Limits(memory_bytes=GiB))
    assert not (cgroup.dirs["memory"] / "memory.memsw.limit_in_bytes").exists()


def test_v2_limits_go_in_one_directory_with_swap_off(tmp_path: Path) -> None:
    cgroup = RunCgroup.create(v2_layout(tmp_path), "run")
    directory = cgroup.dirs["memory"]
    (directory / "memory.swap.max").write_text("max")
    cgroup.apply(Limits(cpus=0.5, memory_bytes=GiB, pids=100))
    assert (directory / "memory.max").read_text() == str(GiB)
    assert (directory / "memory.swap.max").read_text() == "0"
    assert (directory / "cpu.max").read_text() == "50000 100000"
    assert (directory / "pids.max").read_text() == "100"


def test_v1_counters_report_oom_kills_peak_cpu_and_pid_limit_hits(tmp_path: Path) -> None:
    cgroup = RunCgroup.create(v1_layout(tmp_path), "run")
    write(
        cgroup.dirs["memory"],
        memory__oom_control="oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        memory__usage_in_bytes="1000\n",
        memory__max_usage_in_bytes=f"{64 * MiB}\n",
        memory__failcnt="12\n",
    )
    write(cgroup.dirs["cpuacct"], cpuacct__usage="2500000000\n")
    write(cgroup.dirs["pids"], pids__events="max 4\n", cgroup__procs="10\n11\n")
    usage = cgroup.usage()
    assert (usage.oom_kills, usage.memory_limit_hits, usage.pids_limit_hits) == (1, 12, 4)
    assert usage.peak_memory_bytes == 64 * MiB
    assert usage.cpu_seconds == pytest.approx(2.5)
    assert usage.processes == 2


def test_v2_counters_come_from_memory_events_and_cpu_stat(tmp_path: Path) -> None:
    cgroup = RunCgroup.create(v2_layout(tmp_path), "run")
    write(
        cgroup.dirs["memory"],
        memory__events="low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n",
        memory__current="2048\n",
        memory__peak=f"{3 * MiB}\n",
        cpu__stat="usage_usec 1500000\nuser_usec 1000000\n",
        pids__events="max 0\n",
    )
    usage = cgroup.usage()
    assert (usage.oom_kills, usage.memory_limit_hits, usage.pids_limit_hits) == (1, 7, 0)
    assert usage.peak_memory_bytes == 3 * MiB
    assert usage.cpu_seconds == pytest.approx(1.5)


def test_without_a_peak_counter_the_highest_sample_is_the_peak(tmp_path: Path) -> None:
    cgroup = RunCgroup.create(v2_layout(tmp_path), "run")
    directory = cgroup.dirs["memory"]
    (directory / "memory.current").write_text("5000\n")
    cgroup.usage()
    (directory / "memory.current").write_text("100\n")
    assert cgroup.usage().peak_memory_bytes == 5000


def test_a_kernel_without_an_oom_counter_reports_none(tmp_path: Path) -> None:
    cgroup = RunCgroup.create(v1_layout(tmp_path), "run")
    (cgroup.dirs["memory"] / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")
    assert cgroup.usage().oom_kills is None


def test_renaming_moves_every_controller_directory(tmp_path: Path) -> None:
    cgroup = RunCgroup.create(v1_layout(tmp_path), "flowyard-slot-1")
    cgroup.rename("flowyard-run-r")
    assert {d.name for d in cgroup.dirs.values()} == {"flowyard-run-r"}
    assert all(d.is_dir() for d in cgroup.dirs.values())
    assert not (tmp_path / "memory" / "flowyard-slot-1").exists()


def test_removing_an_already_removed_cgroup_is_quiet(tmp_path: Path) -> None:
    cgroup = RunCgroup.create(v1_layout(tmp_path), "run")
    for directory in cgroup.dirs.values():
        directory.rmdir()
    cgroup.remove()
    assert not any(d.exists() for d in cgroup.dirs.values())
