"""Secrets: listings show names only; the value has its own endpoint."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from flowyard.schemas import variables as s
from flowyard.schemas.pagination import Page
from flowyard.server.api.deps import Caller, Ctx, Session
from flowyard.server.ops import secrets

router = APIRouter(prefix="/secrets", tags=["secrets"])

Name = Annotated[str, Path(pattern=s.NAME)]


@router.put("/{name}", responses={201: {"model": s.SecretInfo, "description": "Created."}})
async def set_secret(
    name: Name, data: s.SecretSet, session: Session, caller: Caller, ctx: Ctx, response: Response
) -> s.SecretInfo:
    """Create (201) or replace (200) a secret; the value is encrypted before it is stored."""
    row, created = await secrets.set_secret(session, caller, ctx.keys, name, data)
    response.status_code = 201 if created else 200
    return s.SecretInfo.model_validate(row)


@router.get("")
async def list_secrets(
    session: Session,
    caller: Caller,
    prefix: str | None = Query(default=None, max_length=255, pattern=s.NAME),
    limit: int = Query(default=100, ge=1, le=secrets.MAX_PAGE),
    cursor: str | None = Query(default=None, max_length=255, pattern=s.NAME),
) -> Page[s.SecretInfo]:
    """Secret names (never values); ``prefix`` filters, ``next_cursor`` reads on."""
    rows, next_cursor = await secrets.list_secrets(
        session, caller, prefix=prefix, limit=limit, cursor=cursor
    )
    return Page(items=[s.SecretInfo.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{name}")
async def read_secret(name: Name, session: Session, caller: Caller) -> s.SecretInfo:
    return s.SecretInfo.model_validate(await secrets.read_secret(session, caller, name))


@router.get("/{name}/value")
async def read_secret_value(
    name: Name, session: Session, caller: Caller, ctx: Ctx, response: Response
) -> s.SecretValue:
    """The clear value, for API keys and run tokens of the secret's workspace."""
    value = await secrets.read_secret_value(session, caller, ctx.keys, name)
    response.headers["Cache-Control"] = "no-store"
    return s.SecretValue(name=name, value=value)


@router.delete("/{name}", status_code=204)
async def delete_secret(name: Name, session: Session, caller: Caller) -> Response:
    await secrets.delete_secret(session, caller, name)
    return Response(status_code=204)
