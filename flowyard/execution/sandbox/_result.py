"""How a sandboxed run ended, in numbers and in words a user understands.

:func:`decide` turns what was observed (exit status, the cgroup's counters,
the deadline, the disk) into an :class:`Ending` and a crash reason. It is a
pure function so every wording is unit-tested.
"""

from __future__ import annotations

import math
import signal as signals
from dataclasses import dataclass
from enum import StrEnum

from flowyard.execution.sandbox._spec import Limits

_UNITS = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))


class Ending(StrEnum):
    """Why the process is gone. Only ``EXITED`` with code 0 is a success."""

    EXITED = "exited"
    SIGNALED = "signaled"
    OUT_OF_MEMORY = "out_of_memory"
    PROCESS_LIMIT = "process_limit"
    STORAGE_FULL = "storage_full"
    TIMED_OUT = "timed_out"
    STOPPED = "stopped"
    SETUP_FAILED = "setup_failed"


# A peak this close to the run's own limit means the run reached it (pages are charged in batches).
_NEAR = 0.97


@dataclass(frozen=True)
class SandboxStats:
    """A live reading of a running sandbox."""

    memory_bytes: int
    peak_memory_bytes: int
    cpu_seconds: float
    storage_bytes: int
    peak_storage_bytes: int
    processes: int
    wall_seconds: float


@dataclass(frozen=True)
class SandboxResult:
    """The end of a run: telemetry plus ``crash_reason`` (``None`` on success).

    ``exit_code`` is ``None`` when a signal ended the process, and ``signal``
    is ``None`` when it exited. A process inside the sandbox that dies by
    signal N is reported as that signal (the shell convention: an exit code
    of 128 + N from the sandbox's init means "killed by signal N").
    ``output_tail`` is the end of the process's combined stdout and stderr.
    """

    run_id: str
    ending: Ending
    exit_code: int | None
    signal: int | None
    peak_memory_bytes: int
    cpu_seconds: float
    peak_storage_bytes: int
    wall_seconds: float
    crash_reason: str | None
    output_tail: str = ""

    @property
    def succeeded(self) -> bool:
        """Exited by itself with code 0."""
        return self.ending is Ending.EXITED and self.exit_code == 0


@dataclass(frozen=True)
class Observation:
    """Everything :func:`decide` weighs; filled in by a sandbox at teardown."""

    limits: Limits
    exit_code: int | None
    signal: int | None
    peak_memory_bytes: int = 0
    oom_killed: bool = False
    budget_bytes: int | None = None
    process_limit_hit: bool = False
    storage_full: bool = False
    timed_out: bool = False
    stopped: bool = False
    setup_error: str | None = None


def decide(seen: Observation) -> tuple[Ending, str | None]:
    """The ending and the crash reason, most specific cause first."""
    if seen.setup_error is not None:
        return Ending.SETUP_FAILED, f"the sandbox failed to start: {seen.setup_error}"
    if seen.timed_out:
        duration = format_duration(seen.limits.max_run_seconds)
        return Ending.TIMED_OUT, f"exceeded the maximum run time of {duration}"
    if seen.stopped:
        return Ending.STOPPED, "stopped on request"
    if seen.exit_code == 0:
        return Ending.EXITED, None
    if seen.oom_killed:
        limit = format_bytes(seen.limits.memory_bytes)
        peak = format_bytes(seen.peak_memory_bytes)
        if (
            seen.budget_bytes is not None
            and seen.peak_memory_bytes < _NEAR * seen.limits.memory_bytes
        ):
            # Killed below its own limit: all runs together used up the host's budget.
            budget = format_bytes(seen.budget_bytes)
            return Ending.OUT_OF_MEMORY, (
                f"out of memory: the host's memory for runs ({budget}) was used up by all "
                f"runs together (this run's peak {peak}, its own limit {limit})"
            )
        return Ending.OUT_OF_MEMORY, f"out of memory: limit {limit} reached (peak {peak})"
    if seen.process_limit_hit:
        return Ending.PROCESS_LIMIT, f"process limit reached ({seen.limits.pids})"
    if seen.storage_full:
        limit = format_bytes(seen.limits.storage_bytes)
        return Ending.STORAGE_FULL, f"out of disk space: storage limit {limit} reached"
    if seen.signal is not None:
        return Ending.SIGNALED, f"killed by signal {seen.signal} ({signal_name(seen.signal)})"
    if seen.exit_code is None:
        return Ending.EXITED, (
            "the run's process ended while no server was watching it; how it ended is unknown"
        )
    return Ending.EXITED, f"exited with code {seen.exit_code}"


def split_status(code: int) -> tuple[int | None, int | None]:
    """``(exit_code, signal)`` from a sandbox init's exit code (128 + N = signal N)."""
    if 128 < code < 128 + 65:
        return None, code - 128
    return code, None


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9; ``signal 64`` for numbers without a name."""
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"


def format_bytes(count: int) -> str:
    """``512 MiB``, ``1.5 GiB``, ``511.9 MiB`` (rounded down), ``300 B``."""
    for unit, size in _UNITS:
        if count >= size:
            if count % size == 0:
                return f"{count // size} {unit}"
            tenths = math.floor(count * 10 / size) / 10
            return f"{tenths:g} {unit}"
    return f"{count} B"


def format_duration(seconds: float) -> str:
    """``24h``, ``1h 30m``, ``2m 5s``, ``1s``, ``1.5s``."""
    if seconds < 60 and seconds != int(seconds):
        return f"{seconds:g}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{value}{unit}" for value, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if value
    ]
    return " ".join(parts) or "0s"
