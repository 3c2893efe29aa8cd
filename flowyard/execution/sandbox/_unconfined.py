"""Isolation ``none``: a plain process, for hosts that cannot isolate and operators who chose so.

The process runs as the server's own user with the run's environment, in its
own process group (so stopping it stops its children, unless they leave the
group), under rlimits where one fits (data segment for memory, file size for
storage), and with the same wall-clock deadline as a strict run. The network
mode is not enforced. Placeholders expand to host paths: the work dir is a
plain directory under the state dir.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from flowyard.execution.sandbox._errors import SandboxError
from flowyard.execution.sandbox._layout import Placeholder, expand
from flowyard.execution.sandbox._result import Observation, SandboxResult, SandboxStats, decide
from flowyard.execution.sandbox._spec import SandboxSpec
from flowyard.execution.sandbox._supervise import ExitStatus, SupervisedHandle, exit_code_and_signal

logger = logging.getLogger(__name__)

_TAIL_BYTES = 16 * 1024
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class UnconfinedResources:
    """The run directory: work, tmp and output."""

    run_dir: Path


def spawn(
    spec: SandboxSpec, state_dir: Path
) -> tuple[subprocess.Popen[bytes], UnconfinedResources]:
    """Create the run's directories and start its process."""
    run_dir = state_dir / "runs" / spec.run_id
    try:
        run_dir.mkdir(mode=0o700)
    except FileExistsError:
        raise SandboxError(f"run {spec.run_id} already has a sandbox") from None
    try:
        work, tmp = run_dir / "work", run_dir / "tmp"
        if spec.workdir_source is not None:
            shutil.copytree(spec.workdir_source, work, symlinks=True)
        work.mkdir(exist_ok=True)
        tmp.mkdir()
        if spec.environment_dir is not None:
            python = spec.environment_dir / "bin" / "python"
        else:
            python = spec.runtime_dir / "bin" / "python3"
        paths = {
            Placeholder.PYTHON: str(python),
            Placeholder.WORK: str(work),
            Placeholder.TMP: str(tmp),
            Placeholder.API_SOCKET: str(spec.api_socket or ""),
            Placeholder.EGRESS_PROXY: "",
        }
        argv = [expand(arg, paths) for arg in spec.argv]
        env = {name: expand(value, paths) for name, value in spec.env.items()}
        with (run_dir / "output.log").open("ab") as output:
            process = subprocess.Popen(
                argv, env=env, cwd=work, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                process_group=0,
            )  # fmt: skip
    except (OSError, shutil.Error) as exc:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise SandboxError(f"cannot start run {spec.run_id}: {exc}") from exc
    # Set just after the exec, before the interpreter has started anything.
    for limit, value in (
        (resource.RLIMIT_DATA, spec.limits.memory_bytes),
        (resource.RLIMIT_FSIZE, spec.limits.storage_bytes),
    ):
        with contextlib.suppress(OSError, ValueError):
            resource.prlimit(process.pid, limit, (value, value))
    return process, UnconfinedResources(run_dir)


class UnconfinedHandle(SupervisedHandle):
    """A plain process group."""

    def __init__(
        self, spec: SandboxSpec, process: subprocess.Popen[bytes], resources: UnconfinedResources
    ) -> None:
        self._res = resources
        self._peak_rss = 0
        super().__init__(spec.run_id, process, spec.limits, environment_dir=spec.environment_dir)

    def read_output(self, offset: int = 0, limit: int = 65536) -> bytes:
        """Up to ``limit`` bytes of stdout+stderr from ``offset``."""
        try:
            with (self._res.run_dir / "output.log").open("rb") as fh:
                fh.seek(offset)
                return fh.read(limit)
        except OSError:
            return b""

    def _kill_everything(self) -> None:
        self._signal_run(signal.SIGKILL)

    def _signal_run(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def _sample(self) -> None:
        self._peak_rss = max(self._peak_rss, _proc_status_kib(self.pid, "VmHWM") * 1024)

    def _stats(self, wall_seconds: float) -> SandboxStats:
        self._sample()
        storage = _tree_size(self._res.run_dir)
        return SandboxStats(
            memory_bytes=_proc_status_kib(self.pid, "VmRSS") * 1024,
            peak_memory_bytes=self._peak_rss,
            cpu_seconds=_proc_cpu_seconds(self.pid),
            storage_bytes=storage,
            peak_storage_bytes=storage,
            processes=1,
            wall_seconds=wall_seconds,
        )

    def _finish(self, status: ExitStatus) -> SandboxResult:
        try:
            self._signal_run(signal.SIGKILL)  # whatever of the group outlived its leader
            exit_code, sig = exit_code_and_signal(status.raw)
            storage = _tree_size(self._res.run_dir)
            peak = max(self._peak_rss, status.max_rss_bytes)
            seen = Observation(
                limits=self._limits, exit_code=exit_code, signal=sig, peak_memory_bytes=peak,
                timed_out=self.timed_out, stopped=self.stopped,
            )  # fmt: skip
            ending, reason = decide(seen)
            return SandboxResult(
                run_id=self.run_id, ending=ending, exit_code=exit_code, signal=sig,
                peak_memory_bytes=peak, cpu_seconds=status.cpu_seconds, peak_storage_bytes=storage,
                wall_seconds=self.wall_seconds, crash_reason=reason, output_tail=self._tail(),
            )  # fmt: skip
        finally:
            shutil.rmtree(self._res.run_dir, ignore_errors=True)

    def _tail(self) -> str:
        path = self._res.run_dir / "output.log"
        try:
            with path.open("rb") as fh:
                fh.seek(max(path.stat().st_size - _TAIL_BYTES, 0))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""


def _proc_status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _proc_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return 0.0


def _tree_size(root: Path) -> int:
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return total
