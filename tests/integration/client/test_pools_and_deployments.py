"""Work pools and deployments through the client."""

from __future__ import annotations

import pytest

from flowyard.client import ConflictError, FlowyardClient, NotFoundError, ValidationError
from flowyard.schemas import deployments as dep
from flowyard.schemas import flow_runs as fr
from flowyard.schemas import work_pools as wp
from tests.integration.client.conftest import make_deployment, make_pool


async def test_a_work_pool_is_created_read_listed_updated_and_deleted(
    client: FlowyardClient,
) -> None:
    created = await make_pool(client)
    assert created.type is wp.WorkPoolType.MANAGED
    assert (await client.read_work_pool("pool")).id == created.id
    assert [p.name for p in await client.list_work_pools()] == ["pool"]
    paused = await client.update_work_pool("pool", wp.WorkPoolUpdate(paused=True))
    assert paused.paused
    assert paused.description == created.description
    await client.delete_work_pool("pool")
    with pytest.raises(NotFoundError, match="pool"):
        await client.read_work_pool("pool")


async def test_a_duplicate_pool_name_is_a_conflict(client: FlowyardClient) -> None:
    await make_pool(client)
    with pytest.raises(ConflictError):
        await make_pool(client)


async def test_the_default_managed_template_carries_packages_and_the_resource_policy(
    client: FlowyardClient,
) -> None:
    template = await client.read_default_base_job_template(wp.WorkPoolType.MANAGED)
    variables = template["variables"]
    assert isinstance(variables, dict)
    assert {"pip_packages", "cpu", "memory_gib", "max_run_seconds"} <= set(variables["properties"])
    process = await client.read_default_base_job_template("process")
    assert process != template


async def test_a_deployment_is_upserted_by_flow_and_name(client: FlowyardClient) -> None:
    await make_pool(client)
    first = await make_deployment(client, description="v1")
    second = await make_deployment(client, description="v2")
    assert first.id == second.id
    assert second.description == "v2"
    assert second.full_name == "etl/daily"
    assert second.work_pool_name == "pool"


async def test_a_deployment_is_read_by_id_and_by_full_name(client: FlowyardClient) -> None:
    await make_pool(client)
    created = await make_deployment(client)
    assert (await client.read_deployment(created.id)).name == "daily"
    assert (await client.read_deployment(str(created.id))).name == "daily"
    assert (await client.read_deployment_by_name("etl/daily")).id == created.id
    with pytest.raises(NotFoundError):
        await client.read_deployment_by_name("etl/weekly")


async def test_deployments_are_listed_with_filters(client: FlowyardClient) -> None:
    await make_pool(client)
    await make_pool(client, "other")
    await make_deployment(client, tags=["nightly"])
    await make_deployment(client, name="adhoc", work_pool_name="other")
    await make_deployment(client, flow_name="report", name="weekly")
    assert len(await client.list_deployments()) == 3
    assert [d.name for d in await client.list_deployments(work_pool="other")] == ["adhoc"]
    assert [d.name for d in await client.list_deployments(tag="nightly")] == ["daily"]
    assert {d.flow_name for d in await client.list_deployments(flow_name="report")} == {"report"}
    assert len(await client.list_deployments(limit=2)) == 2


async def test_a_deployment_is_updated_and_deleted(client: FlowyardClient) -> None:
    await make_pool(client)
    created = await make_deployment(client, tags=["a"])
    updated = await client.update_deployment(created.id, dep.DeploymentUpdate(paused=True))
    assert updated.paused
    assert updated.tags == ["a"]  # unset fields are not sent, so not cleared
    await client.delete_deployment(created.id)
    with pytest.raises(NotFoundError):
        await client.read_deployment(created.id)


async def test_a_bad_job_variable_is_a_validation_error_naming_the_variable(
    client: FlowyardClient,
) -> None:
    await make_pool(client)
    with pytest.raises(ValidationError) as raised:
        await make_deployment(client, job_variables={"cpu": 64})
    assert raised.value.field == "job_variables.cpu"
    assert str(raised.value) == "job_variables.cpu: must be at most 4.0 (got 64)"


async def test_a_run_of_a_deployment_merges_parameters_and_is_scheduled(
    client: FlowyardClient,
) -> None:
    await make_pool(client)
    deployment = await make_deployment(client, parameters={"n": 2})
    run = await client.create_flow_run(deployment.id, fr.FlowRunCreate(parameters={"name": "x"}))
    assert run.parameters == {"n": 2, "name": "x"}
    assert run.deployment_name == "etl/daily"
    assert run.state_type == "SCHEDULED"


async def test_a_run_with_a_bad_parameter_names_it_and_creates_nothing(
    client: FlowyardClient,
) -> None:
    await make_pool(client)
    deployment = await make_deployment(client)
    with pytest.raises(ValidationError) as raised:
        await client.create_flow_run(deployment.id, fr.FlowRunCreate(parameters={"n": "three"}))
    assert raised.value.field == "parameters.n"
    assert "expected integer" in raised.value.errors[0].message
    assert (await client.list_flow_runs()).items == []


async def test_an_idempotency_key_used_twice_returns_the_same_run(client: FlowyardClient) -> None:
    await make_pool(client)
    deployment = await make_deployment(client, parameters={"n": 1})
    request = fr.FlowRunCreate(idempotency_key="nightly-2026-01-01")
    first = await client.create_flow_run(deployment.id, request)
    second = await client.create_flow_run(deployment.id, request)
    assert first.id == second.id
