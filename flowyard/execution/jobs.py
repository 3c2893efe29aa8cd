"""What the execution plane is handed for one claimed run: plain data, no ORM."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from flowyard.schemas.flow_runs import ExecutionReport
from flowyard.schemas.states import SetStateResult, StateCreate, StateType


@dataclass(frozen=True)
class RunJob:
    run_id: uuid.UUID
    workspace_id: uuid.UUID
    flow_name: str
    deployment_name: str
    entrypoint: str
    source: Mapping[str, Any]
    job_variables: Mapping[str, Any]
    isolation: str = "strict"
    pull_steps: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    parameters: Mapping[str, Any] = field(default_factory=dict)
    # time.monotonic() just before the run was claimed (so after it was created), if known
    claimed_at: float | None = None
    # time.monotonic() when the run was created (from its timestamp), if known
    created_at: float | None = None
    run_name: str | None = None
    deployment_id: uuid.UUID | None = None

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.deployment_name}"


class RunRecorder(Protocol):
    """How the execution plane writes back: logs, states, telemetry, and reads secrets.

    The dispatcher's recorder writes through the server's ops; tests use
    ``flowyard.testing.FakeRecorder``.
    """

    async def log(self, run_id: uuid.UUID, message: str, *, level: int = 20) -> None: ...

    async def set_state(self, run_id: uuid.UUID, state: StateCreate) -> SetStateResult: ...

    async def report(
        self, run_id: uuid.UUID, report: ExecutionReport, *, teardown: bool = False
    ) -> None: ...

    async def current_state(self, run_id: uuid.UUID) -> StateType: ...

    async def cancel_requested(self, run_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        """Which of ``run_ids`` are CANCELLING (one read for all of them)."""
        ...

    async def flush(self) -> None:
        """Write what is held (log lines are written in batches); before shutting down."""
        ...

    async def secret(self, workspace_id: uuid.UUID, name: str) -> str:
        """The secret's value; raises LookupError when the workspace has none of that name."""
        ...

    async def run_token(self, run_id: uuid.UUID) -> str: ...

    def knows(self, run_id: uuid.UUID, workspace_id: uuid.UUID) -> None:
        """The run's workspace, as its claim read it (a recorder may skip reading it)."""
        ...
