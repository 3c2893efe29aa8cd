"""Request dependencies: the database session and the authenticated principal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.server.context import ServerContext
from flowyard.server.ops import auth
from flowyard.server.ops.auth import Principal


def get_ctx(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: commit on success, roll back on any error."""
    async with get_ctx(request).db.session() as session:
        yield session


async def get_principal(
    request: Request,
    session: Annotated[AsyncSession, Depends(get_session, scope="function")],
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    return await auth.authenticate(session, get_ctx(request).keys, authorization)


# scope="function": the transaction commits before the response is sent, so a 2xx
# always means the write is durable and visible to the caller's next read.
Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
Caller = Annotated[Principal, Depends(get_principal)]
Ctx = Annotated[ServerContext, Depends(get_ctx)]
