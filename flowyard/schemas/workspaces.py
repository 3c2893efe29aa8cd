from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import Field

from flowyard.schemas._base import INT32_MAX, Out, Wire


class WorkspaceCreate(Wire):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    monthly_limit_minutes: int | None = Field(default=None, ge=0, le=INT32_MAX)
    concurrency_limit: int | None = Field(default=None, ge=0, le=INT32_MAX)


class WorkspaceUpdate(Wire):
    monthly_limit_minutes: int | None = Field(default=None, ge=0, le=INT32_MAX)
    hard_limit: bool | None = None
    concurrency_limit: int | None = Field(default=None, ge=0, le=INT32_MAX)
    clear_monthly_limit: bool = False
    clear_concurrency_limit: bool = False


class Workspace(Out):
    id: uuid.UUID
    name: str
    created: datetime
    monthly_limit_minutes: int | None
    hard_limit: bool
    concurrency_limit: int | None


class ApiKeyCreate(Wire):
    name: str = Field(min_length=1, max_length=100)
    admin: bool = False
    workspace_id: uuid.UUID | None = None


class ApiKey(Out):
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    prefix: str
    is_admin: bool
    created: datetime
    last_used: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKey):
    key: str  # shown once


class Me(Out):
    workspace: Workspace
    kind: str  # "api_key" or "run_token"
    is_admin: bool
    flow_run_id: uuid.UUID | None = None


class UsageRecord(Out):
    id: uuid.UUID
    flow_run_id: uuid.UUID
    deployment_id: uuid.UUID | None
    started_at: datetime
    ended_at: datetime | None
    seconds: float | None
    billed_minutes: int | None


class UsageBucket(Out):
    key: str  # a day (YYYY-MM-DD) or a deployment name
    runs: int
    seconds: float
    billed_minutes: int


class UsageSummary(Out):
    month: str  # YYYY-MM
    used_minutes: int
    open_runs: int
    limit_minutes: int | None
    remaining_minutes: int | None
    resets_on: date
    by: str | None = None
    buckets: list[UsageBucket] = Field(default_factory=list)
