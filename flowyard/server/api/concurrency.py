"""Global concurrency limits: managed with an API key; taken, renewed and released by runs."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Response
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.schemas import concurrency as s
from flowyard.server.api.deps import Caller, Session
from flowyard.server.db import models as m
from flowyard.server.ops import concurrency

router = APIRouter(prefix="/concurrency-limits", tags=["concurrency limits"])

Name = Annotated[str, Path(pattern=s.NAME)]


async def _out(session: AsyncSession, rows: list[m.ConcurrencyLimit]) -> list[s.ConcurrencyLimit]:
    held = await concurrency.held_slots(session, [row.id for row in rows])
    return [
        s.ConcurrencyLimit(
            id=row.id,
            name=row.name,
            limit=row.limit,
            active=row.active,
            slot_decay_per_second=row.slot_decay_per_second,
            active_slots=held.get(row.id, 0),
            created=row.created,
            updated=row.updated,
        )
        for row in rows
    ]


@router.post("", status_code=201)
async def create_limit(
    data: s.ConcurrencyLimitCreate, session: Session, caller: Caller
) -> s.ConcurrencyLimit:
    return (await _out(session, [await concurrency.create_limit(session, caller, data)]))[0]


@router.get("")
async def list_limits(session: Session, caller: Caller) -> list[s.ConcurrencyLimit]:
    """Every limit of the workspace by name, with the slots held now."""
    return await _out(session, await concurrency.list_limits(session, caller))


@router.post("/acquire")
async def acquire(data: s.SlotRequest, session: Session, caller: Caller) -> s.SlotGrant:
    """Take slots of every named limit, or none; a refusal says when to ask again."""
    return await concurrency.acquire(session, caller, data)


@router.post("/leases/{lease_id}/renew")
async def renew(
    lease_id: uuid.UUID, data: s.LeaseRenewal, session: Session, caller: Caller
) -> s.LeaseRenewed:
    """Keep a lease's slots ``lease_seconds`` longer; 404 once it has run out."""
    return s.LeaseRenewed(
        expires_at=await concurrency.renew(session, caller, lease_id, data.lease_seconds)
    )


@router.delete("/leases/{lease_id}", status_code=204)
async def release(lease_id: uuid.UUID, session: Session, caller: Caller) -> Response:
    await concurrency.release(session, caller, lease_id)
    return Response(status_code=204)


@router.get("/{name}")
async def read_limit(name: Name, session: Session, caller: Caller) -> s.ConcurrencyLimit:
    return (await _out(session, [await concurrency.read_limit(session, caller, name)]))[0]


@router.patch("/{name}")
async def update_limit(
    name: Name, data: s.ConcurrencyLimitUpdate, session: Session, caller: Caller
) -> s.ConcurrencyLimit:
    return (await _out(session, [await concurrency.update_limit(session, caller, name, data)]))[0]


@router.delete("/{name}", status_code=204)
async def delete_limit(name: Name, session: Session, caller: Caller) -> Response:
    await concurrency.delete_limit(session, caller, name)
    return Response(status_code=204)
