"""Task runs as they cross the wire: batched upserts from the runner, and reads.

A batch is what a running flow reports in one go: task-run states and, in the
same request, its log lines. A fast task's PENDING, RUNNING and COMPLETED may
travel as one entry (its latest state) carrying the states before it in
``previous_states``: a third of the entries, the same history stored.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field

from flowyard.schemas._base import Out, Wire
from flowyard.schemas.logs import MAX_BATCH as MAX_LOG_BATCH
from flowyard.schemas.logs import LogCreate, ReportText
from flowyard.schemas.states import StateType
from flowyard.schemas.times import UtcTime

# States per batch: entries plus their previous states.
MAX_BATCH = 10_000
MAX_COUNT = 1_000_000

Tag = Annotated[ReportText, Field(min_length=1, max_length=100)]


class PreviousState(Wire):
    """A state a task run entered before its entry's own, reported with it."""

    type: StateType
    name: ReportText | None = Field(default=None, min_length=1, max_length=50)
    message: ReportText = Field(default="", max_length=20_000)
    timestamp: UtcTime


class TaskRunUpsert(Wire):
    """Create a task run or move it to a new state; batched by the SDK.

    The same task run may appear several times in one batch, and an entry may
    carry the states its task run went through before its own in
    ``previous_states``; every state becomes a row of the history, and all of
    a task run's states in the batch apply in timestamp order. ``run_count``
    is the sender's count of attempts; the server keeps the larger of it and
    its own count of entries into RUNNING.
    """

    id: uuid.UUID
    flow_run_id: uuid.UUID
    name: ReportText = Field(min_length=1, max_length=200)
    task_key: ReportText = Field(default="", max_length=200)
    dynamic_key: ReportText = Field(default="", max_length=200)
    cache_key: ReportText | None = Field(default=None, max_length=200)
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    state_type: StateType
    state_name: ReportText | None = Field(default=None, min_length=1, max_length=50)
    state_message: ReportText = Field(default="", max_length=20_000)
    timestamp: UtcTime
    run_count: int = Field(default=0, ge=0, le=MAX_COUNT)
    max_retries: int = Field(default=0, ge=0, le=MAX_COUNT)
    previous_states: list[PreviousState] = Field(default_factory=list, max_length=MAX_BATCH)


def _states_within_limit(entries: list[TaskRunUpsert]) -> list[TaskRunUpsert]:
    states = len(entries) + sum(len(e.previous_states) for e in entries)
    if states > MAX_BATCH:
        raise ValueError(
            f"at most {MAX_BATCH} states per batch, counting previous_states; got {states}"
        )
    return entries


class TaskRunBatch(Wire):
    """Task-run states and log lines of any runs the caller may write to, stored together.

    Log lines are stored as sent, after the same checks as ``POST /logs``;
    unlike task-run states they are not deduplicated when a batch is re-sent.
    """

    task_runs: Annotated[list[TaskRunUpsert], AfterValidator(_states_within_limit)] = Field(
        default_factory=list, max_length=MAX_BATCH
    )
    logs: list[LogCreate] = Field(default_factory=list, max_length=MAX_LOG_BATCH)


class TaskRunBatchResult(Wire):
    """What a batch changed. Re-sending a batch changes nothing the second time."""

    created: int
    # Existing task runs whose current state moved.
    updated: int
    # Rows added to the state histories.
    states_written: int
    # Entries already recorded (a re-sent batch) and so skipped.
    duplicates: int


class TaskRun(Out):
    id: uuid.UUID
    flow_run_id: uuid.UUID
    name: str
    task_key: str
    dynamic_key: str
    cache_key: str | None
    tags: list[str]
    state_type: StateType
    state_name: str
    state_message: str
    state_timestamp: datetime
    run_count: int
    max_retries: int
    start_time: datetime | None
    end_time: datetime | None
    # When the runner created it: the timestamp of its first reported state.
    created: datetime


class TaskRunStateOut(Out):
    id: uuid.UUID
    type: StateType
    name: str
    message: str
    timestamp: datetime
