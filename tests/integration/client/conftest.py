"""The client against the in-process API on each database (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
import uvicorn

from flowyard.client import FlowyardClient, RetryPolicy
from flowyard.schemas import deployments as dep
from flowyard.schemas import work_pools as wp
from flowyard.server.app import create_app
from flowyard.server.context import ServerContext
from flowyard.settings import Settings

# The API's fixtures (settings, a server context on the `db` fixture, an admin
# key, the ASGI transport), reused rather than rebuilt.
from tests.integration.api.conftest import (  # noqa: F401
    admin_key,
    app_transport,
    ctx,
    settings,
)

ClientFactory = Callable[[str | None], AbstractAsyncContextManager[FlowyardClient]]


@pytest.fixture
def client_for(app_transport: httpx.ASGITransport) -> ClientFactory:  # noqa: F811
    """A client with the given key (or none) on the in-process API."""

    def make(key: str | None) -> AbstractAsyncContextManager[FlowyardClient]:
        return FlowyardClient(
            "http://test/api", key, transport=app_transport, retry=RetryPolicy(attempts=0)
        )

    return make


@pytest.fixture
async def client(client_for: ClientFactory, admin_key: str) -> AsyncIterator[FlowyardClient]:  # noqa: F811
    async with client_for(admin_key) as c:
        yield c


async def make_pool(client: FlowyardClient, name: str = "pool") -> wp.WorkPool:
    return await client.create_work_pool(wp.WorkPoolCreate(name=name, type=wp.WorkPoolType.MANAGED))


def deployment_spec(**fields: object) -> dep.DeploymentCreate:
    body: dict[str, object] = {
        "flow_name": "etl",
        "name": "daily",
        "entrypoint": "flows/etl.py:etl",
        "source": {"kind": "git", "url": "https://example.com/org/repo.git", "branch": "main"},
        "work_pool_name": "pool",
        "parameter_schema": {
            "type": "object",
            "properties": {"n": {"type": "integer", "default": 1}, "name": {"type": "string"}},
            "required": ["n"],
        },
        **fields,
    }
    return dep.DeploymentCreate.model_validate(body)


async def make_deployment(client: FlowyardClient, **fields: object) -> dep.Deployment:
    return await client.upsert_deployment(deployment_spec(**fields))


@pytest.fixture
async def live_api(ctx: ServerContext, settings: Settings) -> AsyncIterator[str]:  # noqa: F811
    """The app served by uvicorn on a free port in this test's loop: real streaming.

    The in-process ASGI transport buffers whole responses, so a live SSE
    stream needs a real socket.
    """
    app = create_app(settings, context=ctx)
    app.state.ctx = ctx
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", log_level="warning", ws="none", http="h11")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(2000):  # up to 20 s
        if server.started:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the test server did not start")
    yield f"http://127.0.0.1:{port}/api"
    server.should_exit = True
    await task
    sock.close()
