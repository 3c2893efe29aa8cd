"""Keys, workspaces and run tokens: who may see and do what."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import event, update

from flowyard.server.context import ServerContext
from flowyard.server.db import models as m
from flowyard.server.ops import _key_cache
from tests.integration.api.conftest import (
    ClientFactory,
    make_deployment,
    make_pool,
    make_workspace_key,
)
from tests.integration.api.test_task_runs import new_run, run_token


async def test_requests_without_a_key_are_401_with_a_clear_message(
    client_for: ClientFactory, admin_key: str
) -> None:
    async with client_for(None) as anon:
        r = await anon.get("/work-pools")
    assert r.status_code == 401
    assert "Authorization: Bearer" in r.json()["detail"]


async def test_health_needs_no_key(client_for: ClientFactory, admin_key: str) -> None:
    async with client_for(None) as anon:
        assert (await anon.get("/health")).status_code == 200


async def test_a_made_up_key_is_refused(client_for: ClientFactory, admin_key: str) -> None:
    async with client_for("fy_abcdef123456_notreal") as c:
        assert (await c.get("/me")).status_code == 401


async def test_keys_are_listed_by_prefix_and_name_never_in_clear(client: httpx.AsyncClient) -> None:
    created = (await client.post("/api-keys", json={"name": "ci"})).json()
    assert created["key"].startswith(f"fy_{created['prefix']}_")
    listed = (await client.get("/api-keys")).json()
    assert {k["name"] for k in listed} == {"admin", "ci"}
    assert all("key" not in k and "key_hash" not in k for k in listed)


async def test_a_revoked_key_is_refused_at_once(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    created = (await client.post("/api-keys", json={"name": "temp"})).json()
    async with client_for(created["key"]) as temp:
        assert (await temp.get("/me")).status_code == 200
        revoked = await client.delete(f"/api-keys/{created['prefix']}")
        assert revoked.json()["revoked_at"] is not None
        r = await temp.get("/me")
    assert r.status_code == 401
    assert "revoked" in r.json()["detail"]


async def test_a_key_that_just_authenticated_is_not_read_again(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    assert (await client.get("/work-pools")).status_code == 200
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(ctx.db.engine.sync_engine, "before_cursor_execute", record)
    try:
        assert (await client.get("/work-pools")).status_code == 200
    finally:
        event.remove(ctx.db.engine.sync_engine, "before_cursor_execute", record)
    assert statements, "the request read no pools"
    assert not [s for s in statements if "api_keys" in s]


async def test_a_key_revoked_by_another_server_is_refused_once_remembering_it_expires(
    client: httpx.AsyncClient,
    client_for: ClientFactory,
    ctx: ServerContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = (await client.post("/api-keys", json={"name": "temp"})).json()
    async with client_for(created["key"]) as temp:
        assert (await temp.get("/me")).status_code == 200
        # Another replica revokes it: this process is not told.
        async with ctx.db.session() as session:
            query = update(m.ApiKey).where(m.ApiKey.prefix == created["prefix"])
            await session.execute(query.values(revoked_at=datetime.now(UTC)))
        later = time.monotonic() + _key_cache.TTL_SECONDS
        monkeypatch.setattr(_key_cache.API_KEYS, "clock", lambda: later)
        r = await temp.get("/me")
    assert r.status_code == 401
    assert "revoked" in r.json()["detail"]


async def test_another_workspace_sees_nothing_of_ours_404_not_403(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    await make_pool(client)
    dep = await make_deployment(client)
    run = (
        await client.post(f"/deployments/{dep['id']}/runs", json={"parameters": {"n": 1}})
    ).json()
    other_key = await make_workspace_key(client, "other")
    async with client_for(other_key) as other:
        assert (await other.get("/work-pools/pool")).status_code == 404
        assert (await other.get(f"/deployments/{dep['id']}")).status_code == 404
        assert (await other.get("/deployments/name/etl/daily")).status_code == 404
        assert (await other.get(f"/flow-runs/{run['id']}")).status_code == 404
        r = await other.post(f"/flow-runs/{run['id']}/state", json={"type": "CANCELLED"})
        assert r.status_code == 404
        assert (await other.get("/flow-runs")).json()["items"] == []
        assert (await other.get("/work-pools")).json() == []
        # Same name in another workspace is fine: names are per workspace.
        await make_pool(other, "pool")


async def test_only_an_operator_key_creates_workspaces_or_sets_limits(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    owner_key = await make_workspace_key(client, "team")
    async with client_for(owner_key) as owner:
        assert (await owner.post("/workspaces", json={"name": "x"})).status_code == 403
        r = await owner.patch("/workspaces/team", json={"monthly_limit_minutes": 10**6})
        assert r.status_code == 403
    r = await client.patch("/workspaces/team", json={"monthly_limit_minutes": 100})
    assert r.json()["monthly_limit_minutes"] == 100


async def test_a_run_token_acts_only_on_its_own_run(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    await make_pool(client)
    dep = await make_deployment(client)
    mine = (
        await client.post(f"/deployments/{dep['id']}/runs", json={"parameters": {"n": 1}})
    ).json()
    theirs = (
        await client.post(f"/deployments/{dep['id']}/runs", json={"parameters": {"n": 2}})
    ).json()
    token = (await client.post(f"/flow-runs/{mine['id']}/token")).json()["token"]
    async with client_for(token) as runner:
        assert (await runner.get(f"/flow-runs/{mine['id']}")).status_code == 200
        assert (await runner.get(f"/deployments/{dep['id']}")).status_code == 200
        r = await runner.post(f"/flow-runs/{mine['id']}/state", json={"type": "RUNNING"})
        assert r.json()["status"] == "ACCEPT"
        # Everything else is out of reach.
        assert (await runner.get(f"/flow-runs/{theirs['id']}")).status_code == 404
        r = await runner.post(f"/flow-runs/{theirs['id']}/state", json={"type": "CANCELLED"})
        assert r.status_code == 404
        assert (await runner.get("/flow-runs")).status_code == 403
        assert (await runner.get("/work-pools")).status_code == 403
        assert (await runner.post("/api-keys", json={"name": "x"})).status_code == 403
        assert (await runner.post(f"/flow-runs/{mine['id']}/token")).status_code == 403


async def test_a_tampered_run_token_is_refused(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    run = await new_run(client)
    token = await run_token(client, run)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    async with client_for(forged) as runner:
        assert (await runner.get(f"/flow-runs/{run}")).status_code == 401


@pytest.mark.parametrize("tail", ["\xe9", "sig\xff", "x\xa0y"])
async def test_a_run_token_with_a_non_ascii_signature_is_401_not_500(
    client: httpx.AsyncClient, client_for: ClientFactory, tail: str
) -> None:
    token = await run_token(client, await new_run(client))
    forged = token.rsplit("_", 1)[0] + "_" + tail
    async with client_for(None) as anonymous:
        header = f"Bearer {forged}".encode("latin-1")
        r = await anonymous.get("/me", headers={"Authorization": header})
    assert r.status_code == 401, r.text
    assert r.json()["detail"] == "invalid run token"


async def test_workspace_limits_too_large_to_store_are_422_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/workspaces", json={"name": "big", "monthly_limit_minutes": 2**64})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "monthly_limit_minutes"
    assert "less than or equal to 2147483647" in r.json()["detail"]
    names = [w["name"] for w in (await client.get("/workspaces")).json()]
    assert "big" not in names
    r = await client.patch("/workspaces/default", json={"concurrency_limit": 2**31})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "concurrency_limit"
    assert (await client.get("/me")).json()["workspace"]["concurrency_limit"] is None
