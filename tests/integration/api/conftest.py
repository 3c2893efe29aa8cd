"""An in-process API on a real database (each dialect) with an admin key."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest

from flowyard.server.app import create_app
from flowyard.server.context import ServerContext
from flowyard.server.db import Database
from flowyard.server.keys import ServerKeys
from flowyard.server.ops import workspaces
from flowyard.settings import Settings

ClientFactory = Callable[[str | None], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def settings(flowyard_home: Path) -> Settings:
    return Settings(home=flowyard_home, server_key="test-server-key", dispatcher=False)


@pytest.fixture
async def ctx(db: Database, settings: Settings) -> ServerContext:
    return ServerContext(settings=settings, db=db, keys=ServerKeys.from_master(b"test-server-key"))


@pytest.fixture
async def admin_key(ctx: ServerContext) -> str:
    async with ctx.db.session() as session:
        key = await workspaces.bootstrap(session)
    assert key is not None
    return key


@pytest.fixture
async def app_transport(ctx: ServerContext, settings: Settings) -> httpx.ASGITransport:
    app = create_app(settings, context=ctx)
    app.state.ctx = ctx
    return httpx.ASGITransport(app=app)


@pytest.fixture
def client_for(app_transport: httpx.ASGITransport) -> ClientFactory:
    def make(key: str | None) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(
            transport=app_transport, base_url="http://test/api", headers=headers
        )

    return make


@pytest.fixture
async def client(client_for: ClientFactory, admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(admin_key) as c:
        yield c


async def make_workspace_key(client: httpx.AsyncClient, name: str) -> str:
    """A second tenant and its owner key."""
    r = await client.post("/workspaces", json={"name": name})
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    return key


async def make_pool(
    client: httpx.AsyncClient, name: str = "pool", **fields: object
) -> dict[str, object]:
    r = await client.post("/work-pools", json={"name": name, "type": "managed", **fields})
    assert r.status_code == 201, r.text
    body: dict[str, object] = r.json()
    return body


async def post_deployment(client: httpx.AsyncClient, **fields: object) -> httpx.Response:
    """POST /deployments for etl/daily (entrypoint flows/etl.py:etl) with ``fields``."""
    body = {"flow_name": "etl", "name": "daily", "entrypoint": "flows/etl.py:etl", **fields}
    return await client.post("/deployments", json=body)


async def make_deployment(
    client: httpx.AsyncClient, pool: str | None = "pool", **fields: object
) -> dict[str, object]:
    defaults: dict[str, object] = {
        "source": {"kind": "git", "url": "https://example.com/org/repo.git", "branch": "main"},
        "work_pool_name": pool,
        "parameter_schema": {
            "type": "object",
            "properties": {"n": {"type": "integer", "default": 1}, "name": {"type": "string"}},
            "required": ["n"],
        },
    }
    r = await post_deployment(client, **{**defaults, **fields})  # fields override the defaults
    assert r.status_code == 200, r.text
    out: dict[str, object] = r.json()
    return out
