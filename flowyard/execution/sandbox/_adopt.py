"""What lets a run outlive the server that started it, and the next server take it back.

A strict run does not depend on its server process: bubblewrap runs in its
own session and cgroup, its disk stays mounted, and the runner holds its
events while the API is away. Two things make the rest work.

- **A record per run** (``run.json`` in the run's directory), written when the
  sandbox starts: the outer process's pid and start time (so a reused pid is
  never taken for the run), the wall-clock start (so the deadline holds across
  restarts), the limits, the disk and the cgroup. A new server reads these
  records; a run whose process is still the same one is *adoptable*.
- **Sockets by directory.** A run reaches the API (and the egress proxy)
  through a unix socket bound into its sandbox. A restarted server creates a
  new socket file, which a run bound to the old file could never see. So the
  sandbox binds a directory of its own holding a hard link to the server's
  socket, and every start (and adoption) replaces the link when the server's
  socket changed: the run sees the new socket at the same path. Where a hard
  link is impossible (the socket on another filesystem), the file itself is
  bound and such runs cannot report after a restart; the log says so once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowyard.execution.sandbox._spec import Limits, SandboxSpec

if TYPE_CHECKING:
    from flowyard.execution.sandbox._cgroups import RunCgroup
    from flowyard.execution.sandbox._loop import MountedImage

logger = logging.getLogger(__name__)

RECORD = "run.json"
_warned: set[str] = set()


@dataclass(frozen=True)
class RunRecord:
    """What a restarted server needs to supervise a run it did not start."""

    run_id: str
    pid: int
    pid_start: int
    started_wall: float
    limits: dict[str, Any]
    image: str
    mount_point: str
    size_bytes: int
    baseline_bytes: int
    cgroup_version: int
    cgroup_dirs: dict[str, str]
    api_socket: str | None
    egress_socket: str | None
    environment_dir: str | None = None

    @property
    def run_limits(self) -> Limits:
        return Limits(**self.limits)

    def save(self, run_dir: Path) -> None:
        temporary = run_dir / f".{RECORD}.tmp"
        temporary.write_text(json.dumps(asdict(self)))
        temporary.replace(run_dir / RECORD)

    @classmethod
    def load(cls, run_dir: Path) -> RunRecord | None:
        """The record of ``run_dir``; ``None`` if it has none or it is unreadable."""
        try:
            return cls(**json.loads((run_dir / RECORD).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def alive(self) -> bool:
        """The run's outer process is still the one that was started."""
        return process_start_ticks(self.pid) == self.pid_start


def process_start_ticks(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat``: when the process started, in clock ticks since boot."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def seconds_since(started_wall: float) -> float:
    """How long ago a wall-clock start was (never negative, whatever the clock did)."""
    return max(time.time() - started_wall, 0.0)


def link_socket(directory: Path, name: str, socket_path: Path) -> Path | None:
    """``directory`` holding ``name``, a hard link to ``socket_path``; ``None`` if impossible.

    Replaces the link atomically when ``socket_path`` is a new socket, so runs
    bound to ``directory`` reach the current server.
    """
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    target = directory / name
    try:
        source = socket_path.stat()
    except OSError:
        return None
    with contextlib.suppress(OSError):
        current = target.stat()
        if (current.st_dev, current.st_ino) == (source.st_dev, source.st_ino):
            return directory
    temporary = directory / f".{name}.{os.getpid()}"
    try:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        os.link(socket_path, temporary)
        temporary.replace(target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if str(socket_path) not in _warned:
            _warned.add(str(socket_path))
            logger.warning(
                "cannot link %s into %s (%s): runs bind the socket itself and cannot report "
                "to a restarted server; put the socket on the same filesystem as the data dir",
                socket_path,
                directory,
                exc.strerror,
            )
        return None
    return directory


def record_run(
    spec: SandboxSpec, pid: int, cgroup: RunCgroup, fs: MountedImage, run_dir: Path
) -> None:
    """Write the record a restarted server needs to adopt this run."""
    start = process_start_ticks(pid)
    if start is None:  # already gone: nothing to adopt
        return
    RunRecord(
        run_id=spec.run_id,
        pid=pid,
        pid_start=start,
        started_wall=time.time(),
        limits=dataclasses.asdict(spec.limits),
        image=str(fs.image),
        mount_point=str(fs.mount_point),
        size_bytes=fs.size_bytes,
        baseline_bytes=fs.baseline_bytes,
        cgroup_version=cgroup.version,
        cgroup_dirs={c: str(d) for c, d in cgroup.dirs.items()},
        api_socket=str(spec.api_socket) if spec.api_socket else None,
        egress_socket=str(spec.egress_proxy_socket) if spec.egress_proxy_socket else None,
        environment_dir=str(spec.environment_dir) if spec.environment_dir else None,
    ).save(run_dir)


def adoptable_runs(runs: Path) -> dict[str, RunRecord]:
    """Run dirs with a record: their processes may live on, or have left a status behind."""
    found: dict[str, RunRecord] = {}
    for run_dir in sorted(runs.iterdir()):
        record = RunRecord.load(run_dir)
        if record is not None and record.run_id == run_dir.name:
            found[record.run_id] = record
    return found
