"""What every sandbox handle does the same way: wait, sample, enforce the deadline, stop.

A handle owns one spawned process. A task started with the handle waits for
the process's exit (a pidfd in the event loop, no thread per run), samples
usage every second while it runs, kills everything at the deadline, then
tears down on a worker thread and resolves to the run's
:class:`SandboxResult`. Subclasses say how to kill, signal, sample and tear
down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flowyard.execution.sandbox._result import SandboxResult, SandboxStats
from flowyard.execution.sandbox._spec import Limits

logger = logging.getLogger(__name__)

SAMPLE_SECONDS = 1.0
_KILL_SETTLE_SECONDS = 10.0


@dataclass(frozen=True)
class ExitStatus:
    """How the spawned process ended; ``raw`` is ``None`` if someone else reaped it."""

    raw: int | None
    cpu_seconds: float = 0.0
    max_rss_bytes: int = 0


class SupervisedHandle(ABC):
    """Base of the sandbox handles; see the module docstring."""

    def __init__(
        self,
        run_id: str,
        process: subprocess.Popen[bytes] | None,
        limits: Limits,
        *,
        pid: int | None = None,
        running_for: float = 0.0,
        environment_dir: Path | None = None,
    ) -> None:
        """Supervise ``process``, or (adopting a run) the non-child ``pid`` already
        ``running_for`` seconds, whose wait status nobody can read any more."""
        self._run_id = run_id
        self.environment_dir = environment_dir
        self._process = process
        self._pid = process.pid if process is not None else pid or 0  # 0: already ended
        self._limits = limits
        self._started = time.monotonic() - running_for
        self._ended: float | None = None
        self.timed_out = False
        self.stopped = False
        self._kill_timer: asyncio.TimerHandle | None = None
        loop = asyncio.get_running_loop()
        self._exit = (
            _watch_exit(loop, process) if process is not None else _watch_pid(loop, self._pid)
        )
        self._result = loop.create_task(self._supervise(), name=f"sandbox-{run_id}")

    @property
    def run_id(self) -> str:
        """The spec's run id."""
        return self._run_id

    @property
    def pid(self) -> int:
        """Host pid of the outermost process."""
        return self._pid

    async def wait(self) -> SandboxResult:
        """The run's result, once it has ended and been torn down."""
        return await asyncio.shield(self._result)

    def terminate(self, grace_seconds: float = 10.0) -> None:
        """SIGTERM the run's processes, SIGKILL whatever is left after ``grace_seconds``."""
        if self._exit.done():
            return
        self.stopped = True
        self._signal_run(signal.SIGTERM)
        if self._kill_timer is None:
            loop = asyncio.get_running_loop()
            self._kill_timer = loop.call_later(max(grace_seconds, 0.0), self.kill)

    def kill(self) -> None:
        """SIGKILL every process of the run at once."""
        if self._exit.done():
            return
        if not self.timed_out:
            self.stopped = True
        self._kill_everything()

    def stats(self) -> SandboxStats:
        """A live reading."""
        return self._stats(self.wall_seconds)

    @property
    def wall_seconds(self) -> float:
        """Seconds from start to exit (or to now while running)."""
        return (self._ended or time.monotonic()) - self._started

    async def _supervise(self) -> SandboxResult:
        deadline = self._started + self._limits.max_run_seconds
        killed_at: float | None = None
        while not self._exit.done():
            now = time.monotonic()
            if now >= deadline and not self.timed_out and not self.stopped:
                self.timed_out = True
                killed_at = now
                self._kill_everything()
            elif killed_at is not None and now - killed_at > _KILL_SETTLE_SECONDS:
                logger.error(
                    "run %s survived SIGKILL for %.0f s; killing again",
                    self._run_id,
                    now - killed_at,
                )
                killed_at = now
                self._kill_everything()
            past = self.timed_out or now >= deadline
            wait = SAMPLE_SECONDS if past else min(SAMPLE_SECONDS, deadline - now)
            await asyncio.wait({self._exit}, timeout=wait)
            if not self._exit.done():  # an ended run is read once more by _finish
                self._sample()
        self._ended = time.monotonic()
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        status = self._exit.result()
        return await asyncio.to_thread(self._finish, status)

    @abstractmethod
    def _kill_everything(self) -> None: ...

    @abstractmethod
    def _signal_run(self, signum: int) -> None: ...

    @abstractmethod
    def _sample(self) -> None: ...

    @abstractmethod
    def _stats(self, wall_seconds: float) -> SandboxStats: ...

    @abstractmethod
    def _finish(self, status: ExitStatus) -> SandboxResult:
        """Collect the result and tear down; runs on a worker thread."""


def exit_code_and_signal(raw: int | None) -> tuple[int | None, int | None]:
    """``(exit code, signal)`` of a raw wait status; ``(None, None)`` if unknown."""
    if raw is None:
        return None, None
    if os.WIFSIGNALED(raw):
        return None, os.WTERMSIG(raw)
    return os.WEXITSTATUS(raw), None


def _watch_exit(
    loop: asyncio.AbstractEventLoop, process: subprocess.Popen[bytes]
) -> asyncio.Future[ExitStatus]:
    """Our child's exit, reaped for its wait status."""
    try:
        pidfd = os.pidfd_open(process.pid)
    except OSError:  # kernels before 5.3: one thread blocks in wait4
        return asyncio.ensure_future(loop.run_in_executor(None, _reap, process))
    return _when_readable(loop, pidfd, lambda: _reap(process))


def _watch_pid(loop: asyncio.AbstractEventLoop, pid: int) -> asyncio.Future[ExitStatus]:
    """The exit of a process that is not our child: readable pidfd, unknown status."""
    try:
        if pid <= 0:
            raise ProcessLookupError(pid)
        pidfd = os.pidfd_open(pid)
    except OSError:  # already gone
        gone: asyncio.Future[ExitStatus] = loop.create_future()
        gone.set_result(ExitStatus(None))
        return gone
    return _when_readable(loop, pidfd, lambda: ExitStatus(None))


def _when_readable(
    loop: asyncio.AbstractEventLoop, pidfd: int, status: Callable[[], ExitStatus]
) -> asyncio.Future[ExitStatus]:
    """Resolve to ``status()`` once the pidfd says its process exited (and close it)."""
    future: asyncio.Future[ExitStatus] = loop.create_future()

    def exited() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        if not future.done():
            future.set_result(status())

    loop.add_reader(pidfd, exited)
    return future


def _reap(process: subprocess.Popen[bytes]) -> ExitStatus:
    try:
        _, raw, usage = os.wait4(process.pid, 0)
    except ChildProcessError:
        logger.warning("process %d was reaped elsewhere; its exit status is unknown", process.pid)
        with contextlib.suppress(Exception):
            process.returncode = -1  # keep Popen from waiting on (or warning about) it again
        return ExitStatus(None)
    process.returncode = os.waitstatus_to_exitcode(raw)
    return ExitStatus(raw, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024)
