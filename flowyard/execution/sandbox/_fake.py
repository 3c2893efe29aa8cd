"""A sandbox for tests of its callers: scripted results, or a plain subprocess.

``FakeSandbox()`` runs each spec as an unconfined process in a temporary
state dir (placeholders expand to host paths), so a caller's real runner can
run without root. ``fake.script(run_id, result)`` makes the next start of
that run end with ``result`` after ``duration`` seconds without running
anything; ``terminate``/``kill`` end a scripted run early as ``STOPPED``.
Every started spec is kept in ``started``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
from pathlib import Path

from flowyard.execution.sandbox import _unconfined
from flowyard.execution.sandbox._protocol import Isolation, SandboxHandle
from flowyard.execution.sandbox._result import Ending, SandboxResult, SandboxStats
from flowyard.execution.sandbox._spec import SandboxSpec


class FakeSandbox:
    """See the module docstring."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self._state = state_dir or Path(tempfile.mkdtemp(prefix="flowyard-fake-sandbox-"))
        (self._state / "runs").mkdir(parents=True, exist_ok=True)
        self._scripts: dict[str, tuple[SandboxResult, float]] = {}
        self.started: list[SandboxSpec] = []
        self.memory_pressure: str | None = None

    @property
    def isolation(self) -> Isolation:
        """Always ``none``: nothing is isolated."""
        return "none"

    def pressure(self) -> str | None:
        """``memory_pressure``, which tests set to hold runs back."""
        return self.memory_pressure

    async def adopt(self, run_id: str) -> SandboxHandle | None:
        """Nothing outlives a fake sandbox's server."""
        return None

    def release_unadopted(self) -> list[str]:
        """Nothing to release."""
        return []

    def script(self, run_id: str, result: SandboxResult, *, duration: float = 0.0) -> None:
        """The next start of ``run_id`` ends with ``result`` after ``duration`` seconds."""
        self._scripts[run_id] = (result, duration)

    async def start(self, spec: SandboxSpec) -> SandboxHandle:
        """Start ``spec``: scripted if a result was scripted for its run id, else as a process."""
        self.started.append(spec)
        scripted = self._scripts.pop(spec.run_id, None)
        if scripted is not None:
            return ScriptedHandle(spec.run_id, *scripted)
        process, resources = await asyncio.to_thread(_unconfined.spawn, spec, self._state)
        return _unconfined.UnconfinedHandle(spec, process, resources)


class ScriptedHandle:
    """A run that does nothing but end as scripted."""

    def __init__(self, run_id: str, result: SandboxResult, duration: float) -> None:
        self._run_id = run_id
        self.environment_dir: Path | None = None
        self._result = dataclasses.replace(result, run_id=run_id)
        self._started = time.monotonic()
        self._stopped = asyncio.Event()
        self._duration = duration

    @property
    def run_id(self) -> str:
        """The spec's run id."""
        return self._run_id

    @property
    def pid(self) -> int:
        """No process exists: 0."""
        return 0

    async def wait(self) -> SandboxResult:
        """The scripted result, or ``STOPPED`` if stopped first."""
        try:
            await asyncio.wait_for(self._stopped.wait(), timeout=self._duration)
        except TimeoutError:
            return self._result
        return dataclasses.replace(
            self._result, ending=Ending.STOPPED, exit_code=None, signal=15,
            crash_reason="stopped on request", wall_seconds=time.monotonic() - self._started,
        )  # fmt: skip

    def terminate(self, grace_seconds: float = 10.0) -> None:
        """End the run as stopped."""
        self._stopped.set()

    def kill(self) -> None:
        """End the run as stopped."""
        self._stopped.set()

    def stats(self) -> SandboxStats:
        """Zeros, with the elapsed time."""
        return SandboxStats(0, 0, 0.0, 0, 0, 1, time.monotonic() - self._started)

    def read_output(self, offset: int = 0, limit: int = 65536) -> bytes:
        """The scripted result's output tail."""
        return self._result.output_tail.encode()[offset : offset + limit]
