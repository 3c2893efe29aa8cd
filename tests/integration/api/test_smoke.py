from __future__ import annotations

import httpx

from tests.integration.api.conftest import make_deployment, make_pool


async def test_a_deployment_run_is_created_scheduled_with_parameters_merged(
    client: httpx.AsyncClient,
) -> None:
    await make_pool(client)
    dep = await make_deployment(client, parameters={"n": 2})
    r = await client.post(f"/deployments/{dep['id']}/runs", json={"parameters": {"name": "x"}})
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["state_type"] == "SCHEDULED"
    assert run["parameters"] == {"n": 2, "name": "x"}
    assert run["deployment_name"] == "etl/daily"
    assert run["work_pool_name"] == "pool"
    assert run["job_variables"]["cpu"] == 4.0
