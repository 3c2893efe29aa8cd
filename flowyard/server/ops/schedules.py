"""Schedules' side of the database: runs created ahead, pruned, and marked Late.

Idempotency rests on the database, not on timing: every auto-scheduled run
carries the key ``scheduled:<schedule id>:<occurrence>``, unique per
deployment, so a second scheduler (after a restart, or another replica on
PostgreSQL) can never add a duplicate. Each insert runs in a SAVEPOINT and a
unique-constraint violation there means "another writer got there first",
not an error. On PostgreSQL the schedule row is additionally locked with
``FOR UPDATE SKIP LOCKED`` so replicas split the work instead of racing for it.

``INSERT ... ON CONFLICT DO NOTHING`` was rejected: runs are created through
``flow_runs.create_flow_run`` so parameters, job variables, tags and the
first state row are exactly those of any other run.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.schemas.flow_runs import FlowRunCreate
from flowyard.schemas.states import DEFAULT_NAMES, StateCreate, StateType, Verdict
from flowyard.server.db import models as m
from flowyard.server.db.dialect import dialect_of, lock_rows
from flowyard.server.ops import flow_runs
from flowyard.server.ops.auth import Principal

logger = logging.getLogger("flowyard.scheduler")

KEY_PREFIX = "scheduled:"
AUTO_SCHEDULED_TAG = "auto-scheduled"
LATE_NAME = "Late"
_SCHEDULED = StateType.SCHEDULED.value


def idempotency_key(schedule_id: uuid.UUID, occurrence: datetime) -> str:
    """The run key of one occurrence of one schedule: the same on every replica."""
    return f"{KEY_PREFIX}{schedule_id}:{occurrence.astimezone(UTC).isoformat()}"


def schedule_of_key(key: str | None) -> uuid.UUID | None:
    """The schedule an auto-scheduled run's key names, if it names one."""
    if key is None or not key.startswith(KEY_PREFIX):
        return None
    try:
        return uuid.UUID(key[len(KEY_PREFIX) :].split(":", 1)[0])
    except ValueError:
        return None


def _system(workspace_id: uuid.UUID) -> Principal:
    return Principal(workspace_id=workspace_id, kind="api_key", is_admin=True)


@dataclass(frozen=True)
class ScheduleSnapshot:
    """A schedule as read for planning, outside any lock."""

    id: uuid.UUID
    deployment_id: uuid.UUID
    schedule: dict[str, Any]
    catchup: bool
    scheduled_until: datetime | None


def _fillable() -> Any:
    return (
        select(m.DeploymentSchedule)
        .join(m.Deployment, m.Deployment.id == m.DeploymentSchedule.deployment_id)
        .where(m.DeploymentSchedule.active.is_(True), m.Deployment.paused.is_(False))
    )


async def fillable_schedules(session: AsyncSession) -> list[ScheduleSnapshot]:
    """Active schedules of deployments that are not paused, in a stable order."""
    rows = (await session.execute(_fillable().order_by(m.DeploymentSchedule.id))).scalars()
    return [
        ScheduleSnapshot(r.id, r.deployment_id, dict(r.schedule), r.catchup, r.scheduled_until)
        for r in rows
    ]


async def lock_schedule(
    session: AsyncSession, schedule_id: uuid.UUID
) -> m.DeploymentSchedule | None:
    """The schedule, locked for filling; None if it is gone, inactive, paused or being filled."""
    query = _fillable().where(m.DeploymentSchedule.id == schedule_id)
    query = lock_rows(dialect_of(session), query, skip_locked=True)
    row: m.DeploymentSchedule | None = (await session.execute(query)).scalar_one_or_none()
    return row


async def create_scheduled_runs(
    session: AsyncSession, schedule: m.DeploymentSchedule, occurrences: Sequence[datetime]
) -> int:
    """Create one auto-scheduled run per occurrence; returns how many were new."""
    created = 0
    principal = _system(schedule.workspace_id)
    for occurrence in occurrences:
        data = FlowRunCreate(
            idempotency_key=idempotency_key(schedule.id, occurrence),
            scheduled_time=occurrence,
            tags=[AUTO_SCHEDULED_TAG],
        )
        try:
            async with session.begin_nested():
                _, new = await flow_runs.create_flow_run(
                    session, principal, schedule.deployment_id, data, auto_scheduled=True
                )
        except IntegrityError:
            # Another scheduler inserted this occurrence between our check and our insert.
            logger.debug("run %s already created by another scheduler", data.idempotency_key)
            continue
        created += new
    return created


async def fill_schedule(
    session: AsyncSession,
    schedule: m.DeploymentSchedule,
    occurrences: Sequence[datetime],
    scheduled_until: datetime | None,
) -> int:
    """Create the runs of a plan and move the schedule's mark (never backwards)."""
    created = await create_scheduled_runs(session, schedule, occurrences)
    current = schedule.scheduled_until
    if scheduled_until is not None and (current is None or scheduled_until > current):
        schedule.scheduled_until = scheduled_until
    await session.flush()
    return created


async def prune_future_runs(session: AsyncSession, now: datetime) -> int:
    """Delete future, never-started auto-scheduled runs no live schedule wants any more.

    A schedule is live while it exists, is active and its deployment is not
    paused. Runs already started (or retried, or renamed by a claim) are kept.
    The marks of inactive and paused schedules are cleared, so resuming one
    starts again from "now" instead of catching up the pause.
    """
    live_query = (
        select(m.DeploymentSchedule.id)
        .join(m.Deployment, m.Deployment.id == m.DeploymentSchedule.deployment_id)
        .where(m.DeploymentSchedule.active.is_(True), m.Deployment.paused.is_(False))
    )
    live = set((await session.execute(live_query)).scalars())
    future = (
        m.FlowRun.auto_scheduled.is_(True),
        m.FlowRun.state_type == _SCHEDULED,
        m.FlowRun.run_count == 0,
        m.FlowRun.next_scheduled_start_time > now,
    )
    rows = await session.execute(select(m.FlowRun.id, m.FlowRun.idempotency_key).where(*future))
    stale = [run_id for run_id, key in rows if schedule_of_key(key) not in live]
    for start in range(0, len(stale), 500):
        chunk = stale[start : start + 500]
        # The conditions are repeated: a run claimed meanwhile is no longer "future SCHEDULED".
        await session.execute(delete(m.FlowRun).where(m.FlowRun.id.in_(chunk), *future))
    paused = select(m.Deployment.id).where(m.Deployment.paused.is_(True))
    await session.execute(
        update(m.DeploymentSchedule)
        .where(
            m.DeploymentSchedule.scheduled_until.is_not(None),
            (m.DeploymentSchedule.active.is_(False))
            | m.DeploymentSchedule.deployment_id.in_(paused),
        )
        .values(scheduled_until=None)
    )
    return len(stale)


async def mark_late_runs(
    session: AsyncSession, now: datetime, grace: timedelta, *, limit: int = 200
) -> int:
    """Rename SCHEDULED runs not started ``grace`` after their time to ``Late``.

    Only runs still named ``Scheduled``: a run already saying why it waits
    (AwaitingConcurrency, AwaitingQuota, AwaitingResume, AwaitingRetry) says
    something more useful, and a run is named Late once. The rename goes
    through ``flow_runs.set_state``, so it is checked and written to history.
    """
    query = (
        select(m.FlowRun)
        .where(
            m.FlowRun.state_type == _SCHEDULED,
            m.FlowRun.state_name == DEFAULT_NAMES[StateType.SCHEDULED],
            m.FlowRun.next_scheduled_start_time <= now - grace,
        )
        .order_by(m.FlowRun.next_scheduled_start_time, m.FlowRun.id)
        .limit(limit)
    )
    runs = list(
        (await session.execute(lock_rows(dialect_of(session), query, skip_locked=True))).scalars()
    )
    marked = 0
    for run in runs:
        due = run.next_scheduled_start_time
        message = f"not started within {grace.total_seconds():g} s of its scheduled time"
        if due is not None:
            message += f" {due.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
        result = await flow_runs.set_state(
            session,
            _system(run.workspace_id),
            run.id,
            StateCreate(
                type=StateType.SCHEDULED,
                name=LATE_NAME,
                message=message,
                timestamp=now,
                expected_state_id=run.state_id,
            ),
        )
        marked += result.status is Verdict.ACCEPT
    return marked
