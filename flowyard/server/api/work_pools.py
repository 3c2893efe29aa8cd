from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from flowyard.schemas import work_pools as s
from flowyard.server.api.deps import Caller, Session
from flowyard.server.ops import work_pools

router = APIRouter(prefix="/work-pools", tags=["work pools"])


@router.post("", status_code=201)
async def create_work_pool(data: s.WorkPoolCreate, session: Session, caller: Caller) -> s.WorkPool:
    return s.WorkPool.model_validate(await work_pools.create_work_pool(session, caller, data))


@router.get("")
async def list_work_pools(session: Session, caller: Caller) -> list[s.WorkPool]:
    caller.require_api_key()
    return [s.WorkPool.model_validate(p) for p in await work_pools.list_work_pools(session, caller)]


@router.get("/default-base-job-template/{pool_type}")
async def default_template(pool_type: s.WorkPoolType, caller: Caller) -> dict[str, Any]:
    return s.default_base_job_template(pool_type)


@router.get("/{name}")
async def read_work_pool(name: str, session: Session, caller: Caller) -> s.WorkPool:
    caller.require_api_key()
    return s.WorkPool.model_validate(await work_pools.read_work_pool(session, caller, name))


@router.patch("/{name}")
async def update_work_pool(
    name: str, data: s.WorkPoolUpdate, session: Session, caller: Caller
) -> s.WorkPool:
    return s.WorkPool.model_validate(await work_pools.update_work_pool(session, caller, name, data))


@router.delete("/{name}", status_code=204)
async def delete_work_pool(name: str, session: Session, caller: Caller) -> Response:
    await work_pools.delete_work_pool(session, caller, name)
    return Response(status_code=204)
