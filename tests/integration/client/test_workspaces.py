"""Health, identity, workspaces, API keys and usage through the client."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flowyard.client import AuthError, ConflictError, FlowyardClient, NotFoundError
from flowyard.schemas import workspaces as ws
from tests.integration.client.conftest import ClientFactory, make_pool


async def test_health_and_version_answer_without_a_key(client_for: ClientFactory) -> None:
    async with client_for(None) as anonymous:
        assert await anonymous.check_health() is True
        version = await anonymous.read_version()
    assert version["api_version"] == "1"
    assert version["database"] in ("sqlite", "postgresql")


async def test_the_admin_key_belongs_to_the_default_workspace(client: FlowyardClient) -> None:
    me = await client.read_me()
    assert me.kind == "api_key"
    assert me.is_admin
    assert me.workspace.name == "default"


async def test_a_new_workspace_comes_with_an_owner_key_that_sees_only_its_own_objects(
    client: FlowyardClient, client_for: ClientFactory
) -> None:
    created = await client.create_workspace(ws.WorkspaceCreate(name="team-b"))
    assert created.key.startswith(f"fy_{created.prefix}_")
    await make_pool(client, "shared-name")
    async with client_for(created.key) as team_b:
        me = await team_b.read_me()
        assert me.workspace.name == "team-b"
        assert not me.is_admin
        with pytest.raises(NotFoundError):
            await team_b.read_work_pool("shared-name")
        assert [w.name for w in await team_b.list_workspaces()] == ["team-b"]
        with pytest.raises(AuthError, match="admin"):
            await team_b.create_workspace(ws.WorkspaceCreate(name="team-c"))
    names = {w.name for w in await client.list_workspaces()}
    assert names == {"default", "team-b"}


async def test_a_duplicate_workspace_name_is_a_conflict(client: FlowyardClient) -> None:
    await client.create_workspace(ws.WorkspaceCreate(name="dup"))
    with pytest.raises(ConflictError):
        await client.create_workspace(ws.WorkspaceCreate(name="dup"))


async def test_workspace_limits_are_updated_by_name(client: FlowyardClient) -> None:
    updated = await client.update_workspace(
        "default", ws.WorkspaceUpdate(monthly_limit_minutes=600, concurrency_limit=3)
    )
    assert (updated.monthly_limit_minutes, updated.concurrency_limit) == (600, 3)
    # Fields not set are left alone (the client sends only what was set).
    again = await client.update_workspace("default", ws.WorkspaceUpdate(hard_limit=True))
    assert (again.monthly_limit_minutes, again.hard_limit) == (600, True)


async def test_api_keys_are_created_listed_and_revoked_by_prefix(
    client: FlowyardClient, client_for: ClientFactory
) -> None:
    created = await client.create_api_key(ws.ApiKeyCreate(name="ci"))
    async with client_for(created.key) as ci:
        assert (await ci.read_me()).workspace.name == "default"
        listed = {k.prefix: k for k in await client.list_api_keys()}
        assert listed[created.prefix].name == "ci"
        assert not hasattr(listed[created.prefix], "key")
        revoked = await client.revoke_api_key(created.prefix)
        assert revoked.revoked_at is not None
        with pytest.raises(AuthError):
            await ci.read_me()


async def test_a_key_can_be_revoked_by_id(client: FlowyardClient) -> None:
    created = await client.create_api_key(ws.ApiKeyCreate(name="tmp"))
    assert (await client.revoke_api_key(created.id)).id == created.id


async def test_a_bad_key_is_an_auth_error(client_for: ClientFactory) -> None:
    async with client_for("fy_000000000000_nope") as bad:
        with pytest.raises(AuthError) as raised:
            await bad.read_me()
    assert raised.value.status == 401


async def test_usage_summary_and_records_for_this_month(client: FlowyardClient) -> None:
    month = datetime.now(UTC).strftime("%Y-%m")
    summary = await client.read_usage(by="day")
    assert summary.month == month
    assert summary.used_minutes == 0
    assert summary.by == "day"
    assert await client.list_usage_records(month) == []
