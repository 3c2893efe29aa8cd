"""In-package fakes of Flowyard's pluggable parts, for tests of their callers.

- :class:`FakeSandbox` — a sandbox that runs plain processes or scripted endings.
- :class:`RecordingReporter` — an SDK reporter that keeps every event.
- :class:`FakeRecorder` — the execution plane's write-back, in memory.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field

from flowyard.execution.sandbox import FakeSandbox
from flowyard.schemas.flow_runs import ExecutionReport
from flowyard.schemas.states import SetStateResult, StateCreate, StateType, Verdict
from flowyard.sdk import RecordingReporter

__all__ = ["FakeRecorder", "FakeSandbox", "RecordingReporter"]


@dataclass
class FakeRecorder:
    """Records what the pipeline writes; states follow a minimal rule (no leaving terminal)."""

    secrets: dict[str, str] = field(default_factory=dict)
    logs: list[tuple[uuid.UUID, int, str]] = field(default_factory=list)
    states: dict[uuid.UUID, list[StateCreate]] = field(default_factory=dict)
    reports: list[tuple[uuid.UUID, ExecutionReport, bool]] = field(default_factory=list)
    current: dict[uuid.UUID, StateType] = field(default_factory=dict)

    async def log(self, run_id: uuid.UUID, message: str, *, level: int = 20) -> None:
        self.logs.append((run_id, level, message))

    async def set_state(self, run_id: uuid.UUID, state: StateCreate) -> SetStateResult:
        now = self.current.get(run_id, StateType.PENDING)
        if now.is_terminal:
            return SetStateResult(status=Verdict.REJECT, reason=f"run is already {now}")
        self.states.setdefault(run_id, []).append(state)
        self.current[run_id] = state.type
        return SetStateResult(status=Verdict.ACCEPT)

    async def report(
        self, run_id: uuid.UUID, report: ExecutionReport, *, teardown: bool = False
    ) -> None:
        self.reports.append((run_id, report, teardown))

    async def current_state(self, run_id: uuid.UUID) -> StateType:
        return self.current.get(run_id, StateType.PENDING)

    async def cancel_requested(self, run_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        return {r for r in run_ids if self.current.get(r) is StateType.CANCELLING}

    async def flush(self) -> None:
        return None

    def knows(self, run_id: uuid.UUID, workspace_id: uuid.UUID) -> None:
        return None

    async def secret(self, workspace_id: uuid.UUID, name: str) -> str:
        return self.secrets[name]

    async def run_token(self, run_id: uuid.UUID) -> str:
        return f"fyr_{run_id.hex}_fake"

    def messages(self, run_id: uuid.UUID) -> list[str]:
        return [message for rid, _, message in self.logs if rid == run_id]

    def final(self, run_id: uuid.UUID) -> StateCreate:
        return self.states[run_id][-1]
