"""Task runs: batched upserts in one transaction, and reads.

A batch costs a fixed handful of statements whatever its size: one read of
the flow runs it names (access and state), one read of the task runs that
already exist (locked on PostgreSQL), one read of recent history when a state
in the batch may be a re-send (see ``_maybe_resent``), then one driver-level
executemany each for new task runs, moved task runs and history rows (see
``_bulk``). An ORM flush per row was rejected: at thousands of tasks per
batch it is one round trip per object.

Ordering: the states of one task run (entries and their ``previous_states``)
apply in timestamp order. A state older than the task run's current state is
kept in the history but does not move the current state, so a late batch
cannot rewind a task. A state equal to a recorded one (same type, name and
timestamp) is a re-send and is skipped: retrying a batch whose answer was
lost changes nothing.

Finished flow runs: after a batch, every task run it touched in a flow run
that is COMPLETED, FAILED, CRASHED or CANCELLED must be in a terminal state
too. That admits the runner's last flush racing a cancel or crash mark (the
tasks are reported finished) and refuses a task still PENDING or RUNNING
inside a run that has ended. Such a batch is refused whole (409).
"""

from __future__ import annotations

import base64
import functools
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, NamedTuple, cast

from sqlalchemy import Select, Table, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.schemas import task_runs as s
from flowyard.schemas.states import DEFAULT_NAMES, TERMINAL_STATES, StateType
from flowyard.server.db import models as m
from flowyard.server.db.dialect import dialect_of, lock_rows
from flowyard.server.ops import _bulk, flow_runs
from flowyard.server.ops.auth import Principal
from flowyard.server.ops.errors import Conflict, InvalidInput, NotFound

MAX_PAGE = 1000
RETRYING = "Retrying"
# An enum member's ``.value`` is slow to read; the batch loop reads it per state.
_VALUES = {t: t.value for t in StateType}
# The columns a batch may change on an existing task run.
_MUTABLE = (
    "name",
    "task_key",
    "dynamic_key",
    "cache_key",
    "tags",
    "max_retries",
    "state_type",
    "state_name",
    "state_message",
    "state_timestamp",
    "run_count",
    "start_time",
    "end_time",
)


class ReferenceNotFound(NotFound):
    """A referenced object is missing (or another workspace's); names the field."""

    def __init__(self, field: str, kind: str, ident: object) -> None:
        super().__init__(kind, ident)
        self.args = (f"{field}: {kind} {ident} not found",)


async def _runs_of(
    session: AsyncSession,
    principal: Principal,
    entries: Sequence[s.TaskRunUpsert],
    runs: Mapping[uuid.UUID, m.FlowRun] | None,
) -> Mapping[uuid.UUID, m.FlowRun]:
    # Each flow run with its first entry, keyed by the id's integer (hashing a
    # UUID runs Python code, once per entry).
    first: dict[int, tuple[uuid.UUID, int]] = {}
    for index, entry in enumerate(entries):
        run_id = entry.flow_run_id
        if run_id.int not in first:
            first[run_id.int] = run_id, index
    if runs is None:
        ids = [run_id for run_id, _ in first.values()]
        rows = (await session.execute(select(m.FlowRun).where(m.FlowRun.id.in_(ids)))).scalars()
        runs = {r.id: r for r in rows}
    for run_id, index in first.values():
        run = runs.get(run_id)
        field = f"task_runs.{index}.flow_run_id"
        if run is None:
            raise ReferenceNotFound(field, "flow run", run_id)
        try:
            flow_runs.check_access(principal, run)
        except NotFound:
            raise ReferenceNotFound(field, "flow run", run_id) from None
    return runs


async def _existing(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    dialect = dialect_of(session)
    query, ids_param = _existing_query(dialect), _bulk.key_list(dialect, ids)
    return {r.id: dict(r._mapping) for r in await session.execute(query, {"ids": ids_param})}


@functools.cache
def _existing_query(dialect: str) -> Select[Any]:
    """The batch's task runs that exist (locked on PostgreSQL), the ids one parameter."""
    names = ("id", "workspace_id", "flow_run_id", *_MUTABLE)
    columns: list[Any] = [getattr(m.TaskRun, c) for c in names]
    query = select(*columns).where(_bulk.in_key_list(dialect, m.TaskRun.id, "ids"))
    return lock_rows(dialect, query)


def _maybe_resent(
    groups: dict[uuid.UUID, list[_Step]], existing: dict[uuid.UUID, dict[str, Any]]
) -> tuple[list[uuid.UUID], datetime | None]:
    """The task runs whose batch states may repeat recorded ones, and the earliest such state.

    A recorded state is never later than its task run's current state (a later
    one would have moved it there), so a state later than that is new: a run
    reported forward, as a running flow reports, needs no history read.
    """
    ids: list[uuid.UUID] = []
    since: datetime | None = None
    for task_id, row in existing.items():
        current = row["state_timestamp"]
        earliest = groups[task_id][0].timestamp  # groups are in timestamp order
        if earliest <= current:
            ids.append(task_id)
            since = earliest if since is None else min(since, earliest)
    return ids, since


def _fresh(
    task_id: uuid.UUID,
    group: list[_Step],
    recorded: set[tuple[uuid.UUID, str, str, datetime]] | None,
) -> tuple[list[_Step], int]:
    """The task run's states that are new, and how many are re-sends.

    A re-send repeats a recorded state, or a state earlier in the batch (same
    type, name and timestamp: in a group in timestamp order, those are next to
    each other, so no set of every state is needed).
    """
    fresh: list[_Step] = []
    resent = 0
    moment: datetime | None = None
    seen: list[tuple[StateType, str]] = []  # the states at ``moment`` so far
    for step in group:
        if step.timestamp != moment:
            moment, seen = step.timestamp, []
        elif (step.type, step.name) in seen:
            resent += 1
            continue
        if recorded and (task_id, _VALUES[step.type], step.name, step.timestamp) in recorded:
            resent += 1
            continue
        seen.append((step.type, step.name))
        fresh.append(step)
    return fresh, resent


async def _recorded(
    session: AsyncSession, ids: list[uuid.UUID], since: datetime | None
) -> set[tuple[uuid.UUID, str, str, datetime]]:
    if not ids or since is None:
        return set()
    s_ = m.TaskRunState
    query = select(s_.task_run_id, s_.type, s_.name, s_.timestamp).where(
        s_.task_run_id.in_(ids), s_.timestamp >= since
    )
    return {(r[0], r[1], r[2], r[3]) for r in await session.execute(query)}


_BY_TIME = attrgetter("timestamp")


class _Step(NamedTuple):
    """One state of a task run in a batch: an entry's own, or one of its previous states."""

    position: int  # the entry's index in the batch, for error messages
    entry: s.TaskRunUpsert
    type: StateType
    name: str
    message: str
    timestamp: datetime
    run_count: int


def _new_row(workspace_id: uuid.UUID, first: _Step, key: str) -> dict[str, Any]:
    return {
        "id": key,
        "workspace_id": workspace_id,
        "flow_run_id": first.entry.flow_run_id,
        "state_type": None,
        "state_timestamp": None,
        "run_count": 0,
        "start_time": None,
        "end_time": None,
        "created": first.timestamp,
    }


def _apply(row: dict[str, Any], step: _Step) -> None:
    """Move the working copy of a task run to the step's state (timings included)."""
    to = step.type
    value = _VALUES[to]
    if (to is StateType.RUNNING and row["state_type"] != value) or step.name == RETRYING:
        row["run_count"] += 1
        if row["start_time"] is None:
            row["start_time"] = step.timestamp
    if step.run_count > row["run_count"]:
        row["run_count"] = step.run_count
    row["end_time"] = step.timestamp if to in TERMINAL_STATES else None
    row["state_type"] = value
    row["state_name"] = step.name
    row["state_message"] = step.message
    row["state_timestamp"] = step.timestamp


def _describe(row: dict[str, Any], entry: s.TaskRunUpsert) -> None:
    """Names, keys and tags as the entry of the task run's latest state reports them."""
    row.update(
        name=entry.name,
        task_key=entry.task_key,
        dynamic_key=entry.dynamic_key,
        cache_key=entry.cache_key,
        tags=list(entry.tags),
        max_retries=entry.max_retries,
    )


def _group(entries: Sequence[s.TaskRunUpsert]) -> dict[uuid.UUID, list[_Step]]:
    """Each task run's states in the batch, in timestamp order (batch order breaks ties)."""
    groups: dict[uuid.UUID, list[_Step]] = {}
    for index, entry in enumerate(entries):
        group = groups.setdefault(entry.id, [])
        if group and group[0].entry.flow_run_id != entry.flow_run_id:
            raise InvalidInput(
                f"task_runs.{index}.flow_run_id",
                f"task run {entry.id} appears earlier in the batch with another flow run",
            )
        for earlier in entry.previous_states:
            name = earlier.name or DEFAULT_NAMES[earlier.type]
            group.append(
                _Step(index, entry, earlier.type, name, earlier.message, earlier.timestamp, 0)
            )
        name = entry.state_name or DEFAULT_NAMES[entry.state_type]
        group.append(
            _Step(
                index,
                entry,
                entry.state_type,
                name,
                entry.state_message,
                entry.timestamp,
                entry.run_count,
            )
        )
    for group in groups.values():
        if len(group) > 1:
            group.sort(key=_BY_TIME)  # stable
    return groups


_TASK_RUNS = cast("Table", m.TaskRun.__table__)
_TASK_RUN_STATES = cast("Table", m.TaskRunState.__table__)
_TASK_RUN_COLUMNS = tuple(c.name for c in _TASK_RUNS.columns)
_STATE_COLUMNS = tuple(c.name for c in _TASK_RUN_STATES.columns)


async def upsert_task_runs(
    session: AsyncSession,
    principal: Principal,
    batch: s.TaskRunBatch,
    *,
    runs: Mapping[uuid.UUID, m.FlowRun] | None = None,
) -> s.TaskRunBatchResult:
    """Create task runs or move their states, all or nothing (the batch's lines aside).

    ``runs``: the entries' flow runs, if already read (see ``ops.reports``).
    """
    entries = batch.task_runs
    if not entries:
        return s.TaskRunBatchResult(created=0, updated=0, states_written=0, duplicates=0)
    groups = _group(entries)
    runs = await _runs_of(session, principal, entries, runs)
    finished = {run_id for run_id, run in runs.items() if run.state_type in TERMINAL_STATES}
    existing = await _existing(session, list(groups))
    recorded = await _recorded(session, *_maybe_resent(groups, existing))
    new_rows: list[dict[str, Any]] = []
    moved_rows: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    duplicates = 0
    for task_id, group in groups.items():
        first = group[0]
        # The id as both dialects store it, written once for the row and its states.
        key = task_id.hex
        row = existing.get(task_id) if existing else None
        created = row is None
        if row is None:
            row = _new_row(principal.workspace_id, first, key)
        elif (
            row["workspace_id"] != principal.workspace_id
            or row["flow_run_id"] != first.entry.flow_run_id
        ):
            # The same answer whichever workspace holds the id: nothing is revealed.
            raise Conflict(f"task_runs.{first.position}.id: {task_id} is used by another flow run")
        latest: _Step | None = None
        fresh, resent = _fresh(task_id, group, None if created else recorded)
        duplicates += resent
        for step in fresh:
            history.append(
                {
                    "task_run_id": key,
                    "type": _VALUES[step.type],
                    "name": step.name,
                    "message": step.message,
                    "timestamp": step.timestamp,
                }
            )
            current = row["state_timestamp"]
            if current is None or step.timestamp >= current:
                _apply(row, step)
                latest = step
        moved = latest is not None
        if latest is not None:
            _describe(row, latest.entry)
        if finished and (created or moved) and first.entry.flow_run_id in finished:
            _check_finished_run(runs[first.entry.flow_run_id], row, first.position)
        if created:
            new_rows.append(row)
        elif moved:
            moved_rows.append(row)
    # Driver-level executemany (see _bulk): a batch of 1,000 task runs with
    # 3,000 states is the hot path of every recorded flow.
    times: dict[Any, Any] = {}  # a task run's times are its states': converted once
    await _bulk.insert_rows(session, _TASK_RUNS, _TASK_RUN_COLUMNS, new_rows, memo=times)
    await _bulk.update_rows(session, _TASK_RUNS, _MUTABLE, moved_rows, memo=times)
    for row, ident in zip(history, _bulk.new_ids(len(history)), strict=True):
        row["id"] = ident
    await _bulk.insert_rows(session, _TASK_RUN_STATES, _STATE_COLUMNS, history, memo=times)
    return s.TaskRunBatchResult(
        created=len(new_rows),
        updated=len(moved_rows),
        states_written=len(history),
        duplicates=duplicates,
    )


def _check_finished_run(run: m.FlowRun, row: dict[str, Any], index: int) -> None:
    """A task run changed in a finished flow run must be finished too."""
    if row["state_type"] in TERMINAL_STATES:
        return
    raise Conflict(
        f"task_runs.{index}: flow run {run.id} is {run.state_type}; its task runs may only "
        f"be reported finished, but this one would be {row['state_type']}"
    )


async def read_task_run(
    session: AsyncSession, principal: Principal, task_run_id: uuid.UUID
) -> m.TaskRun:
    row = await session.get(m.TaskRun, task_run_id)
    if row is None or row.workspace_id != principal.workspace_id:
        raise NotFound("task run", task_run_id)
    if principal.is_run_token:
        run = await session.get(m.FlowRun, row.flow_run_id)
        try:
            if run is None:
                raise NotFound("flow run", row.flow_run_id)
            flow_runs.check_access(principal, run)
        except NotFound:
            raise NotFound("task run", task_run_id) from None
    return row


async def state_history(
    session: AsyncSession, principal: Principal, task_run_id: uuid.UUID
) -> list[m.TaskRunState]:
    await read_task_run(session, principal, task_run_id)
    query = (
        select(m.TaskRunState)
        .where(m.TaskRunState.task_run_id == task_run_id)
        .order_by(m.TaskRunState.timestamp, m.TaskRunState.id)
    )
    return list((await session.execute(query)).scalars())


def _encode(created: datetime, ident: uuid.UUID) -> str:
    raw = json.dumps([created.isoformat(), str(ident)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, ident = json.loads(raw)
        created = datetime.fromisoformat(value)
        return (created if created.tzinfo else created.replace(tzinfo=UTC)), uuid.UUID(ident)
    except (ValueError, TypeError):
        raise InvalidInput("cursor", "not a cursor returned by this listing") from None


async def list_task_runs(
    session: AsyncSession,
    principal: Principal,
    flow_run_id: uuid.UUID,
    *,
    states: Sequence[StateType] = (),
    limit: int = 200,
    cursor: str | None = None,
) -> tuple[list[m.TaskRun], str | None]:
    """A flow run's task runs in creation order; keyset pages on (created, id)."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("limit", f"expected 1..{MAX_PAGE}")
    await flow_runs.read_flow_run(session, principal, flow_run_id)
    t = m.TaskRun
    query = select(t).where(t.flow_run_id == flow_run_id)
    if states:
        query = query.where(t.state_type.in_([x.value for x in states]))
    if cursor:
        created, ident = _decode(cursor)
        query = query.where(or_(t.created > created, and_(t.created == created, t.id > ident)))
    query = query.order_by(t.created, t.id).limit(limit + 1)
    rows = list((await session.execute(query)).scalars())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, _encode(rows[-1].created, rows[-1].id)
