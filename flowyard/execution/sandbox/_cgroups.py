"""One cgroup per run: limits in, counters out, every process stopped at once.

cgroup v2 is used where memory, cpu and pids are delegated; otherwise the v1
controllers (memory, cpu, cpuacct, pids, freezer). Out-of-memory is read from
the cgroup's own counters (``memory.events`` ``oom_kill`` on v2,
``memory.oom_control`` ``oom_kill`` on v1), never inferred from a SIGKILL.
Every function takes the directories it works on, so tests can point them at
a temporary directory standing in for ``/sys/fs/cgroup``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from flowyard.execution.host import V1_REQUIRED, V2_REQUIRED, CgroupLayout
from flowyard.execution.sandbox._errors import SandboxError
from flowyard.execution.sandbox._spec import Limits

logger = logging.getLogger(__name__)

CFS_PERIOD_US = 100_000
_FREEZE_TIMEOUT = 2.0
_REMOVE_TIMEOUT = 5.0


@dataclass(frozen=True)
class CgroupUsage:
    """Counters of one run's cgroup. ``oom_kills`` is ``None`` when the kernel has none."""

    memory_bytes: int
    peak_memory_bytes: int
    cpu_seconds: float
    oom_kills: int | None
    memory_limit_hits: int
    pids_limit_hits: int
    processes: int


def parse_keyed(text: str) -> dict[str, int]:
    """``key value`` lines (``memory.events``, ``memory.oom_control``, ``cpu.stat``)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            values[key] = int(value.strip())
    return values


def parse_int(text: str) -> int:
    """A single number; ``max`` (no limit) reads as -1."""
    text = text.strip()
    return -1 if text == "max" else int(text)


class RunCgroup:
    """The cgroup(s) of one run: one directory per controller (v1) or one (v2)."""

    def __init__(self, version: int, dirs: Mapping[str, Path]) -> None:
        self.version = version
        self.dirs = dict(dirs)
        self._peak_seen = 0

    @classmethod
    def create(cls, layout: CgroupLayout, name: str) -> RunCgroup:
        """Make ``name`` under every controller the layout says is writable."""
        required = V2_REQUIRED if layout.version == 2 else V1_REQUIRED
        missing = [c for c in required if c not in layout.writable]
        if missing:
            raise SandboxError(f"cgroup controllers not writable: {', '.join(missing)}")
        dirs = {c: layout.dirs[c] / name for c in layout.writable}
        made: list[Path] = []
        try:
            for directory in sorted(set(dirs.values())):
                directory.mkdir()
                made.append(directory)
        except OSError as exc:
            for directory in made:
                with contextlib.suppress(OSError):
                    directory.rmdir()
            raise SandboxError(f"cannot create cgroup {name}: {exc}") from exc
        return cls(layout.version, dirs)

    def rename(self, name: str) -> None:
        """Rename the cgroup in every hierarchy (its processes stay in it)."""
        renamed: dict[Path, Path] = {}
        for directory in sorted(set(self.dirs.values())):
            target = directory.with_name(name)
            try:
                directory.rename(target)
            except OSError as exc:
                raise SandboxError(f"cannot rename cgroup {directory} to {name}: {exc}") from exc
            renamed[directory] = target
        self.dirs = {c: renamed[d] for c, d in self.dirs.items()}

    @property
    def procs_files(self) -> tuple[Path, ...]:
        """The ``cgroup.procs`` files a process writes its pid to, to join the run."""
        return tuple(d / "cgroup.procs" for d in sorted(set(self.dirs.values())))

    def apply(self, limits: Limits, *, extra_pids: int = 0) -> None:
        """Write the memory (no swap), CPU and pids limits."""
        quota = max(1000, round(limits.cpus * CFS_PERIOD_US))
        pids = str(limits.pids + extra_pids)
        if self.version == 2:
            self._write("memory", "memory.max", str(limits.memory_bytes))
            self._write("memory", "memory.swap.max", "0", optional=True)
            self._write("cpu", "cpu.max", f"{quota} {CFS_PERIOD_US}")
            self._write("pids", "pids.max", pids)
            return
        self._write("memory", "memory.limit_in_bytes", str(limits.memory_bytes))
        # memsw (memory + swap) must not be below the memory limit: set it second.
        self._write(
            "memory", "memory.memsw.limit_in_bytes", str(limits.memory_bytes), optional=True
        )
        self._write("memory", "memory.swappiness", "0", optional=True)
        self._write("cpu", "cpu.cfs_period_us", str(CFS_PERIOD_US))
        self._write("cpu", "cpu.cfs_quota_us", str(quota))
        self._write("pids", "pids.max", pids)

    def usage(self) -> CgroupUsage:
        """Current counters; the peak falls back to the highest value seen."""
        if self.version == 2:
            events = parse_keyed(self._read("memory", "memory.events", ""))
            current = parse_int(self._read("memory", "memory.current", "0"))
            peak = parse_int(self._read("memory", "memory.peak", "0"))
            cpu = parse_keyed(self._read("cpu", "cpu.stat", "")).get("usage_usec", 0) / 1e6
            oom: int | None = events.get("oom_kill")
            hits = events.get("max", 0)
        else:
            control = parse_keyed(self._read("memory", "memory.oom_control", ""))
            current = parse_int(self._read("memory", "memory.usage_in_bytes", "0"))
            peak = parse_int(self._read("memory", "memory.max_usage_in_bytes", "0"))
            cpu = parse_int(self._read("cpuacct", "cpuacct.usage", "0")) / 1e9
            oom = control.get("oom_kill")
            hits = parse_int(self._read("memory", "memory.failcnt", "0"))
        self._peak_seen = max(self._peak_seen, peak, current)
        pid_events = parse_keyed(self._read("pids", "pids.events", ""))
        return CgroupUsage(
            memory_bytes=current,
            peak_memory_bytes=self._peak_seen,
            cpu_seconds=cpu,
            oom_kills=oom,
            memory_limit_hits=hits,
            pids_limit_hits=pid_events.get("max", 0),
            processes=len(self.pids()),
        )

    def pids(self) -> list[int]:
        """Every process (not thread) in the run's cgroup."""
        text = self._read("pids", "cgroup.procs", "")
        return [int(line) for line in text.split()]

    def signal(self, signum: int, *, sparing: Iterable[int] = ()) -> None:
        """Send ``signum`` to every process in the cgroup except ``sparing``."""
        spared = set(sparing)
        for pid in self.pids():
            if pid not in spared:
                _send(pid, signum)

    def kill_all(self) -> None:
        """SIGKILL everything, frozen first so nothing can fork in between."""
        if self.version == 2 and self._write("pids", "cgroup.kill", "1", optional=True):
            return
        frozen = self._freeze(True)
        try:
            for _ in range(100):
                pids = self.pids()
                if not pids:
                    break
                for pid in pids:
                    _send(pid, signal.SIGKILL)
                if frozen:
                    break
                time.sleep(0.005)
        finally:
            if frozen:
                self._freeze(False)

    def remove(self) -> None:
        """Kill what is left and remove the directories (retrying while tasks exit)."""
        if self.pids():
            self.kill_all()
        deadline = time.monotonic() + _REMOVE_TIMEOUT
        for directory in sorted(set(self.dirs.values())):
            while True:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        logger.error("could not remove cgroup %s", directory, exc_info=True)
                        break
                    time.sleep(0.005)

    def _freeze(self, frozen: bool) -> bool:
        if self.version == 2:
            return self._write("pids", "cgroup.freeze", "1" if frozen else "0", optional=True)
        if "freezer" not in self.dirs:
            return False
        wanted = "FROZEN" if frozen else "THAWED"
        if not self._write("freezer", "freezer.state", wanted, optional=True):
            return False
        deadline = time.monotonic() + _FREEZE_TIMEOUT
        while self._read("freezer", "freezer.state", wanted).strip() != wanted:
            if time.monotonic() > deadline:
                logger.warning("cgroup %s did not reach %s", self.dirs["freezer"], wanted)
                return False
            time.sleep(0.001)
        return True

    def _read(self, controller: str, name: str, default: str) -> str:
        directory = self.dirs.get(controller)
        if directory is None:
            return default
        try:
            return (directory / name).read_text()
        except FileNotFoundError:
            return default

    def _write(self, controller: str, name: str, value: str, *, optional: bool = False) -> bool:
        path = self.dirs[controller] / name
        if optional and not path.exists():
            return False
        try:
            path.write_text(value)
        except OSError as exc:
            if optional:
                logger.debug("optional cgroup setting %s=%s refused: %s", path, value, exc)
                return False
            raise SandboxError(f"cannot set {path} to {value}: {exc}") from exc
        return True


def _send(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
