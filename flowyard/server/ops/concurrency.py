"""Global concurrency limits: slots taken under a lease, so that none can leak.

A take (``acquire``) asks for ``slots`` of every named limit at once and gets
all of them or none. It locks the limits' rows (PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` already serialises writers), counts the slots held by
unexpired leases, and writes one lease row per limit under one lease id.

Every lease ends by itself. ``concurrency(...)`` holds its slots for
``lease_seconds`` and renews them while the block runs, so a holder that dies
(a killed process, a lost sandbox) frees them when its lease runs out, and a
finished one releases them at once. ``rate_limit(...)`` never releases: its
lease lasts ``slots / slot_decay_per_second``, which is how the slots decay.
Expired leases are deleted by the next take of their limit, and a flow run
that ends gives back the leases it holds (``flow_runs``).

An inactive limit limits nothing; a limit that does not exist is reported as
``missing`` and limits nothing either (the SDK raises in strict mode).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.schemas import concurrency as s
from flowyard.server.db import models as m
from flowyard.server.db.dialect import dialect_of, lock_rows
from flowyard.server.ops import flow_runs
from flowyard.server.ops.auth import Principal
from flowyard.server.ops.errors import Conflict, InvalidInput, NotFound

# How soon a refused take is told to ask again, at least and at most.
MIN_RETRY_SECONDS = 0.05
MAX_RETRY_SECONDS = 2.0


def _now() -> datetime:
    return datetime.now(UTC)


async def _by_name(session: AsyncSession, principal: Principal, name: str) -> m.ConcurrencyLimit:
    query = select(m.ConcurrencyLimit).where(
        m.ConcurrencyLimit.workspace_id == principal.workspace_id,
        m.ConcurrencyLimit.name == name,
    )
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:
        raise NotFound("concurrency limit", repr(name))
    return row


async def held_slots(
    session: AsyncSession, limit_ids: Sequence[uuid.UUID], now: datetime | None = None
) -> dict[uuid.UUID, int]:
    """Slots held now by unexpired leases, per limit."""
    if not limit_ids:
        return {}
    lease = m.ConcurrencyLease
    query = (
        select(lease.limit_id, func.sum(lease.slots))
        .where(lease.limit_id.in_(limit_ids), lease.expires_at > (now or _now()))
        .group_by(lease.limit_id)
    )
    return {limit_id: int(total) for limit_id, total in (await session.execute(query)).all()}


async def create_limit(
    session: AsyncSession, principal: Principal, data: s.ConcurrencyLimitCreate
) -> m.ConcurrencyLimit:
    principal.require_api_key()
    try:
        await _by_name(session, principal, data.name)
    except NotFound:
        pass
    else:
        raise Conflict(f"concurrency limit {data.name!r} already exists")
    row = m.ConcurrencyLimit(
        workspace_id=principal.workspace_id,
        name=data.name,
        limit=data.limit,
        active=data.active,
        slot_decay_per_second=data.slot_decay_per_second,
    )
    session.add(row)
    await session.flush()
    return row


async def read_limit(session: AsyncSession, principal: Principal, name: str) -> m.ConcurrencyLimit:
    return await _by_name(session, principal, name)


async def list_limits(session: AsyncSession, principal: Principal) -> list[m.ConcurrencyLimit]:
    query = (
        select(m.ConcurrencyLimit)
        .where(m.ConcurrencyLimit.workspace_id == principal.workspace_id)
        .order_by(m.ConcurrencyLimit.name)
    )
    return list((await session.execute(query)).scalars())


async def update_limit(
    session: AsyncSession, principal: Principal, name: str, data: s.ConcurrencyLimitUpdate
) -> m.ConcurrencyLimit:
    principal.require_api_key()
    row = await _by_name(session, principal, name)
    for field in data.model_fields_set:
        value = getattr(data, field)
        if value is None:
            raise InvalidInput(field, "must not be null")
        setattr(row, field, value)
    row.updated = _now()
    await session.flush()
    return row


async def delete_limit(session: AsyncSession, principal: Principal, name: str) -> None:
    principal.require_api_key()
    row = await _by_name(session, principal, name)
    await session.execute(delete(m.ConcurrencyLimit).where(m.ConcurrencyLimit.id == row.id))


async def acquire(session: AsyncSession, principal: Principal, data: s.SlotRequest) -> s.SlotGrant:
    """All the slots asked for, under one lease, or a hint of when to ask again."""
    names = list(dict.fromkeys(data.names))
    holder = data.flow_run_id or (principal.flow_run_id if principal.is_run_token else None)
    if data.mode == "rate_limit":
        holder = None  # its slots free themselves by decay, not when its run ends
    if data.flow_run_id is not None:
        try:
            await flow_runs.read_flow_run(session, principal, data.flow_run_id)
        except NotFound:
            raise InvalidInput("flow_run_id", f"no flow run {data.flow_run_id}") from None
    query = lock_rows(
        dialect_of(session),
        select(m.ConcurrencyLimit)
        .where(
            m.ConcurrencyLimit.workspace_id == principal.workspace_id,
            m.ConcurrencyLimit.name.in_(names),
        )
        .order_by(m.ConcurrencyLimit.id),  # one lock order for every taker
    )
    found = {row.name: row for row in (await session.execute(query)).scalars()}
    if data.lease_id is not None:
        made = await _lease_rows(session, principal, data.lease_id)
        if made:  # this request was answered before, and the answer lost
            return s.SlotGrant(acquired=True, lease_id=data.lease_id, expires_at=made[0].expires_at)
    missing = [name for name in names if name not in found]
    limits = [found[name] for name in names if name in found and found[name].active]
    for row in limits:
        if data.slots > row.limit:
            raise InvalidInput(
                "slots",
                f"{data.slots} slots can never be taken of {row.name!r} (limit {row.limit})",
            )
        if data.mode == "rate_limit" and row.slot_decay_per_second <= 0:
            raise InvalidInput(
                "names",
                f"{row.name!r} has no slot decay, so it cannot be a rate limit; "
                "set slot_decay_per_second",
            )
    now = _now()
    ids = [row.id for row in limits]
    if ids:
        await _delete_expired(session, ids, now)
    held = await held_slots(session, ids, now)
    for row in limits:
        if held.get(row.id, 0) + data.slots > row.limit:
            return s.SlotGrant(
                acquired=False,
                retry_after_seconds=await _retry_after(session, row, data.slots, now),
                missing=missing,
                blocked_by=row.name,
            )
    if not limits:  # nothing limits this take: no lease to hold, renew or release
        return s.SlotGrant(acquired=True, missing=missing)
    if data.mode == "rate_limit":
        decay = min(row.slot_decay_per_second for row in limits)
        expires_at = now + timedelta(seconds=data.slots / decay)
    else:
        expires_at = now + timedelta(seconds=data.lease_seconds)
    lease_id = data.lease_id or uuid.uuid4()
    session.add_all(
        m.ConcurrencyLease(
            lease_id=lease_id,
            limit_id=row.id,
            slots=data.slots,
            expires_at=expires_at,
            flow_run_id=holder,
            created=now,
        )
        for row in limits
    )
    await session.flush()
    return s.SlotGrant(acquired=True, lease_id=lease_id, expires_at=expires_at, missing=missing)


async def _delete_expired(session: AsyncSession, limit_ids: list[uuid.UUID], now: datetime) -> None:
    """Delete the limits' run-out leases, skipping any another transaction holds (a run
    ending and giving back its leases): waiting on it could close a lock cycle."""
    lease = m.ConcurrencyLease
    query = select(lease.id).where(lease.limit_id.in_(limit_ids), lease.expires_at <= now)
    expired = list(
        (await session.execute(lock_rows(dialect_of(session), query, skip_locked=True))).scalars()
    )
    if expired:
        await session.execute(delete(lease).where(lease.id.in_(expired)))


async def _retry_after(
    session: AsyncSession, row: m.ConcurrencyLimit, slots: int, now: datetime
) -> float:
    """When enough of ``row``'s leases will have run out for ``slots`` (bounded: a held
    concurrency lease is usually released long before it expires)."""
    lease = m.ConcurrencyLease
    query = (
        select(lease.expires_at, lease.slots)
        .where(lease.limit_id == row.id, lease.expires_at > now)
        .order_by(lease.expires_at)
    )
    leases = (await session.execute(query)).all()
    free = row.limit - sum(held for _, held in leases)
    wait = MAX_RETRY_SECONDS
    for expires_at, held in leases:
        free += held
        if free >= slots:
            wait = (expires_at - now).total_seconds()
            break
    return max(MIN_RETRY_SECONDS, min(MAX_RETRY_SECONDS, wait))


async def _lease_rows(
    session: AsyncSession, principal: Principal, lease_id: uuid.UUID
) -> list[m.ConcurrencyLease]:
    lease, limit = m.ConcurrencyLease, m.ConcurrencyLimit
    query = (
        select(lease)
        .join(limit, limit.id == lease.limit_id)
        .where(lease.lease_id == lease_id, limit.workspace_id == principal.workspace_id)
        .order_by(lease.id)  # one lock order for every writer of a lease's rows
    )
    if principal.is_run_token:  # a run's token reaches its own run's leases only
        query = query.where(lease.flow_run_id == principal.flow_run_id)
    found = await session.execute(lock_rows(dialect_of(session), query, of=lease))
    return list(found.scalars())


async def renew(
    session: AsyncSession, principal: Principal, lease_id: uuid.UUID, seconds: float
) -> datetime:
    """Extend a lease that has not run out; a lease that has is gone (NotFound)."""
    now = _now()
    rows = [row for row in await _lease_rows(session, principal, lease_id) if row.expires_at > now]
    if not rows:
        raise NotFound("concurrency lease", lease_id)
    expires_at = now + timedelta(seconds=seconds)
    for row in rows:
        row.expires_at = expires_at
    await session.flush()
    return expires_at


async def release(session: AsyncSession, principal: Principal, lease_id: uuid.UUID) -> None:
    """Free a lease's slots at once; releasing one that ran out or was released is no error."""
    rows = await _lease_rows(session, principal, lease_id)
    if rows:
        lease = m.ConcurrencyLease
        await session.execute(delete(lease).where(lease.id.in_([row.id for row in rows])))
