"""The seam between callers (dispatcher, backends) and a sandbox implementation."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from flowyard.execution.sandbox._result import SandboxResult, SandboxStats
from flowyard.execution.sandbox._spec import SandboxSpec

Isolation = Literal["strict", "none"]


class SandboxHandle(Protocol):
    """A started run. Methods other than :meth:`wait` must be called on the loop's thread."""

    @property
    def run_id(self) -> str:
        """The spec's run id."""
        ...

    environment_dir: Path | None
    """The run's environment (the host path), so a caller can hold it in use."""

    @property
    def pid(self) -> int:
        """Host pid of the sandbox's outermost process."""
        ...

    async def wait(self) -> SandboxResult:
        """Wait for the end of the run (and its teardown) and return how it ended."""
        ...

    def terminate(self, grace_seconds: float = 10.0) -> None:
        """Ask the run's processes to stop (SIGTERM); kill them after ``grace_seconds``."""
        ...

    def kill(self) -> None:
        """Stop every process of the run at once (SIGKILL)."""
        ...

    def stats(self) -> SandboxStats:
        """Current memory, CPU, storage and process counts."""
        ...

    def read_output(self, offset: int = 0, limit: int = 65536) -> bytes:
        """Up to ``limit`` bytes of the process's stdout+stderr from ``offset`` on."""
        ...


class Sandbox(Protocol):
    """Starts runs in isolation; ``isolation`` says how much."""

    @property
    def isolation(self) -> Isolation:
        """``strict`` or ``none``."""
        ...

    async def start(self, spec: SandboxSpec) -> SandboxHandle:
        """Prepare the sandbox for ``spec`` and start its process."""
        ...

    def pressure(self) -> str | None:
        """Why a new run should wait for the host's memory now, or ``None`` if it may start."""
        ...

    async def adopt(self, run_id: str) -> SandboxHandle | None:
        """Supervise a run a previous server process started, if its process still lives."""
        ...

    def release_unadopted(self) -> list[str]:
        """Stop the runs left by a previous server that nobody adopted; their run ids."""
        ...
