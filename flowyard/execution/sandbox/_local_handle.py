"""A running strict sandbox: its counters while it runs, its verdict and teardown at the end."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flowyard.execution.sandbox._adopt import RunRecord, seconds_since
from flowyard.execution.sandbox._bwrap import PRELUDE_FAILED_EXIT
from flowyard.execution.sandbox._cgroups import RunCgroup
from flowyard.execution.sandbox._loop import MountedImage
from flowyard.execution.sandbox._result import (
    Observation,
    SandboxResult,
    SandboxStats,
    decide,
    split_status,
)
from flowyard.execution.sandbox._spec import SandboxSpec
from flowyard.execution.sandbox._storage import ImagePool
from flowyard.execution.sandbox._supervise import ExitStatus, SupervisedHandle, exit_code_and_signal

if TYPE_CHECKING:
    from flowyard.execution.sandbox._zygotes import HeldFifos

logger = logging.getLogger(__name__)

OUTPUT_TAIL_BYTES = 16 * 1024
_SETUP_PREFIXES = ("bwrap: ", "setpriv: ", "flowyard: ")


@dataclass(frozen=True)
class RunResources:
    """What a strict run holds on the host until teardown."""

    process: subprocess.Popen[bytes] | None  # None: adopted from a previous server
    cgroup: RunCgroup
    fs: MountedImage
    run_dir: Path
    held: HeldFifos | None = None  # a held standby's FIFOs, until a zygote's run takes it


class LocalHandle(SupervisedHandle):
    """A run inside bubblewrap, its cgroup and its loop-mounted disk."""

    def __init__(
        self,
        spec: SandboxSpec,
        resources: RunResources,
        pool: ImagePool,
        budget_bytes: int | None = None,
    ) -> None:
        self._res = resources
        self._pool = pool
        self._budget_bytes = budget_bytes
        self._torn_down = False
        self.adopted = False
        super().__init__(
            spec.run_id, resources.process, spec.limits, environment_dir=spec.environment_dir
        )

    @classmethod
    def adopt(
        cls,
        record: RunRecord,
        resources: RunResources,
        pool: ImagePool,
        budget_bytes: int | None = None,
        *,
        alive: bool = True,
    ) -> LocalHandle:
        """Supervise a run a previous server started, from its record.

        ``alive=False``: its process is gone (its pid may be another's now): the
        handle ends at once with what the status file and cgroup say.
        """
        handle = cls.__new__(cls)
        handle._res = resources
        handle._pool = pool
        handle._budget_bytes = budget_bytes
        handle._torn_down = False
        handle.adopted = True
        SupervisedHandle.__init__(
            handle,
            record.run_id,
            None,
            record.run_limits,
            pid=record.pid if alive else None,
            running_for=seconds_since(record.started_wall),
            environment_dir=Path(record.environment_dir) if record.environment_dir else None,
        )
        return handle

    def read_output(self, offset: int = 0, limit: int = 65536) -> bytes:
        """Up to ``limit`` bytes of stdout+stderr from ``offset`` (empty once torn down)."""
        if self._torn_down:
            return b""
        try:
            with self._res.fs.output.open("rb") as fh:
                fh.seek(offset)
                return fh.read(limit)
        except OSError:
            return b""

    def _kill_everything(self) -> None:
        self._res.cgroup.kill_all()

    def _signal_run(self, signum: int) -> None:
        # bubblewrap's own processes are spared: its pid 1 would take the whole
        # pid namespace down with SIGKILL instead of letting the run shut down.
        self._res.cgroup.signal(signum, sparing=self._sandbox_pids())

    def _sandbox_pids(self) -> set[int]:
        outer = self.pid
        try:
            children = Path(f"/proc/{outer}/task/{outer}/children").read_text().split()
        except OSError:
            children = []
        return {outer, *(int(pid) for pid in children)}

    def _sample(self) -> None:
        try:
            self._res.cgroup.usage()
            self._res.fs.used_bytes()
        except OSError:
            logger.warning("run %s: sampling usage failed", self.run_id, exc_info=True)

    def _stats(self, wall_seconds: float) -> SandboxStats:
        usage = self._res.cgroup.usage()  # reads zeros once the cgroup is gone
        storage = 0
        if not self._torn_down:  # after teardown the disk is the pool's, recycled or gone
            try:
                storage = self._res.fs.used_bytes()
            except OSError:
                storage = 0
        return SandboxStats(
            memory_bytes=usage.memory_bytes,
            peak_memory_bytes=usage.peak_memory_bytes,
            cpu_seconds=usage.cpu_seconds,
            storage_bytes=storage,
            peak_storage_bytes=self._res.fs.peak_bytes,
            processes=max(usage.processes - len(self._sandbox_pids()), 0),
            wall_seconds=wall_seconds,
        )

    def _finish(self, status: ExitStatus) -> SandboxResult:
        cgroup, fs = self._res.cgroup, self._res.fs
        try:
            if cgroup.pids():
                cgroup.kill_all()
            usage = cgroup.usage()
            with contextlib.suppress(OSError):
                fs.used_bytes()
            tail = self._tail()
            exit_code, sig, setup_error = _interpret(
                status, read_status(self._res.run_dir / "status.json"), tail, adopted=self.adopted
            )
            oom = usage.oom_kills > 0 if usage.oom_kills is not None else (
                usage.memory_limit_hits > 0 and sig == signal.SIGKILL
            )  # fmt: skip
            seen = Observation(
                limits=self._limits,
                exit_code=exit_code,
                signal=sig,
                peak_memory_bytes=usage.peak_memory_bytes,
                oom_killed=oom,
                budget_bytes=self._budget_bytes,
                process_limit_hit=usage.pids_limit_hits > 0,
                storage_full=fs.ever_full,
                timed_out=self.timed_out,
                stopped=self.stopped,
                setup_error=setup_error,
            )
            ending, reason = decide(seen)
            return SandboxResult(
                run_id=self.run_id,
                ending=ending,
                exit_code=exit_code,
                signal=sig,
                peak_memory_bytes=usage.peak_memory_bytes,
                cpu_seconds=usage.cpu_seconds,
                peak_storage_bytes=fs.peak_bytes,
                wall_seconds=self.wall_seconds,
                crash_reason=reason,
                output_tail=tail,
            )
        finally:
            self._teardown()

    def _tail(self) -> str:
        path = self._res.fs.output
        try:
            with path.open("rb") as fh:
                fh.seek(max(path.stat().st_size - OUTPUT_TAIL_BYTES, 0))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _teardown(self) -> None:
        self._torn_down = True
        res = self._res
        steps = (
            ("remove cgroup", res.cgroup.remove),
            ("release work dir", lambda: self._pool.release(res.fs)),
            ("remove run dir", lambda: shutil.rmtree(res.run_dir, ignore_errors=True)),
        )
        for what, step in steps:
            try:
                step()
            except Exception:  # each step is independent: one failing must not leak the rest
                logger.exception("run %s: teardown could not %s", self.run_id, what)


def _interpret(
    status: ExitStatus, bwrap: dict[str, int], tail: str, *, adopted: bool = False
) -> tuple[int | None, int | None, str | None]:
    """``(exit code, signal, setup error)`` from bubblewrap's status and our wait status.

    An adopted run's outer process is not our child: only bubblewrap's status tells
    how it ended; without one (bubblewrap itself was killed) nothing is known.
    """
    if adopted and "exit-code" not in bwrap:
        return None, None, None
    code, sig = exit_code_and_signal(status.raw)
    if sig is not None:  # bubblewrap itself was killed: by us, or by the OOM killer
        return None, sig, None
    if "exit-code" in bwrap:
        exit_code, inner_sig = split_status(bwrap["exit-code"])
        if exit_code == PRELUDE_FAILED_EXIT and "flowyard: sandbox prelude failed" in tail:
            return exit_code, None, _setup_line(tail) or "the sandbox prelude failed"
        return exit_code, inner_sig, None
    if code is None:  # reaped elsewhere and no status from bubblewrap
        return None, None, "the sandbox's exit status was lost"
    return (
        code,
        None,
        _setup_line(tail) or f"bubblewrap exited with code {code} before the command ran",
    )


def _setup_line(tail: str) -> str | None:
    lines = [line for line in tail.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(_SETUP_PREFIXES) or ": 1: " in line:
            return line.strip()
    return lines[-1].strip() if lines else None


def read_status(path: Path) -> dict[str, int]:
    """bubblewrap's ``--json-status-fd`` documents, merged (``child-pid``, ``exit-code``)."""
    merged: dict[str, int] = {}
    try:
        text = path.read_text()
    except OSError:
        return merged
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            merged.update({k: v for k, v in json.loads(line).items() if isinstance(v, int)})
    return merged
