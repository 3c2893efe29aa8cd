"""Variables, secrets and stored results through the client."""

from __future__ import annotations

import pytest

from flowyard.client import FlowyardClient, NotFoundError, ValidationError
from flowyard.schemas import flow_runs as fr
from flowyard.schemas import variables as var
from tests.integration.client.conftest import ClientFactory


async def test_a_variable_holds_any_json_value_and_is_replaced_and_deleted(
    client: FlowyardClient,
) -> None:
    value = {"rows": [1, 2, 3], "nested": {"ok": True}, "none": None}
    created = await client.set_variable("etl.config", var.VariableSet(value=value, tags=["etl"]))
    assert (created.value, created.tags) == (value, ["etl"])
    assert (await client.read_variable("etl.config")).value == value
    replaced = await client.set_variable("etl.config", var.VariableSet(value=42))
    assert replaced.id == created.id
    assert (await client.read_variable("etl.config")).value == 42
    await client.delete_variable("etl.config")
    with pytest.raises(NotFoundError):
        await client.read_variable("etl.config")


async def test_variables_are_listed_by_prefix_and_iterated_across_pages(
    client: FlowyardClient,
) -> None:
    for name in ("a.one", "a.two", "a.three", "b.one"):
        await client.set_variable(name, var.VariableSet(value=name))
    page = await client.list_variables(prefix="a.", limit=2)
    assert len(page.items) == 2
    assert page.next_cursor is not None
    names = [v.name async for v in client.iter_variables(prefix="a.", page_size=2)]
    assert sorted(names) == ["a.one", "a.three", "a.two"]
    assert len([v async for v in client.iter_variables()]) == 4


async def test_a_bad_variable_name_is_refused_naming_it(client: FlowyardClient) -> None:
    with pytest.raises(ValidationError) as raised:
        await client.set_variable("bad name!", var.VariableSet(value=1))
    assert raised.value.field == "name"


async def test_a_secret_value_is_only_in_its_value_endpoint(client: FlowyardClient) -> None:
    info = await client.set_secret("github-token", "ghp_s3cret")
    assert "ghp_s3cret" not in info.model_dump_json()
    assert (await client.read_secret("github-token")).id == info.id
    listed = [s async for s in client.iter_secrets()]
    assert [s.name for s in listed] == ["github-token"]
    assert "ghp_s3cret" not in str([s.model_dump() for s in listed])
    assert (await client.read_secret_value("github-token")).value == "ghp_s3cret"
    page = await client.list_secrets(prefix="git", limit=1)
    assert [s.name for s in page.items] == ["github-token"]
    await client.delete_secret("github-token")
    with pytest.raises(NotFoundError):
        await client.read_secret_value("github-token")


async def test_a_run_token_reads_variables_and_secret_values_of_its_workspace(
    client: FlowyardClient, client_for: ClientFactory
) -> None:
    await client.set_variable("threshold", var.VariableSet(value=0.5))
    await client.set_secret("db-password", "hunter2")
    run = await client.create_ad_hoc_flow_run(fr.AdHocFlowRunCreate(flow_name="etl"))
    async with client_for(await client.issue_run_token(run.id)) as runner:
        assert (await runner.read_variable("threshold")).value == 0.5
        assert (await runner.read_secret_value("db-password")).value == "hunter2"


async def test_a_result_is_stored_as_bytes_under_a_namespaced_key(
    client: FlowyardClient,
) -> None:
    data = bytes(range(256)) * 100
    key = "etl/extract/abc123:v=1+x"
    info = await client.write_result(key, data, expires_in=3600)
    assert (info.key, info.size) == (key, len(data))
    assert info.expires is not None
    assert await client.read_result(key) == data
    await client.write_result(key, b"replaced")
    assert await client.read_result(key) == b"replaced"
    await client.delete_result(key)
    with pytest.raises(NotFoundError):
        await client.read_result(key)


async def test_a_result_key_cannot_climb_out_of_the_results_endpoint(
    client: FlowyardClient,
) -> None:
    await client.set_variable("x", var.VariableSet(value=1))
    with pytest.raises(ValidationError, match="key"):
        await client.read_result("../variables/x")
