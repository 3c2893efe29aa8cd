"""The compute ledger: one record per run, closed once, never changed after.

Totals are derived from the records. A month's usage counts closed records
by their billed minutes and open ones by their elapsed time so far, so a
burst of long runs cannot slip past the limit while they are still going.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, case, func, null, select
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.schemas import workspaces as s
from flowyard.server.db import models as m
from flowyard.server.db.dialect import dialect_of, utc_date
from flowyard.server.ops.errors import InvalidInput


def month_bounds(month: str | None, now: datetime | None = None) -> tuple[datetime, datetime]:
    now = now or datetime.now(UTC)
    try:
        if month:
            year, mon = (int(p) for p in month.split("-"))
            start = datetime(year, mon, 1, tzinfo=UTC)
        else:
            start = datetime(now.year, now.month, 1, tzinfo=UTC)
        # 9999-12 has no next month to end at.
        end = start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1)
    except ValueError:
        expected = "YYYY-MM from 0001-01 to 9999-11"
        raise InvalidInput("month", f"expected {expected}, got {month!r}") from None
    return start, end


def billed_minutes(seconds: float) -> int:
    return max(1, math.ceil(seconds / 60)) if seconds > 0 else 0


# Built once: building and keying a statement cost more than SQLite takes to run it.
_OPEN_RECORD = select(m.UsageRecord).where(
    m.UsageRecord.flow_run_id == bindparam("run_id"), m.UsageRecord.ended_at.is_(None)
)


async def _open_record_of(session: AsyncSession, run_id: uuid.UUID) -> m.UsageRecord | None:
    return (await session.execute(_OPEN_RECORD, {"run_id": run_id})).scalar_one_or_none()


# A run's records: how many, and how many are open (one statement for both).
_ATTEMPTS = select(func.count(), func.count(case((m.UsageRecord.ended_at.is_(None), 1)))).where(
    m.UsageRecord.flow_run_id == bindparam("run_id")
)


async def open_record(session: AsyncSession, run: m.FlowRun, now: datetime) -> None:
    """Provisioning begins: open the run's record (one per attempt)."""
    attempts, open_ = (await session.execute(_ATTEMPTS, {"run_id": run.id})).one()
    if open_:
        return
    session.add(
        m.UsageRecord(
            workspace_id=run.workspace_id,
            flow_run_id=run.id,
            attempt=attempts + 1,
            deployment_id=run.deployment_id,
            started_at=now,
        )
    )


async def close_record(session: AsyncSession, run: m.FlowRun, now: datetime) -> float | None:
    """Teardown: close the run's open record. Returns the seconds billed, if one was open."""
    record = await _open_record_of(session, run.id)
    if record is None:
        return None
    seconds = max(0.0, (now - record.started_at).total_seconds())
    record.ended_at = now
    record.seconds = seconds
    record.billed_minutes = billed_minutes(seconds)
    run.compute_seconds = (run.compute_seconds or 0.0) + seconds
    return seconds


async def used_minutes(
    session: AsyncSession, workspace_id: uuid.UUID, now: datetime
) -> tuple[int, int]:
    """(minutes used this month including open records, open record count)."""
    start, end = month_bounds(None, now)
    base = select(m.UsageRecord).where(
        m.UsageRecord.workspace_id == workspace_id,
        m.UsageRecord.started_at >= start,
        m.UsageRecord.started_at < end,
    )
    closed = (
        await session.execute(
            select(func.coalesce(func.sum(m.UsageRecord.billed_minutes), 0)).where(
                m.UsageRecord.workspace_id == workspace_id,
                m.UsageRecord.started_at >= start,
                m.UsageRecord.started_at < end,
                m.UsageRecord.ended_at.is_not(None),
            )
        )
    ).scalar_one()
    open_rows = list(
        (await session.execute(base.where(m.UsageRecord.ended_at.is_(None)))).scalars()
    )
    open_minutes = sum(billed_minutes((now - r.started_at).total_seconds()) for r in open_rows)
    return int(closed or 0) + open_minutes, len(open_rows)


def resets_on(now: datetime) -> date:
    _, end = month_bounds(None, now)
    return end.date()


async def quota_reason(session: AsyncSession, workspace: m.Workspace, now: datetime) -> str | None:
    """Why a new run may not start, or None when there is compute left."""
    if workspace.monthly_limit_minutes is None:
        return None
    used, _ = await used_minutes(session, workspace.id, now)
    if used < workspace.monthly_limit_minutes:
        return None
    return (
        f"monthly compute limit reached: {used} of {workspace.monthly_limit_minutes} minutes "
        f"used; resets on {resets_on(now).isoformat()}"
    )


async def summary(
    session: AsyncSession, workspace: m.Workspace, month: str | None, by: str | None
) -> s.UsageSummary:
    """A month's totals, optionally by day (UTC) or by deployment.

    Closed records are summed in SQL, grouped by the bucket's key; only the
    open ones (runs using compute now, a handful) are read row by row. A busy
    workspace's month holds tens of thousands of records.
    """
    now = datetime.now(UTC)
    start, end = month_bounds(month, now)
    if by not in (None, "day", "deployment"):
        raise InvalidInput("by", "expected 'day' or 'deployment'")
    u = m.UsageRecord
    in_month = (u.workspace_id == workspace.id, u.started_at >= start, u.started_at < end)
    key: ColumnElement[Any] = null()
    if by == "day":
        key = utc_date(dialect_of(session), u.started_at)
    elif by == "deployment":
        key = u.deployment_id.expression
    closed_query = select(
        key,
        func.count(),
        func.coalesce(func.sum(u.seconds), 0.0),
        func.coalesce(func.sum(u.billed_minutes), 0),
    ).where(*in_month, u.ended_at.is_not(None))
    if by is not None:
        closed_query = closed_query.group_by(key)
    closed = (await session.execute(closed_query)).all()
    open_query = select(u.started_at, u.deployment_id).where(*in_month, u.ended_at.is_(None))
    open_rows = (await session.execute(open_query)).all()
    names: dict[uuid.UUID, str] = {}
    if by == "deployment":
        ids = {row[0] for row in closed if row[0]} | {d for _, d in open_rows if d}
        if ids:
            query = select(m.Deployment.id, m.Deployment.flow_name, m.Deployment.name)
            for ident, flow, name in await session.execute(query.where(m.Deployment.id.in_(ids))):
                names[ident] = f"{flow}/{name}"
    buckets: dict[str, s.UsageBucket] = {}

    def add(raw_key: Any, runs: int, seconds: float, minutes: int) -> None:
        if by == "day":
            name = str(raw_key)[:10]
        else:
            name = names.get(raw_key, "(ad hoc)") if raw_key else "(ad hoc)"
        b = buckets.setdefault(name, s.UsageBucket(key=name, runs=0, seconds=0, billed_minutes=0))
        b.runs += runs
        b.seconds += seconds
        b.billed_minutes += minutes

    used = 0
    for row in closed:
        used += int(row[3])
        if by is not None:
            add(row[0], int(row[1]), float(row[2]), int(row[3]))
    for started_at, deployment_id in open_rows:
        elapsed = max(0.0, (now - started_at).total_seconds())
        used += billed_minutes(elapsed)
        if by is not None:
            day = started_at.date().isoformat()
            add(day if by == "day" else deployment_id, 1, elapsed, billed_minutes(elapsed))
    limit = workspace.monthly_limit_minutes
    return s.UsageSummary(
        month=start.strftime("%Y-%m"),
        used_minutes=used,
        open_runs=len(open_rows),
        limit_minutes=limit,
        remaining_minutes=None if limit is None else max(0, limit - used),
        resets_on=end.date(),
        by=by,
        buckets=sorted(buckets.values(), key=lambda b: b.key),
    )


async def records(
    session: AsyncSession, workspace_id: uuid.UUID, month: str | None
) -> list[m.UsageRecord]:
    start, end = month_bounds(month)
    query = (
        select(m.UsageRecord)
        .where(
            m.UsageRecord.workspace_id == workspace_id,
            m.UsageRecord.started_at >= start,
            m.UsageRecord.started_at < end,
        )
        .order_by(m.UsageRecord.started_at)
    )
    return list((await session.execute(query)).scalars())
