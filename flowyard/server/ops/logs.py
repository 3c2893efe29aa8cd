"""Logs: bulk ingestion, cursor reads, and wake-ups for live followers.

Ingestion is one access query and one executemany per batch, whatever its
size. The access query also locks the batch's flow runs (``FOR UPDATE`` on
PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serialises writers): log ids
come from a sequence, and without the lock two concurrent batches for the same
run could commit out of id order, so a reader at cursor N could see N+2 and
never N+1. With it, ids of one run become visible in order and ``logs.id``
is a safe cursor.

Followers (the SSE endpoint) poll the database at a short interval, which
also covers other server processes; in this process they are woken at once
by a session ``after_commit`` hook when lines for their run are committed.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from flowyard.schemas import logs as s
from flowyard.schemas.states import StateType
from flowyard.server.db import models as m
from flowyard.server.db.dialect import dialect_of, lock_rows
from flowyard.server.ops import _bulk, flow_runs
from flowyard.server.ops.auth import Principal
from flowyard.server.ops.errors import InvalidInput, NotFound
from flowyard.server.ops.task_runs import ReferenceNotFound

MAX_PAGE = 5000
_WRITTEN = "flowyard_logs_written"
_LOGS = m.Base.metadata.tables[m.Log.__tablename__]
_LOG_COLUMNS = (
    "workspace_id",
    "flow_run_id",
    "task_run_id",
    "level",
    "name",
    "message",
    "timestamp",
)
_followers: dict[uuid.UUID, set[asyncio.Event]] = {}
_drained: set[asyncio.Event] = set()


def follow(flow_run_id: uuid.UUID, waiter: asyncio.Event) -> None:
    """Set ``waiter`` whenever lines of this run are committed in this process."""
    _followers.setdefault(flow_run_id, set()).add(waiter)


def unfollow(flow_run_id: uuid.UUID, waiter: asyncio.Event) -> None:
    _drained.discard(waiter)
    waiters = _followers.get(flow_run_id)
    if waiters is not None:
        waiters.discard(waiter)
        if not waiters:
            del _followers[flow_run_id]


def drain() -> None:
    """Ask every live follower in this process to close its stream now.

    For server shutdown: the HTTP server waits for open responses before it
    stops, and a follow stream of a running flow never ends by itself.
    Clients reconnect (to another replica, or after the restart) with
    ``Last-Event-ID`` and lose nothing.
    """
    for waiters in _followers.values():
        for waiter in waiters:
            _drained.add(waiter)
            waiter.set()


def drained(waiter: asyncio.Event) -> bool:
    """Whether this follower has been asked to close."""
    return waiter in _drained


def follower_count(flow_run_id: uuid.UUID) -> int:
    """How many live followers this process has for the run."""
    return len(_followers.get(flow_run_id, ()))


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    for run_id in session.info.pop(_WRITTEN, ()):
        for waiter in _followers.get(run_id, ()):
            waiter.set()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session, *_: Any) -> None:
    session.info.pop(_WRITTEN, None)


async def write_logs(session: AsyncSession, principal: Principal, batch: s.LogBatch) -> int:
    """Store a batch of lines, all or nothing; every run must be the caller's to write."""
    return await write_lines(session, principal, batch.logs)


_RUNS = (
    select(m.FlowRun)
    .where(m.FlowRun.id.in_(bindparam("run_ids", expanding=True)))
    .order_by(m.FlowRun.id)
)


@functools.cache
def _locked_runs(dialect: str) -> Select[m.FlowRun]:
    return lock_rows(dialect, _RUNS)


async def lock_runs(
    session: AsyncSession, run_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, m.FlowRun]:
    """The flow runs that exist among ``run_ids``, locked in id order (PostgreSQL).

    The statement is built once per dialect: building it cost a batch more than running it.
    """
    query = _locked_runs(dialect_of(session))
    rows = (await session.execute(query, {"run_ids": list(set(run_ids))})).scalars()
    return {r.id: r for r in rows}


async def write_lines(
    session: AsyncSession,
    principal: Principal,
    lines: Sequence[s.LogCreate],
    *,
    runs: Mapping[uuid.UUID, m.FlowRun] | None = None,
) -> int:
    """Store lines (``logs.N`` in errors names the Nth), all or nothing.

    ``runs``: the lines' flow runs, already read with :func:`lock_runs`.
    """
    if not lines:
        return 0
    run_ids = {line.flow_run_id for line in lines}
    if runs is None:
        runs = await lock_runs(session, run_ids)
    _check_access(principal, runs, lines)
    workspace_id = principal.workspace_id
    rows = [
        {
            "workspace_id": workspace_id,
            "flow_run_id": line.flow_run_id,
            "task_run_id": line.task_run_id,
            "level": line.level,
            "name": line.name,
            "message": line.message,
            "timestamp": line.timestamp,
        }
        for line in lines
    ]
    # Driver-level executemany (see _bulk): per-row ORM and bind processing was
    # the largest cost here.
    await _bulk.insert_rows(session, _LOGS, _LOG_COLUMNS, rows)
    session.sync_session.info.setdefault(_WRITTEN, set()).update(run_ids)
    return len(rows)


def _check_access(
    principal: Principal, runs: Mapping[uuid.UUID, m.FlowRun], lines: Sequence[s.LogCreate]
) -> None:
    """Name the first line whose run is missing or not the caller's."""
    checked: set[uuid.UUID] = set()
    for index, line in enumerate(lines):
        if line.flow_run_id in checked:
            continue
        run = runs.get(line.flow_run_id)
        try:
            if run is None:
                raise NotFound("flow run", line.flow_run_id)
            flow_runs.check_access(principal, run)
        except NotFound:
            raise ReferenceNotFound(
                f"logs.{index}.flow_run_id", "flow run", line.flow_run_id
            ) from None
        checked.add(line.flow_run_id)


async def logs_after(
    session: AsyncSession,
    flow_run_id: uuid.UUID,
    *,
    after: int | None = None,
    limit: int = 1000,
    level: int | None = None,
    search: str | None = None,
) -> tuple[list[m.Log], bool]:
    """Lines of a run past a cursor, in order, and whether more exist. No access check."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("limit", f"expected 1..{MAX_PAGE}")
    query = select(m.Log).where(m.Log.flow_run_id == flow_run_id)
    if after is not None:
        query = query.where(m.Log.id > after)
    if level is not None:
        query = query.where(m.Log.level >= level)
    if search:
        query = query.where(m.Log.message.icontains(search, autoescape=True))
    rows = list((await session.execute(query.order_by(m.Log.id).limit(limit + 1))).scalars())
    return rows[:limit], len(rows) > limit


# Built once, like the other name lookups (``flow_run_queries``).
_TASK_RUN_NAMES = select(m.TaskRun.id, m.TaskRun.name).where(
    m.TaskRun.flow_run_id == bindparam("run"),
    m.TaskRun.id.in_(bindparam("ids", expanding=True)),
)


async def task_run_names(
    session: AsyncSession, flow_run_id: uuid.UUID, rows: Sequence[m.Log]
) -> dict[uuid.UUID, str]:
    """The names of the task runs that wrote ``rows``, in one query (none if no task did)."""
    ids = {row.task_run_id for row in rows if row.task_run_id is not None}
    if not ids:
        return {}
    found = await session.execute(_TASK_RUN_NAMES, {"run": flow_run_id, "ids": list(ids)})
    return {task_run_id: name for task_run_id, name in found.all()}


async def read_logs(
    session: AsyncSession,
    principal: Principal,
    flow_run_id: uuid.UUID,
    *,
    after: int | None = None,
    limit: int = 1000,
    level: int | None = None,
    search: str | None = None,
) -> tuple[list[m.Log], bool]:
    """A page of a run's lines past ``after``, and whether more exist."""
    await flow_runs.read_flow_run(session, principal, flow_run_id)
    return await logs_after(
        session, flow_run_id, after=after, limit=limit, level=level, search=search
    )


@dataclass(frozen=True)
class RunState:
    """The part of a flow run a follower watches."""

    state_id: uuid.UUID | None
    type: StateType
    name: str
    message: str
    timestamp: datetime


async def states_since(
    session: AsyncSession, flow_run_id: uuid.UUID, after: datetime
) -> list[RunState]:
    """The run's states recorded after ``after``, oldest first. No access check."""
    t = m.FlowRunState
    query = (
        select(t.id, t.type, t.name, t.message, t.timestamp)
        .where(t.flow_run_id == flow_run_id, t.timestamp > after)
        .order_by(t.timestamp, t.id)
    )
    rows = (await session.execute(query)).all()
    return [RunState(r[0], StateType(r[1]), r[2], r[3] or "", r[4]) for r in rows]


async def run_state(session: AsyncSession, flow_run_id: uuid.UUID) -> RunState | None:
    """The run's current state, or None once it is deleted. No access check."""
    r = m.FlowRun
    query = select(r.state_id, r.state_type, r.state_name, r.state_message, r.state_timestamp)
    row = (await session.execute(query.where(r.id == flow_run_id))).one_or_none()
    if row is None:
        return None
    return RunState(row[0], StateType(row[1]), row[2], row[3], row[4])
