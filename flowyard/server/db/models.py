"""The relational model: one schema for SQLite and PostgreSQL.

Every tenant-owned row carries ``workspace_id`` so that every query can be
scoped by it; cross-workspace reads are impossible by construction, not by
remembering a filter. Timestamps are aware UTC. Occupancy of concurrency
limits is *derived* from ``flow_runs.state_type`` — there is no counter table
that could drift.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flowyard.server.db._types import JSONType, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime,
        dict[str, Any]: JSONType,
        list[str]: JSONType,
        list[Any]: JSONType,
    }


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=uuid.uuid4)


def _created() -> Mapped[datetime]:
    return mapped_column(default=utcnow)


def _ws_fk() -> Mapped[uuid.UUID]:
    return mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created: Mapped[datetime] = _created()
    monthly_limit_minutes: Mapped[int | None] = mapped_column(Integer, default=None)
    hard_limit: Mapped[bool] = mapped_column(Boolean, default=False)
    concurrency_limit: Mapped[int | None] = mapped_column(Integer, default=None)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = _uuid_pk()
    workspace_id: Mapped[uuid.UUID] = _ws_fk()
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = _created()
    last_used: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class WorkPool(Base):
    __tablename__ = "work_pools"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    workspace_id: Mapped[uuid.UUID] = _ws_fk()
    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text, default="")
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    concurrency_limit: Mapped[int | None] = mapped_column(Integer, default=None)
    base_job_template: Mapped[dict[str, Any]] = mapped_column(default=dict)
    isolation: Mapped[str] = mapped_column(String(10), default="strict")
    created: Mapped[datetime] = _created()
    updated: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Deployment(Base):
    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("workspace_id", "flow_name", "name"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    workspace_id: Mapped[uuid.UUID] = _ws_fk()
    flow_name: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    work_pool_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("work_pools.id", ondelete="SET NULL"), index=True, default=None
    )
    source: Mapped[dict[str, Any]] = mapped_column(default=dict)
    entrypoint: Mapped[str] = mapped_column(String(500))
    pull_steps: Mapped[list[Any]] = mapped_column(default=list)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    parameter_schema: Mapped[dict[str, Any]] = mapped_column(default=dict)
    job_variables: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tags: Mapped[list[str]] = mapped_column(default=list)
    version: Mapped[str | None] = mapped_column(String(100), default=None)
    description: Mapped[str] = mapped_column(Text, default="")
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    concurrency_limit: Mapped[int | None] = mapped_column(Integer, default=None)
    created: Mapped[datetime] = _created()
    updated: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DeploymentSchedule(Base):
    __tablename__ = "deployment_schedules"

    id: Mapped[uuid.UUID] = _uuid_pk()
    workspace_id: Mapped[uuid.UUID] = _ws_fk()
    deployment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    schedule: Mapped[dict[str, Any]] = mapped_column(default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    catchup: Mapped[bool] = mapped_column(Boolean, default=False)
    # The scheduler's high-water mark: runs up to here exist (idempotent fills).
    scheduled_until: Mapped[datetime | None] = mapped_column(default=None)
    created: Mapped[datetime] = _created()


class FlowRun(Base):
    __tablename__ = "flow_runs"
    __table_args__ = (
        UniqueConstraint("deployment_id", "idempotency_key"),
        Index("ix_flow_runs_claim", "work_pool_id", "state_type", "next_scheduled_start_time"),
        Index("ix_flow_runs_ws_created", "workspace_id", "created"),
        Index("ix_flow_runs_ws_state", "workspace_id", "state_type"),
        Index("ix_flow_runs_state_heartbeat", "state_type", "heartbeat_at"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    workspace_id: Mapped[uuid.UUID] = _ws_fk()
    deployment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True, default=None
    )
    work_pool_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("work_pools.id", ondelete="SET NULL"), default=None
    )
    parent_task_run_id: Mapped[uuid.UUID | None] = mapped_column(default=None, index=True)
    # The top-level run of a tree of subflows: a run token of the root may act on it.
    root_flow_run_id: Mapped[uuid.UUID | None] = mapped_column(default=None, index=True)
    name: Mapped[str] = mapped_column(String(200))
    flow_name: Mapped[str] = mapped_column(String(200))
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    job_variables: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tags: Mapped[list[str]] = mapped_column(default=list)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    # Current state, denormalised from flow_run_states for filtering and claims.
    state_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    state_type: Mapped[str] = mapped_column(String(20))
    state_name: Mapped[str] = mapped_column(String(50))
    state_message: Mapped[str] = mapped_column(Text, default="")
    state_timestamp: Mapped[datetime] = mapped_column(default=utcnow)
    expected_start_time: Mapped[datetime | None] = mapped_column(default=None)
    next_scheduled_start_time: Mapped[datetime | None] = mapped_column(default=None)
    start_time: Mapped[datetime | None] = mapped_column(default=None)
    end_time: Mapped[datetime | None] = mapped_column(default=None)
    run_count: Mapped[int] = mapped_column(Integer, default=0)
    auto_scheduled: Mapped[bool] = mapped_column(Boolean, default=False)
    # What execution records.
    resolved_commit: Mapped[str | None] = mapped_column(String(64), default=None)
    backend: Mapped[str | None] = mapped_column(String(50), default=None)
    sandbox_id: Mapped[str | None] = mapped_column(String(100), default=None)
    dispatcher_id: Mapped[str | None] = mapped_column(String(100), default=None)
    process_id: Mapped[int | None] = mapped_column(Integer, default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    exit_code: Mapped[int | None] = mapped_column(Integer, default=None)
    peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    peak_storage_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    cpu_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    compute_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    crash_reason: Mapped[str | None] = mapped_column(Text, default=None)
    created: Mapped[datetime] = _created()
    updated: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class FlowRunState(Base):
    __tablename__ = "flow_run_states"
    __table_args__ = (Index("ix_flow_run_states_run_ts", "flow_run_id", "timestamp"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    flow_run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("flow_runs.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(50))
    message: Mapped[str] = mapped_column(Text, default="")
    timestamp: Mapped[datetime] = mapped_column(default=utcnow)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)


class TaskRun(Base):
    __tablename__ = "task_runs"
    __table_args__ = (Index("ix_task_runs_run_created", "flow_run_id", "created"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    workspace_id: Mapped[uuid.UUID] = _ws_fk()
    flow_run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("flow_runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    task_key: Mapped[str] = mapped_column(String(200), default="")
    dynamic_key: Mapped[str] = mapped_column(String(200), default="")
    cache_key: Mapped[str | None] = mapped_column(String(200), default=None)
    tags: Mapped[list[str]] = mapped_column(default=list)
    state_type: Mapped[str] = mapped_column(String(20))
    state_name: Mapped[str] = mapped_column(String(50))
    state_message: Mapped[str] = mapped_column(Text, default="")
    state_timestamp: Mapped[datetime] = mapped_column(default=utcnow)
    run_count: Mapped[int] = mapped_column(Integer, default=0)
    max_retries: Mapped[int] = mapped_column(Integer, default=0)
    start_time: Mapped[datetime | None] = mapped_column(default=None)
    end_time: Mapped[datetime | None] = mapped_column(default=None)
    created: Mapped[datetime] = _created()


class TaskRunState(Base):
    __tablename__ = "task_run_states"
    __table_args__ = (Index("ix_task_run_states_run_ts", "task_run_id", "timestamp"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    task_run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("task_runs.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(50))
    message: Mapped[str] = mapped_column(Text, default="")
    timestamp: Mapped[datetime] = mapped_column(default=utcnow)


class Log(Base):
    __tablename__ = "logs"
    __table_args__ = (Index("ix_logs_run_id", "flow_run_id", "id"),)

    # An integer key gives a total order per run: the read cursor.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    flow_run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("flow_runs.id", ondelete="CASCADE"))
    task_run_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    level: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200), default="")
    message: Mapped[str] = mapped_column(Text)
    timestamp: Mapped[datetime] = mapped_column(default=utcnow)


class UsageRecord(Base):
    """One row per flow run's compute. Closed once, never changed after."""

    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_records_ws_started", "workspace_id", "started_at"),
        UniqueConstraint("flow_run_id", "attempt"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    # No foreign key: the ledger outlives deleted runs.
    flow_run_id: Mapped[uuid.UUID] = mapped_column()
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    deployment_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    seconds: Mapped[float | None] = mapped_column(Float, default=None)
    billed_minutes: Mapped[int | None] = mapped_column(Integer, default=None)


class Variable(Base):
    __tablename__ = "variables"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    workspace_id: Mapped[uuid.UUID] = _ws_fk()
    name: Mapped[str] = mapped_column(String(255))
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"value": <json>}
    tags: Mapped[list[str]] = mapped_column(default=list)
    created: Mapped[datetime] = _created()
    updated: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Artifact(Base):
    __tablename__ = "artifacts"
    __table_args__ = (
        Index("ix_artifacts_workspace_key_created", "workspace_id", "key", "created"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    workspace_id: Mapped[uuid.UUID] = _ws_fk()
    key: Mapped[str | None] = mapped_column(String(200), default=None)
    type: Mapped[str] = mapped_column(String(20))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"value": <json>}
    flow_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("flow_runs.id", ondelete="CASCADE"), default=None, index=True
    )
    # Not a foreign key: an artifact may be created before its task run is reported.
    task_run_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    created: Mapped[datetime] = _created()
    updated: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ConcurrencyLimit(Base):
    __tablename__ = "concurrency_limits"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    workspace_id: Mapped[uuid.UUID] = _ws_fk()
    name: Mapped[str] = mapped_column(String(200))
    limit: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    slot_decay_per_second: Mapped[float] = mapped_column(Float, default=0.0)
    created: Mapped[datetime] = _created()
    updated: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ConcurrencyLease(Base):
    """Slots of one limit held until ``expires_at``; one lease id spans the limits of a take."""

    __tablename__ = "concurrency_leases"
    __table_args__ = (Index("ix_concurrency_leases_limit_expires", "limit_id", "expires_at"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    lease_id: Mapped[uuid.UUID] = mapped_column(index=True)
    limit_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("concurrency_limits.id", ondelete="CASCADE")
    )
    slots: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column()
    flow_run_id: Mapped[uuid.UUID | None] = mapped_column(default=None, index=True)
    created: Mapped[datetime] = _created()


class Secret(Base):
    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    workspace_id: Mapped[uuid.UUID] = _ws_fk()
    name: Mapped[str] = mapped_column(String(255))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created: Mapped[datetime] = _created()
    updated: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Result(Base):
    """Per-workspace result store for cached and persisted task results."""

    __tablename__ = "results"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    workspace_id: Mapped[uuid.UUID] = _ws_fk()
    key: Mapped[str] = mapped_column(String(255))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    expires: Mapped[datetime | None] = mapped_column(default=None)
    created: Mapped[datetime] = _created()
