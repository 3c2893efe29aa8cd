"""Liveness of active runs: heartbeats in, and runs whose heartbeats stopped out.

Whoever supervises a run keeps its ``heartbeat_at`` fresh: a dispatcher for
the runs it started (one UPDATE per beat for all of them), the SDK for a
flow run it records from a script. A run that is still PENDING, RUNNING or
CANCELLING when its heartbeats have stopped for longer than the timeout lost
its supervisor (a host or server that died, a script killed with SIGKILL):
it is CRASHED with that reason and its compute record is closed at the last
heartbeat, so nothing stays RUNNING forever and no minute is billed past the
last sign of life. Runs that never sent a heartbeat are left alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import bindparam, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.schemas.states import StateCreate, StateType, Verdict
from flowyard.server.db import models as m
from flowyard.server.db.dialect import dialect_of, lock_rows
from flowyard.server.ops import flow_runs, usage
from flowyard.server.ops.auth import Principal

ACTIVE = (StateType.PENDING.value, StateType.RUNNING.value, StateType.CANCELLING.value)


async def beat(
    session: AsyncSession, run_ids: Collection[uuid.UUID], now: datetime, *, dispatcher_id: str
) -> int:
    """Mark the dispatcher's active runs alive at ``now``; returns how many rows moved."""
    if not run_ids:
        return 0
    result = await session.execute(
        update(m.FlowRun)
        .where(
            m.FlowRun.id.in_(list(run_ids)),
            m.FlowRun.dispatcher_id == dispatcher_id,
            m.FlowRun.state_type.in_(ACTIVE),
        )
        .values(heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def lost_reason(run: m.FlowRun) -> str:
    last = run.heartbeat_at.isoformat(timespec="seconds") if run.heartbeat_at else "never"
    who = f"its dispatcher {run.dispatcher_id}" if run.dispatcher_id else "the process running it"
    return (
        f"lost heartbeat: {who} stopped reporting (last heartbeat {last}); "
        "the host or process running it stopped"
    )


async def crash_lost_runs(
    session: AsyncSession, now: datetime, timeout: timedelta, *, limit: int = 200
) -> list[uuid.UUID]:
    """CRASH active runs whose heartbeats stopped more than ``timeout`` ago."""
    query = (
        select(m.FlowRun)
        .where(
            m.FlowRun.state_type.in_(ACTIVE),
            m.FlowRun.heartbeat_at.is_not(None),
            m.FlowRun.heartbeat_at < now - timeout,
        )
        .order_by(m.FlowRun.heartbeat_at)
        .limit(limit)
    )
    runs = list(
        (await session.execute(lock_rows(dialect_of(session), query, skip_locked=True))).scalars()
    )
    crashed: list[uuid.UUID] = []
    for run in runs:
        reason = lost_reason(run)
        principal = Principal(workspace_id=run.workspace_id, kind="api_key", is_admin=True)
        # Billed to the last sign of life, before the state change would bill to now.
        await usage.close_record(session, run, run.heartbeat_at or now)
        outcome = await flow_runs.set_state(
            session, principal, run.id, StateCreate(type=StateType.CRASHED, message=reason)
        )
        if outcome.status is not Verdict.ACCEPT:
            continue
        run.crash_reason = reason
        await end_orphans(session, run, now)
        crashed.append(run.id)
    await session.flush()
    return crashed


TASK_ACTIVE = (StateType.PENDING.value, StateType.RUNNING.value)
# Whether a run left anything active behind: nearly always not, and one statement says so.
_ANY_ORPHAN = select(
    or_(
        exists().where(
            m.FlowRun.root_flow_run_id == bindparam("run_id"), m.FlowRun.state_type.in_(ACTIVE)
        ),
        exists().where(
            m.TaskRun.flow_run_id == bindparam("run_id"), m.TaskRun.state_type.in_(TASK_ACTIVE)
        ),
    )
)


async def end_orphans(session: AsyncSession, run: m.FlowRun, now: datetime) -> int:
    """A run that ended while its subflows or task runs were still active takes them along.

    Nothing else will ever report their end (the process that ran them is
    gone), so they are CRASHED saying which run they belonged to. Returns how
    many flow and task runs were ended.
    """
    if not StateType(run.state_type).is_terminal:
        return 0
    if not (await session.execute(_ANY_ORPHAN, {"run_id": run.id})).scalar_one():
        return 0
    reason = f"its flow run {run.id} ended {run.state_type} while it was still active"
    children = list(
        (
            await session.execute(
                select(m.FlowRun).where(
                    m.FlowRun.root_flow_run_id == run.id, m.FlowRun.state_type.in_(ACTIVE)
                )
            )
        ).scalars()
    )
    principal = Principal(workspace_id=run.workspace_id, kind="api_key", is_admin=True)
    ended = 0
    for child in children:
        outcome = await flow_runs.set_state(
            session, principal, child.id, StateCreate(type=StateType.CRASHED, message=reason)
        )
        ended += outcome.status is Verdict.ACCEPT
    run_ids = [run.id, *(c.id for c in children)]
    tasks = list(
        (
            await session.execute(
                select(m.TaskRun).where(
                    m.TaskRun.flow_run_id.in_(run_ids), m.TaskRun.state_type.in_(TASK_ACTIVE)
                )
            )
        ).scalars()
    )
    for task in tasks:
        task.state_type = StateType.CRASHED.value
        task.state_name = "Crashed"
        task.state_message = reason
        task.state_timestamp = now
        task.end_time = now
        session.add(
            m.TaskRunState(
                id=uuid.uuid4(),
                task_run_id=task.id,
                type=StateType.CRASHED.value,
                name="Crashed",
                message=reason,
                timestamp=now,
            )
        )
    await session.flush()
    return ended + len(tasks)
