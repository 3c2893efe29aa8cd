from __future__ import annotations

import logging

import httpx
import pytest
from sqlalchemy import select

from flowyard.server.context import ServerContext
from flowyard.server.db import models as m
from flowyard.server.keys import ServerKeys
from tests.integration.api.conftest import ClientFactory, make_workspace_key
from tests.integration.api.test_task_runs import new_run, run_token

PLAINTEXT = "hunter2-s3cr3t-value"


async def test_a_secret_is_stored_encrypted_and_its_value_read_back(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    r = await client.put("/secrets/db-password", json={"value": PLAINTEXT})
    assert r.status_code == 201, r.text
    assert PLAINTEXT not in r.text
    async with ctx.db.session() as session:
        stored = (await session.execute(select(m.Secret.ciphertext))).scalar_one()
    assert PLAINTEXT.encode() not in stored
    assert ctx.keys.decrypt(stored) == PLAINTEXT
    got = await client.get("/secrets/db-password/value")
    assert got.json() == {"name": "db-password", "value": PLAINTEXT}
    assert got.headers["cache-control"] == "no-store"


async def test_listings_and_metadata_never_show_values(client: httpx.AsyncClient) -> None:
    for name in ["aws-key", "aws-secret", "github-token"]:
        await client.put(f"/secrets/{name}", json={"value": f"{PLAINTEXT}-{name}"})
    listing = await client.get("/secrets")
    assert [s["name"] for s in listing.json()["items"]] == ["aws-key", "aws-secret", "github-token"]
    assert PLAINTEXT not in listing.text
    assert set(listing.json()["items"][0]) == {"id", "name", "created", "updated"}
    one = await client.get("/secrets/aws-key")
    assert one.json()["name"] == "aws-key"
    assert PLAINTEXT not in one.text
    page = (await client.get("/secrets", params={"prefix": "aws-", "limit": 1})).json()
    assert [s["name"] for s in page["items"]] == ["aws-key"]
    params = {"prefix": "aws-", "cursor": page["next_cursor"]}
    rest = (await client.get("/secrets", params=params)).json()
    assert [s["name"] for s in rest["items"]] == ["aws-secret"]


async def test_replacing_a_secret_changes_its_value(client: httpx.AsyncClient) -> None:
    first = await client.put("/secrets/token", json={"value": "old"})
    second = await client.put("/secrets/token", json={"value": "new"})
    assert (first.status_code, second.status_code) == (201, 200)
    assert (await client.get("/secrets/token/value")).json()["value"] == "new"


async def test_deleting_a_secret_makes_it_not_found(client: httpx.AsyncClient) -> None:
    await client.put("/secrets/temp", json={"value": "x"})
    assert (await client.delete("/secrets/temp")).status_code == 204
    assert (await client.get("/secrets/temp")).status_code == 404
    assert (await client.get("/secrets/temp/value")).status_code == 404


async def test_bad_input_is_refused_without_echoing_the_value(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    oversize = PLAINTEXT * 4000
    cases = [
        ({"value": oversize}, "value:"),
        ({"value": f"{PLAINTEXT}\x00"}, "value:"),
        ({"value": 12345}, "value:"),
        ({"value": PLAINTEXT, "note": "x"}, "note:"),
        ({}, "value:"),
    ]
    for body, field in cases:
        r = await client.put("/secrets/bad", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["detail"].startswith(field)
        assert PLAINTEXT not in r.text
    assert PLAINTEXT not in caplog.text
    assert (await client.get("/secrets/bad")).status_code == 404


async def test_a_value_that_no_longer_decrypts_is_a_clear_conflict(
    client: httpx.AsyncClient, ctx: ServerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.put("/secrets/old-key", json={"value": PLAINTEXT})
    monkeypatch.setattr(ctx, "keys", ServerKeys.from_master(b"another-server-key"))
    r = await client.get("/secrets/old-key/value")
    assert r.status_code == 409
    assert "server key" in r.json()["detail"]
    assert PLAINTEXT not in r.text


async def test_another_workspaces_secrets_are_not_found(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    await client.put("/secrets/shared", json={"value": PLAINTEXT})
    key = await make_workspace_key(client, "other")
    async with client_for(key) as other:
        assert (await other.get("/secrets/shared")).status_code == 404
        assert (await other.get("/secrets/shared/value")).status_code == 404
        assert (await other.delete("/secrets/shared")).status_code == 404
        assert (await other.get("/secrets")).json()["items"] == []
    assert (await client.get("/secrets/shared/value")).json()["value"] == PLAINTEXT


async def test_a_run_token_reads_secret_values_of_its_workspace_but_cannot_change_them(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    await client.put("/secrets/api-token", json={"value": PLAINTEXT})
    token = await run_token(client, await new_run(client))
    async with client_for(token) as runner:
        assert (await runner.get("/secrets/api-token/value")).json()["value"] == PLAINTEXT
        assert (await runner.put("/secrets/api-token", json={"value": "x"})).status_code == 403
        assert (await runner.delete("/secrets/api-token")).status_code == 403
    assert (await client.get("/secrets/api-token/value")).json()["value"] == PLAINTEXT
