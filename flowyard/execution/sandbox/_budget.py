"""The host's budget for all runs together: one parent cgroup, and admission by memory.

A run's own limits are ceilings, not reservations: twenty runs each allowed
16 GiB fit on a 24 GiB host only while they use little. So every run's
cgroup lives under one parent, ``flowyard-runs``, whose memory limit is the
memory all runs together may use (the host's memory, or the server's own
cgroup limit if lower, less a reserve for the server and the system) and
whose pids limit keeps the host's process table usable. When runs together
reach that limit, the kernel's out-of-memory killer picks a process among
the runs, never the server; the victim's run says the host's budget, not
its own limit, was reached. Run processes also start with the highest
``oom_score_adj``, so that even a host-wide shortage takes a run first.

Before that point, admission holds new runs back: :func:`memory_pressure`
gives a reason while the runs' working set is over
:data:`ADMIT_BELOW` of the budget or the host's available memory is below its
reserve, and the dispatcher leaves runs SCHEDULED with that reason until
memory frees.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from flowyard.execution.host import CgroupLayout
from flowyard.execution.sandbox._cgroups import parse_int, parse_keyed
from flowyard.execution.sandbox._errors import SandboxError
from flowyard.execution.sandbox._result import format_bytes

logger = logging.getLogger(__name__)

PARENT = "flowyard-runs"
ADMIT_BELOW = 0.9
_MIB = 1024**2
_GIB = 1024**3
_NO_LIMIT = 1 << 62  # v1 reports "no limit" as a huge page-rounded number


def host_memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int:
    """``MemTotal`` in bytes."""
    return _meminfo(meminfo).get("MemTotal", 0)


def available_memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int:
    """``MemAvailable`` in bytes: what can be allocated without swapping."""
    return _meminfo(meminfo).get("MemAvailable", 0)


def reserve_bytes(total: int) -> int:
    """Memory kept back for the server and the system: 10%, at least 512 MiB, at most 4 GiB."""
    return min(max(total // 10, 512 * _MIB), 4 * _GIB)


def default_budget(total: int, own_limit: int | None) -> int:
    """What runs together may use by default: the smaller of the host and our cgroup, less the reserve."""
    ceiling = min(total, own_limit) if own_limit and own_limit < _NO_LIMIT else total
    return max(ceiling - reserve_bytes(ceiling), 256 * _MIB)


def default_pids(pid_max: Path = Path("/proc/sys/kernel/pid_max")) -> int:
    """Half the kernel's pid space: runs can never exhaust the host's process table."""
    try:
        return max(int(pid_max.read_text()) // 2, 1024)
    except (OSError, ValueError):
        return 16384


@dataclass(frozen=True)
class BudgetUsage:
    """The runs' parent cgroup's counters."""

    memory_bytes: int
    working_set_bytes: int
    limit_bytes: int
    oom_kills: int


class RunsBudget:
    """The ``flowyard-runs`` parent cgroup of one host, made (or joined) with its limits."""

    def __init__(self, layout: CgroupLayout, memory_bytes: int, pids: int) -> None:
        self.layout = layout
        self.memory_bytes = memory_bytes
        self.pids = pids

    @classmethod
    def create(
        cls,
        parent: CgroupLayout,
        memory_bytes: int | None = None,
        pids: int | None = None,
        *,
        name: str = PARENT,
    ) -> RunsBudget:
        """Make (or reuse) ``name`` under ``parent`` and write its limits.

        ``memory_bytes`` ``None`` (or 0) derives the budget from the host. Several
        servers on one host share the parent and so one budget; the last to
        start writes its figures.
        """
        dirs = {c: d / name for c, d in parent.dirs.items() if c in parent.writable}
        own_limit = _own_memory_limit(parent)
        budget = memory_bytes or default_budget(host_memory_bytes(), own_limit)
        pid_limit = pids or default_pids()
        try:
            for directory in sorted(set(dirs.values())):
                directory.mkdir(exist_ok=True)
            if parent.version == 2:
                directory = dirs["memory"]
                _enable_controllers(directory)
                (directory / "memory.max").write_text(str(budget))
                _write_optional(directory / "memory.swap.max", "0")
                (directory / "pids.max").write_text(str(pid_limit))
            else:
                memory = dirs["memory"]
                _write_optional(memory / "memory.use_hierarchy", "1")
                _set_v1_memory_limit(memory, budget)
                (dirs["pids"] / "pids.max").write_text(str(pid_limit))
        except OSError as exc:
            raise SandboxError(f"cannot set up the runs' parent cgroup {name}: {exc}") from exc
        layout = CgroupLayout(
            version=parent.version,
            dirs=dirs,
            writable=parent.writable,
            swap_limit=parent.swap_limit,
        )
        logger.info(
            "runs share a budget of %s memory and %d processes (cgroup %s)",
            format_bytes(budget),
            pid_limit,
            dirs["memory"],
        )
        return cls(layout, budget, pid_limit)

    def usage(self) -> BudgetUsage:
        """Memory of all runs now; the working set leaves out reclaimable file cache."""
        memory_dir = self.layout.dirs["memory"]
        if self.layout.version == 2:
            current = _read_int(memory_dir / "memory.current")
            stat = parse_keyed(_read(memory_dir / "memory.stat"))
            inactive = stat.get("inactive_file", 0)
            oom = parse_keyed(_read(memory_dir / "memory.events")).get("oom_kill", 0)
        else:
            current = _read_int(memory_dir / "memory.usage_in_bytes")
            stat = parse_keyed(_read(memory_dir / "memory.stat"))
            inactive = stat.get("total_inactive_file", 0)
            oom = parse_keyed(_read(memory_dir / "memory.oom_control")).get("oom_kill", 0)
        return BudgetUsage(
            memory_bytes=current,
            working_set_bytes=max(current - inactive, 0),
            limit_bytes=self.memory_bytes,
            oom_kills=oom,
        )


def memory_pressure(budget: RunsBudget | None, meminfo: Path = Path("/proc/meminfo")) -> str | None:
    """The admission verdict by memory: the runs' budget if there is one, the host's always."""
    if budget is not None:
        used = budget.usage()
        if used.working_set_bytes >= ADMIT_BELOW * budget.memory_bytes:
            share = round(100 * used.working_set_bytes / budget.memory_bytes)
            return (
                f"runs use {share}% of the host's memory for runs "
                f"({format_bytes(used.working_set_bytes)} of {format_bytes(budget.memory_bytes)})"
            )
    info = _meminfo(meminfo)
    total, available = info.get("MemTotal", 0), info.get("MemAvailable", 0)
    if total and available < reserve_bytes(total):
        return (
            f"the host has {format_bytes(available)} of memory available, "
            f"below its reserve of {format_bytes(reserve_bytes(total))}"
        )
    return None


def _set_v1_memory_limit(directory: Path, budget: int) -> None:
    """memsw must stay >= the memory limit: lower memory first, raise memsw first."""
    memory = directory / "memory.limit_in_bytes"
    memsw = directory / "memory.memsw.limit_in_bytes"
    current = _read_int(memory)
    if budget < current:
        memory.write_text(str(budget))
        _write_optional(memsw, str(budget))
    else:
        _write_optional(memsw, str(budget))
        memory.write_text(str(budget))


def _enable_controllers(directory: Path) -> None:
    available = set(_read(directory / "cgroup.controllers").split())
    wanted = [c for c in ("cpu", "memory", "pids") if c in available]
    if wanted:
        (directory / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))


def _own_memory_limit(parent: CgroupLayout) -> int | None:
    """The memory limit of the cgroup runs are placed under, if it has one."""
    directory = parent.dirs.get("memory")
    if directory is None:
        return None
    name = "memory.max" if parent.version == 2 else "memory.limit_in_bytes"
    with contextlib.suppress(OSError, ValueError):
        value = parse_int((directory / name).read_text())
        return value if value > 0 else None
    return None


def _write_optional(path: Path, value: str) -> None:
    if path.exists():
        with contextlib.suppress(OSError):
            path.write_text(value)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _read_int(path: Path) -> int:
    try:
        return parse_int(path.read_text())
    except (OSError, ValueError):
        return 0


def _meminfo(path: Path) -> dict[str, int]:
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, _, rest = line.partition(":")
            fields = rest.split()
            if fields and fields[0].isdigit():
                values[key] = int(fields[0]) * (1024 if fields[1:2] == ["kB"] else 1)
    return values
