"""Variables: named JSON values of a workspace. Run tokens may read them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from flowyard.schemas import variables as s
from flowyard.schemas.pagination import Page
from flowyard.server.api.deps import Caller, Session
from flowyard.server.db import models as m
from flowyard.server.ops import variables

router = APIRouter(prefix="/variables", tags=["variables"])

Name = Annotated[str, Path(pattern=s.NAME)]


def _out(row: m.Variable) -> s.Variable:
    return s.Variable(
        id=row.id,
        name=row.name,
        value=row.value.get("value"),
        tags=row.tags,
        created=row.created,
        updated=row.updated,
    )


@router.put("/{name}", responses={201: {"model": s.Variable, "description": "Created."}})
async def set_variable(
    name: Name, data: s.VariableSet, session: Session, caller: Caller, response: Response
) -> s.Variable:
    """Create (201) or replace (200) a variable."""
    row, created = await variables.set_variable(session, caller, name, data)
    response.status_code = 201 if created else 200
    return _out(row)


@router.get("")
async def list_variables(
    session: Session,
    caller: Caller,
    prefix: str | None = Query(default=None, max_length=255, pattern=s.NAME),
    limit: int = Query(default=100, ge=1, le=variables.MAX_PAGE),
    cursor: str | None = Query(default=None, max_length=255, pattern=s.NAME),
) -> Page[s.Variable]:
    """Variables by name; ``prefix`` filters, ``next_cursor`` reads on."""
    rows, next_cursor = await variables.list_variables(
        session, caller, prefix=prefix, limit=limit, cursor=cursor
    )
    return Page(items=[_out(r) for r in rows], next_cursor=next_cursor)


@router.get("/{name}")
async def read_variable(name: Name, session: Session, caller: Caller) -> s.Variable:
    return _out(await variables.read_variable(session, caller, name))


@router.delete("/{name}", status_code=204)
async def delete_variable(name: Name, session: Session, caller: Caller) -> Response:
    await variables.delete_variable(session, caller, name)
    return Response(status_code=204)
