"""Flow runs: what was asked, what happened, and what execution measured."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from flowyard.schemas._base import INT32_MAX, INT64_MAX, Out, Wire
from flowyard.schemas.states import StateCreate, StateType
from flowyard.schemas.times import UtcTime

Tag = Annotated[str, Field(min_length=1, max_length=100)]


class FlowRunCreate(Wire):
    """A run of a deployment."""

    parameters: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, max_length=200)
    tags: list[Tag] = Field(default_factory=list)
    scheduled_time: UtcTime | None = None
    job_variables: dict[str, Any] = Field(default_factory=dict)
    name: str | None = Field(default=None, max_length=200)
    parent_task_run_id: uuid.UUID | None = None


class AdHocFlowRunCreate(Wire):
    """A run recorded by the SDK for a flow called directly (no deployment)."""

    id: uuid.UUID | None = None
    flow_name: str = Field(min_length=1, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    parameters: dict[str, Any] = Field(default_factory=dict)
    tags: list[Tag] = Field(default_factory=list)
    parent_task_run_id: uuid.UUID | None = None
    state: StateCreate | None = None


class ExecutionReport(Wire):
    """What the execution plane records on a run (dispatcher or worker)."""

    resolved_commit: str | None = Field(default=None, max_length=64)
    backend: str | None = Field(default=None, max_length=50)
    sandbox_id: str | None = Field(default=None, max_length=100)
    process_id: int | None = Field(default=None, ge=-INT32_MAX - 1, le=INT32_MAX)
    exit_code: int | None = Field(default=None, ge=-INT32_MAX - 1, le=INT32_MAX)
    peak_memory_bytes: int | None = Field(default=None, ge=0, le=INT64_MAX)
    peak_storage_bytes: int | None = Field(default=None, ge=0, le=INT64_MAX)
    cpu_seconds: float | None = Field(default=None, ge=0)
    crash_reason: str | None = Field(default=None, max_length=2000)
    heartbeat: bool = False


class FlowRun(Out):
    id: uuid.UUID
    name: str
    flow_name: str
    deployment_id: uuid.UUID | None
    deployment_name: str | None = None
    work_pool_id: uuid.UUID | None
    work_pool_name: str | None = None
    parent_task_run_id: uuid.UUID | None
    parameters: dict[str, Any]
    job_variables: dict[str, Any]
    tags: list[str]
    idempotency_key: str | None
    state_id: uuid.UUID | None
    state_type: StateType
    state_name: str
    state_message: str
    state_timestamp: datetime
    expected_start_time: datetime | None
    next_scheduled_start_time: datetime | None
    start_time: datetime | None
    end_time: datetime | None
    run_count: int
    resolved_commit: str | None
    backend: str | None
    sandbox_id: str | None
    exit_code: int | None
    peak_memory_bytes: int | None
    peak_storage_bytes: int | None
    cpu_seconds: float | None
    compute_seconds: float | None
    crash_reason: str | None
    created: datetime
    updated: datetime


SORTS = ("created_desc", "created_asc", "expected_start_asc", "expected_start_desc")
