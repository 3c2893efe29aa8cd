"""Workspaces, API keys, the caller's identity, and compute usage."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query

from flowyard.schemas import workspaces as s
from flowyard.server.api.deps import Caller, Session
from flowyard.server.ops import usage, workspaces

router = APIRouter(tags=["workspaces"])


@router.get("/me")
async def read_me(session: Session, caller: Caller) -> s.Me:
    ws = await workspaces.read_workspace(session, caller.workspace_id)
    return s.Me(
        workspace=s.Workspace.model_validate(ws),
        kind=caller.kind,
        is_admin=caller.is_admin,
        flow_run_id=caller.flow_run_id,
    )


@router.get("/workspaces")
async def list_workspaces(session: Session, caller: Caller) -> list[s.Workspace]:
    caller.require_api_key()
    if not caller.is_admin:
        return [
            s.Workspace.model_validate(
                await workspaces.read_workspace(session, caller.workspace_id)
            )
        ]
    return [s.Workspace.model_validate(w) for w in await workspaces.list_workspaces(session)]


@router.post("/workspaces", status_code=201)
async def create_workspace(
    data: s.WorkspaceCreate, session: Session, caller: Caller
) -> s.ApiKeyCreated:
    """Create a workspace (operator only) and its first key, shown once."""
    caller.require_admin()
    ws = await workspaces.create_workspace(session, data)
    key_row, key = await workspaces.create_api_key(session, ws.id, "owner")
    return s.ApiKeyCreated.model_validate({**_key_fields(key_row), "key": key})


@router.patch("/workspaces/{name}")
async def update_workspace(
    name: str, data: s.WorkspaceUpdate, session: Session, caller: Caller
) -> s.Workspace:
    """Limits are the operator's: admin keys only."""
    caller.require_admin()
    ws = await workspaces.read_workspace_by_name(session, name)
    return s.Workspace.model_validate(await workspaces.update_workspace(session, ws.id, data))


def _key_fields(row: object) -> dict[str, object]:
    return s.ApiKey.model_validate(row).model_dump()


@router.post("/api-keys", status_code=201)
async def create_api_key(data: s.ApiKeyCreate, session: Session, caller: Caller) -> s.ApiKeyCreated:
    caller.require_api_key()
    if data.admin or (data.workspace_id and data.workspace_id != caller.workspace_id):
        caller.require_admin()
    target: uuid.UUID = data.workspace_id or caller.workspace_id
    row, key = await workspaces.create_api_key(session, target, data.name, admin=data.admin)
    return s.ApiKeyCreated.model_validate({**_key_fields(row), "key": key})


@router.get("/api-keys")
async def list_api_keys(session: Session, caller: Caller) -> list[s.ApiKey]:
    caller.require_api_key()
    return [s.ApiKey.model_validate(k) for k in await workspaces.list_api_keys(session, caller)]


@router.delete("/api-keys/{ident}")
async def revoke_api_key(ident: str, session: Session, caller: Caller) -> s.ApiKey:
    caller.require_api_key()
    return s.ApiKey.model_validate(await workspaces.revoke_api_key(session, caller, ident))


@router.get("/usage")
async def read_usage(
    session: Session,
    caller: Caller,
    month: str | None = Query(default=None, pattern=r"^\d{4}-\d{2}$"),
    by: str | None = Query(default=None, pattern=r"^(day|deployment)$"),
) -> s.UsageSummary:
    caller.require_api_key()
    ws = await workspaces.read_workspace(session, caller.workspace_id)
    return await usage.summary(session, ws, month, by)


@router.get("/usage/records")
async def list_usage_records(
    session: Session,
    caller: Caller,
    month: str | None = Query(default=None, pattern=r"^\d{4}-\d{2}$"),
) -> list[s.UsageRecord]:
    caller.require_api_key()
    rows = await usage.records(session, caller.workspace_id, month)
    return [s.UsageRecord.model_validate(r) for r in rows]
