from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from flowyard.server.context import ServerContext
from flowyard.server.db import models as m
from tests.integration.api.conftest import ClientFactory, make_workspace_key
from tests.integration.api.test_task_runs import new_run, run_token

OCTETS = {"content-type": "application/octet-stream"}


async def test_bytes_round_trip_by_key(client: httpx.AsyncClient) -> None:
    payload = os.urandom(100_000) + b"\x00\xff"
    r = await client.put("/results/etl/extract/abc123", content=payload, headers=OCTETS)
    assert r.status_code == 201, r.text
    assert r.json()["size"] == len(payload)
    assert r.json()["key"] == "etl/extract/abc123"
    got = await client.get("/results/etl/extract/abc123")
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.content == payload


async def test_putting_again_replaces_the_bytes(client: httpx.AsyncClient) -> None:
    first = await client.put("/results/k", content=b"one", headers=OCTETS)
    second = await client.put("/results/k", content=b"two!", headers=OCTETS)
    assert (first.status_code, second.status_code) == (201, 200)
    assert (await client.get("/results/k")).content == b"two!"


async def test_an_empty_result_is_allowed(client: httpx.AsyncClient) -> None:
    assert (await client.put("/results/empty", content=b"", headers=OCTETS)).status_code == 201
    assert (await client.get("/results/empty")).content == b""


async def test_deleting_a_result_makes_it_not_found(client: httpx.AsyncClient) -> None:
    await client.put("/results/tmp", content=b"x", headers=OCTETS)
    assert (await client.delete("/results/tmp")).status_code == 204
    assert (await client.get("/results/tmp")).status_code == 404
    assert (await client.delete("/results/tmp")).status_code == 404


async def test_an_expired_result_is_not_found_and_frees_its_space(
    client: httpx.AsyncClient, ctx: ServerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = await client.put("/results/short", content=b"x" * 600, params={"expires_in": 60})
    assert r.status_code == 201, r.text
    expires = datetime.fromisoformat(r.json()["expires"])
    assert timedelta(seconds=50) < expires - datetime.now(UTC) <= timedelta(seconds=60)
    assert "x-flowyard-expires" in (await client.get("/results/short")).headers
    async with ctx.db.session() as session:  # let the clock pass the expiry
        past = datetime.now(UTC) - timedelta(seconds=1)
        await session.execute(update(m.Result).values(expires=past))
    assert (await client.get("/results/short")).status_code == 404
    monkeypatch.setattr(ctx.settings, "results_quota_bytes", 1000)
    r = await client.put("/results/next", content=b"y" * 600)
    assert r.status_code == 201, r.text


async def test_an_object_over_the_size_limit_is_a_clear_413(
    client: httpx.AsyncClient, ctx: ServerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ctx.settings, "result_max_bytes", 1024)
    r = await client.put("/results/big", content=b"x" * 1025, headers=OCTETS)
    assert r.status_code == 413
    assert r.json()["detail"].startswith("body:")
    assert "1024" in r.json()["detail"]

    async def chunks() -> AsyncIterator[
        bytes
    ]:  # no Content-Length: the limit applies while reading
        for _ in range(4):
            yield b"x" * 512

    r = await client.put("/results/big", content=chunks(), headers=OCTETS)
    assert r.status_code == 413
    assert (await client.get("/results/big")).status_code == 404


async def test_the_default_object_limit_is_ten_mebibytes(client: httpx.AsyncClient) -> None:
    r = await client.put("/results/huge", content=b"x" * (10 * 1024**2 + 1), headers=OCTETS)
    assert r.status_code == 413
    assert "10485760" in r.json()["detail"]


async def test_the_workspace_quota_is_a_clear_413_and_nothing_is_written(
    client: httpx.AsyncClient, ctx: ServerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ctx.settings, "results_quota_bytes", 1000)
    assert (await client.put("/results/a", content=b"x" * 600)).status_code == 201
    r = await client.put("/results/b", content=b"x" * 600)
    assert r.status_code == 413
    assert "quota" in r.json()["detail"]
    assert (await client.get("/results/b")).status_code == 404
    # Replacing an object counts its new size, not both.
    assert (await client.put("/results/a", content=b"x" * 900)).status_code == 200


async def test_bad_keys_and_parameters_are_refused_naming_them(client: httpx.AsyncClient) -> None:
    for key in ["a//b", "a/", "-leading", "sp ace", "x" * 300, "a/.hidden"]:
        r = await client.put(f"/results/{key}", content=b"x")
        assert r.status_code == 422, (key, r.text)
        assert r.json()["detail"].startswith("key:")
    r = await client.put("/results/ok", content=b"x", params={"expires_in": 0})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("expires_in:")
    r = await client.put("/results/ok", content=b"x", params={"expires_in": "soon"})
    assert r.status_code == 422
    assert (await client.get("/results/ok")).status_code == 404


async def test_another_workspaces_results_are_not_found(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    await client.put("/results/cache/key", content=b"mine")
    key = await make_workspace_key(client, "other")
    async with client_for(key) as other:
        assert (await other.get("/results/cache/key")).status_code == 404
        assert (await other.delete("/results/cache/key")).status_code == 404
        assert (await other.put("/results/cache/key", content=b"theirs")).status_code == 201
        assert (await other.get("/results/cache/key")).content == b"theirs"
    assert (await client.get("/results/cache/key")).content == b"mine"


async def test_run_tokens_share_the_workspaces_result_cache(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    first = await run_token(client, await new_run(client))
    second = await run_token(client, await new_run(client))
    async with client_for(first) as runner:
        assert (await runner.put("/results/shared", content=b"cached")).status_code == 201
    async with client_for(second) as runner:
        assert (await runner.get("/results/shared")).content == b"cached"
        assert (await runner.delete("/results/shared")).status_code == 204
