"""Who is calling: API keys and run tokens.

API keys look like ``fy_<prefix>_<secret>``. Only a SHA-256 of the whole key
is stored; the prefix is the lookup index and what listings show. Keys are
256-bit random, so a fast hash is enough (no password stretching needed).

Run tokens look like ``fyr_<run id hex>_<signature>``: an HMAC of the run id
under the server key. They need no storage, and they are scoped by
construction to the run they name.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.server.db import models as m
from flowyard.server.keys import ServerKeys
from flowyard.server.ops import _key_cache
from flowyard.server.ops.errors import Forbidden, Unauthorized

LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    workspace_id: uuid.UUID
    kind: str  # "api_key" | "run_token"
    is_admin: bool = False
    key_id: uuid.UUID | None = None
    flow_run_id: uuid.UUID | None = None

    @property
    def is_run_token(self) -> bool:
        return self.kind == "run_token"

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("this needs an admin API key")

    def require_api_key(self) -> None:
        if self.is_run_token:
            raise Forbidden("a run token may only act on its own run")

    def require_run(self, flow_run_id: uuid.UUID) -> None:
        """Run tokens may touch their own run only."""
        if self.is_run_token and self.flow_run_id != flow_run_id:
            raise Forbidden("a run token may only act on its own run")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> tuple[str, str]:
    """Return (key, prefix)."""
    prefix = secrets.token_hex(6)
    return f"fy_{prefix}_{secrets.token_urlsafe(32)}", prefix


def issue_run_token(keys: ServerKeys, flow_run_id: uuid.UUID) -> str:
    return f"fyr_{flow_run_id.hex}_{keys.sign(flow_run_id.bytes)}"


async def authenticate(
    session: AsyncSession, keys: ServerKeys, authorization: str | None
) -> Principal:
    if not authorization:
        raise Unauthorized("missing Authorization: Bearer <api key> header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("expected Authorization: Bearer <api key>")
    token = token.strip()
    if token.startswith("fyr_"):
        return await _authenticate_run_token(session, keys, token)
    if token.startswith("fy_"):
        return await _authenticate_api_key(session, token)
    raise Unauthorized("unrecognised credential; expected an API key (fy_...)")


async def _authenticate_api_key(session: AsyncSession, token: str) -> Principal:
    parts = token.split("_", 2)
    if len(parts) != 3:
        raise Unauthorized("malformed API key")
    digest = hash_key(token)
    cache_key = (_key_cache.database_of(session), digest)
    cached: Principal | None = _key_cache.API_KEYS.get(cache_key)
    if cached is not None:
        return cached
    generation = _key_cache.API_KEYS.generation
    row = (
        await session.execute(select(m.ApiKey).where(m.ApiKey.prefix == parts[1]))
    ).scalar_one_or_none()
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        raise Unauthorized("invalid API key")
    if row.revoked_at is not None:
        raise Unauthorized("this API key has been revoked")
    now = datetime.now(UTC)
    if row.last_used is None or now - row.last_used > LAST_USED_RESOLUTION:
        # Coarse resolution: a write per request would serialise every read on SQLite.
        await session.execute(update(m.ApiKey).where(m.ApiKey.id == row.id).values(last_used=now))
    principal = Principal(
        workspace_id=row.workspace_id, kind="api_key", is_admin=row.is_admin, key_id=row.id
    )
    _key_cache.API_KEYS.put(cache_key, principal, generation)
    return principal


# Built once: building and keying the statement cost more than SQLite takes to run it.
_RUN_WORKSPACE = select(m.FlowRun.workspace_id).where(m.FlowRun.id == bindparam("run_id"))


async def _authenticate_run_token(session: AsyncSession, keys: ServerKeys, token: str) -> Principal:
    parts = token.split("_", 2)
    try:
        run_id = uuid.UUID(hex=parts[1])
    except (IndexError, ValueError):
        raise Unauthorized("malformed run token") from None
    # As bytes: compare_digest refuses str with non-ASCII characters, which a
    # header may carry.
    signature = keys.sign(run_id.bytes).encode()
    if len(parts) != 3 or not hmac.compare_digest(parts[2].encode(), signature):
        raise Unauthorized("invalid run token")
    workspace_id = (await session.execute(_RUN_WORKSPACE, {"run_id": run_id})).scalar_one_or_none()
    if workspace_id is None:
        raise Unauthorized("run token for a run that no longer exists")
    return Principal(workspace_id=workspace_id, kind="run_token", flow_run_id=run_id)
