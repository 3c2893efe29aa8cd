"""States as they cross the wire."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from flowyard.schemas._base import Out, Wire
from flowyard.schemas.times import UtcTime


class StateType(StrEnum):
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CRASHED = "CRASHED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"
    PAUSED = "PAUSED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def is_active(self) -> bool:
        """Occupies a concurrency slot."""
        return self in ACTIVE_STATES


TERMINAL_STATES = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}
)
# Runs in these states hold a concurrency slot. Derived from the run rows,
# never counted separately, so slots cannot leak.
ACTIVE_STATES = frozenset({StateType.PENDING, StateType.RUNNING, StateType.CANCELLING})

DEFAULT_NAMES = {
    StateType.SCHEDULED: "Scheduled",
    StateType.PENDING: "Pending",
    StateType.RUNNING: "Running",
    StateType.COMPLETED: "Completed",
    StateType.FAILED: "Failed",
    StateType.CRASHED: "Crashed",
    StateType.CANCELLING: "Cancelling",
    StateType.CANCELLED: "Cancelled",
    StateType.PAUSED: "Paused",
}


class StateCreate(Wire):
    type: StateType
    name: str | None = Field(default=None, max_length=50)
    message: str = Field(default="", max_length=20_000)
    timestamp: UtcTime | None = None
    data: dict[str, Any] | None = None
    # Optimistic concurrency: the state the writer believes is current.
    expected_state_id: uuid.UUID | None = None
    # Orchestration: "force" bypasses rules (operators only); see the policy.
    force: bool = False


class State(Out):
    id: uuid.UUID
    type: StateType
    name: str
    message: str = ""
    timestamp: datetime
    data: dict[str, Any] | None = None


class Verdict(StrEnum):
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    WAIT = "WAIT"
    ABORT = "ABORT"


class SetStateResult(Out):
    status: Verdict
    state: State | None = None
    reason: str = ""
    retry_after_seconds: float | None = None
