"""Claims: a dispatcher atomically takes due SCHEDULED runs of a managed pool.

Per workspace, activations are serialised by locking the workspace row
(PostgreSQL) or by SQLite's single writer, so two dispatchers can never both
see a free slot and both take it; run rows are additionally selected with
``FOR UPDATE SKIP LOCKED`` so claimers never block on each other's rows.
Each candidate goes through the same policy as any other transition, so a
run that cannot start records why on itself (``AwaitingConcurrency``,
``AwaitingQuota``, ``AwaitingResume``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.schemas.states import StateCreate, StateType, Verdict
from flowyard.server.db import models as m
from flowyard.server.db.dialect import dialect_of, lock_rows
from flowyard.server.ops import flow_runs, usage
from flowyard.server.ops.auth import Principal


@dataclass
class ClaimResult:
    claimed: list[m.FlowRun] = field(default_factory=list)
    waiting: list[tuple[uuid.UUID, str]] = field(default_factory=list)


# Built once: a dispatcher asks on every change of runs.
_POOLS_WITH_DUE_RUNS = (
    select(m.WorkPool.id)
    .join(m.FlowRun, m.FlowRun.work_pool_id == m.WorkPool.id)
    .where(
        m.WorkPool.type == bindparam("pool_type"),
        m.FlowRun.state_type == StateType.SCHEDULED.value,
        m.FlowRun.next_scheduled_start_time <= bindparam("now"),
    )
    .distinct()
)


async def pools_with_due_runs(
    session: AsyncSession, now: datetime | None = None, pool_type: str = "managed"
) -> list[uuid.UUID]:
    params = {"pool_type": pool_type, "now": now or datetime.now(UTC)}
    return list((await session.execute(_POOLS_WITH_DUE_RUNS, params)).scalars())


def due_runs(pool_id: uuid.UUID, now: datetime) -> Select[m.FlowRun]:
    """The pool's SCHEDULED runs whose time has come."""
    return select(m.FlowRun).where(
        m.FlowRun.work_pool_id == pool_id,
        m.FlowRun.state_type == StateType.SCHEDULED.value,
        m.FlowRun.next_scheduled_start_time <= now,
    )


async def claim_runs(
    session: AsyncSession,
    pool_id: uuid.UUID,
    dispatcher_id: str,
    *,
    limit: int = 10,
    now: datetime | None = None,
) -> ClaimResult:
    """Move up to ``limit`` due runs of the pool to PENDING, for this dispatcher."""
    now = now or datetime.now(UTC)
    result = ClaimResult()
    pool = await session.get(m.WorkPool, pool_id)
    if pool is None:
        return result
    await flow_runs.lock_workspace(session, pool.workspace_id)
    dialect = dialect_of(session)
    query = (
        due_runs(pool_id, now)
        .order_by(m.FlowRun.next_scheduled_start_time, m.FlowRun.created)
        .limit(limit)
    )
    candidates = list(
        (await session.execute(lock_rows(dialect, query, skip_locked=True))).scalars()
    )
    principal = Principal(workspace_id=pool.workspace_id, kind="api_key", is_admin=True)
    for run in candidates:
        reason = await _take(session, principal, run, dispatcher_id, now)
        if reason is None:
            await usage.open_record(session, run, now)
            result.claimed.append(run)
        else:
            result.waiting.append((run.id, reason))
    await session.flush()
    return result


async def _take(
    session: AsyncSession, principal: Principal, run: m.FlowRun, claimer: str, now: datetime
) -> str | None:
    """PENDING for ``claimer`` through the policy; None when taken, else why it waits."""
    outcome = await flow_runs.set_state(
        session,
        principal,
        run.id,
        StateCreate(type=StateType.PENDING, message=f"claimed by {claimer}"),
        locked=run,
    )
    if outcome.status is not Verdict.ACCEPT:
        return outcome.reason
    run.dispatcher_id = claimer
    run.heartbeat_at = now
    return None


async def claim_served_runs(
    session: AsyncSession,
    principal: Principal,
    deployment_ids: list[uuid.UUID],
    worker: str,
    *,
    limit: int,
    now: datetime | None = None,
) -> list[m.FlowRun]:
    """Move up to ``limit`` due runs of served deployments to PENDING, for ``worker``.

    Served deployments (``flow.serve()``) belong to no work pool: the process
    that serves them runs their flows itself, so no compute is metered here.
    Deployments of another workspace, or in a pool, are ignored.
    """
    principal.require_api_key()
    now = now or datetime.now(UTC)
    await flow_runs.lock_workspace(session, principal.workspace_id)
    query = (
        select(m.FlowRun)
        .join(m.Deployment, m.Deployment.id == m.FlowRun.deployment_id)
        .where(
            m.FlowRun.deployment_id.in_(deployment_ids),
            m.Deployment.workspace_id == principal.workspace_id,
            m.Deployment.work_pool_id.is_(None),
            m.FlowRun.state_type == StateType.SCHEDULED.value,
            m.FlowRun.next_scheduled_start_time <= now,
        )
        .order_by(m.FlowRun.next_scheduled_start_time, m.FlowRun.created)
        .limit(limit)
    )
    candidates = list(
        (await session.execute(lock_rows(dialect_of(session), query, skip_locked=True))).scalars()
    )
    claimed = [
        run for run in candidates if await _take(session, principal, run, worker, now) is None
    ]
    await session.flush()
    return claimed
