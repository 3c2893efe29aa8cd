"""Secrets: values encrypted at rest with the server key, shown only on request.

The database holds ciphertext only (Fernet under a key derived from the
server key, which lives outside the database). Listings carry names and
times; the value leaves the server only through ``read_secret_value``, for
API keys and run tokens of the secret's workspace. No error message or log
line built here contains a value.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.schemas import variables as s
from flowyard.server.db import models as m
from flowyard.server.keys import ServerKeys
from flowyard.server.ops.auth import Principal
from flowyard.server.ops.errors import Conflict, InvalidInput, NotFound

MAX_PAGE = 500
logger = logging.getLogger("flowyard.server.secrets")


class SecretUnreadable(Conflict):
    """The stored ciphertext does not open with this server's key."""


async def _by_name(session: AsyncSession, workspace_id: uuid.UUID, name: str) -> m.Secret | None:
    query = select(m.Secret).where(m.Secret.workspace_id == workspace_id, m.Secret.name == name)
    return (await session.execute(query)).scalar_one_or_none()


async def set_secret(
    session: AsyncSession, principal: Principal, keys: ServerKeys, name: str, data: s.SecretSet
) -> tuple[m.Secret, bool]:
    """Create or replace a secret. Returns (row, created)."""
    principal.require_api_key()
    ciphertext = keys.encrypt(data.value)
    now = datetime.now(UTC)
    row = await _by_name(session, principal.workspace_id, name)
    if row is None:
        row = m.Secret(
            workspace_id=principal.workspace_id,
            name=name,
            ciphertext=ciphertext,
            created=now,
            updated=now,
        )
        try:
            async with session.begin_nested():
                session.add(row)
            return row, True
        except IntegrityError:  # a concurrent writer created it first: replace theirs
            row = await _by_name(session, principal.workspace_id, name)
            if row is None:
                raise
    row.ciphertext = ciphertext
    row.updated = now
    await session.flush()
    return row, False


async def read_secret(session: AsyncSession, principal: Principal, name: str) -> m.Secret:
    """The secret's row (names and times are safe to show; the ciphertext is not sent)."""
    row = await _by_name(session, principal.workspace_id, name)
    if row is None:
        raise NotFound("secret", repr(name))
    return row


async def read_secret_value(
    session: AsyncSession, principal: Principal, keys: ServerKeys, name: str
) -> str:
    from cryptography.fernet import InvalidToken

    row = await read_secret(session, principal, name)
    try:
        return keys.decrypt(row.ciphertext)
    except (InvalidToken, UnicodeDecodeError):
        logger.error("secret %r of workspace %s does not decrypt", name, principal.workspace_id)
        raise SecretUnreadable(
            f"secret {name!r} cannot be decrypted with this server's key; was the server "
            "key (FLOWYARD_SERVER_KEY or <home>/server.key) changed? Set the secret again."
        ) from None


async def list_secrets(
    session: AsyncSession,
    principal: Principal,
    *,
    prefix: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[m.Secret], str | None]:
    """Secrets by name (never values); the cursor is the last name of the previous page."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("limit", f"expected 1..{MAX_PAGE}")
    t = m.Secret
    query = select(t).where(t.workspace_id == principal.workspace_id)
    if prefix:
        query = query.where(func.substr(t.name, 1, len(prefix)) == prefix)
    if cursor:
        query = query.where(t.name > cursor)
    rows = list((await session.execute(query.order_by(t.name).limit(limit + 1))).scalars())
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], rows[limit - 1].name


async def delete_secret(session: AsyncSession, principal: Principal, name: str) -> None:
    principal.require_api_key()
    row = await read_secret(session, principal, name)
    await session.execute(delete(m.Secret).where(m.Secret.id == row.id))
