from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.integration.api.conftest import (
    ClientFactory,
    make_deployment,
    make_pool,
    make_workspace_key,
    post_deployment,
)


async def test_a_managed_pool_gets_the_platform_policy_template(client: httpx.AsyncClient) -> None:
    pool = await make_pool(client)
    props = pool["base_job_template"]["variables"]["properties"]  # type: ignore[index]
    assert props["cpu"]["maximum"] == 4.0
    assert props["memory_gib"]["default"] == 16.0
    assert props["storage_gib"]["default"] == 128.0
    assert props["max_run_seconds"]["default"] == 86400
    assert {"pip_packages", "requirements_file", "env", "runtime"} <= set(props)


async def test_prefect_managed_type_spelling_is_accepted(client: httpx.AsyncClient) -> None:
    r = await client.post("/work-pools", json={"name": "p2", "type": "prefect:managed"})
    assert r.status_code == 201
    assert r.json()["type"] == "managed"


async def test_duplicate_pool_name_is_409(client: httpx.AsyncClient) -> None:
    await make_pool(client)
    r = await client.post("/work-pools", json={"name": "pool", "type": "managed"})
    assert r.status_code == 409
    assert "already exists" in r.json()["detail"]


async def test_pause_resume_update_and_delete_a_pool(client: httpx.AsyncClient) -> None:
    await make_pool(client)
    assert (await client.patch("/work-pools/pool", json={"paused": True})).json()["paused"] is True
    r = await client.patch("/work-pools/pool", json={"concurrency_limit": 2})
    assert r.json()["concurrency_limit"] == 2
    assert (await client.delete("/work-pools/pool")).status_code == 204
    assert (await client.get("/work-pools/pool")).status_code == 404


async def test_only_the_operator_changes_a_pools_resource_policy(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    owner_key = await make_workspace_key(client, "team")
    async with client_for(owner_key) as owner:
        pool = await make_pool(owner)
        r = await owner.patch(
            "/work-pools/pool", json={"base_job_template": pool["base_job_template"]}
        )
        assert r.status_code == 403
        assert (
            await owner.patch("/work-pools/pool", json={"isolation": "none"})
        ).status_code == 403


@pytest.mark.parametrize(
    ("job_variables", "field", "words"),
    [
        ({"gpu": 1}, "job_variables.gpu", "is not a known field; expected one of cpu, env, "),
        ({"cpu": 8}, "job_variables.cpu", "at most 4"),
        ({"memory_gib": 64}, "job_variables.memory_gib", "at most 16"),
        ({"max_run_seconds": 90000}, "job_variables.max_run_seconds", "at most 86400"),
        ({"pip_packages": "pandas"}, "job_variables.pip_packages", "expected array"),
        ({"env": {"A": 1}}, "job_variables.env.A", "expected string"),
        ({"network": "full"}, "job_variables.network", "expected one of"),
        ({"cpu": float("nan")}, "job_variables.cpu", "must be a finite number"),
        ({"memory_gib": float("inf")}, "job_variables.memory_gib", "must be a finite number"),
    ],
)
async def test_job_variables_outside_the_pool_template_are_422_naming_the_variable(
    client: httpx.AsyncClient, job_variables: dict[str, object], field: str, words: str
) -> None:
    await make_pool(client)
    body = {
        "flow_name": "f",
        "name": "d",
        "entrypoint": "flow.py:f",
        "work_pool_name": "pool",
        "job_variables": job_variables,
    }
    # Python's json writes NaN and Infinity (not JSON, but what many clients send).
    r = await client.post(
        "/deployments", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field
    assert words in r.json()["detail"]
    assert (await client.get("/deployments")).json() == []  # nothing written


async def test_deploy_is_create_or_update_by_flow_and_name(client: httpx.AsyncClient) -> None:
    await make_pool(client)
    first = await make_deployment(client, description="v1")
    second = await make_deployment(client, description="v2", tags=["a"])
    assert first["id"] == second["id"]
    assert second["description"] == "v2"
    assert len((await client.get("/deployments")).json()) == 1


async def test_deploying_to_a_paused_pool_warns_at_deploy_time(client: httpx.AsyncClient) -> None:
    await make_pool(client, paused=True)
    dep = await make_deployment(client)
    assert any("work pool 'pool' is paused" in w for w in dep["warnings"])  # type: ignore[union-attr]


async def test_deploying_to_an_unknown_pool_says_how_to_create_it(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post(
        "/deployments",
        json={"flow_name": "f", "name": "d", "entrypoint": "a.py:f", "work_pool_name": "nope"},
    )
    assert r.status_code == 422
    assert "flowyard work-pool create nope --type managed" in r.json()["detail"]


@pytest.mark.parametrize(
    "entrypoint",
    ["/etc/passwd.py:f", "../up.py:f", "a/../../b.py:f", "flow.py", "flow.txt:f", "f.py:1x"],
)
async def test_bad_entrypoints_are_refused(client: httpx.AsyncClient, entrypoint: str) -> None:
    r = await client.post(
        "/deployments", json={"flow_name": "f", "name": "d", "entrypoint": entrypoint}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "entrypoint"


async def test_git_transport_helpers_are_refused(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/deployments",
        json={
            "flow_name": "f",
            "name": "d",
            "entrypoint": "a.py:f",
            "source": {"kind": "git", "url": "ext::sh -c touch% /tmp/pwned"},
        },
    )
    assert r.status_code == 422
    assert "transport helpers" in r.json()["detail"]


async def test_schedules_are_stored_and_validated(client: httpx.AsyncClient) -> None:
    await make_pool(client)
    dep = await make_deployment(
        client,
        schedules=[
            {"schedule": {"cron": "0 * * * *", "timezone": "Europe/Paris"}},
            {"schedule": {"interval": 600}, "active": False},
            {"schedule": {"rrule": "FREQ=DAILY;BYHOUR=9"}},
        ],
    )
    assert len(dep["schedules"]) == 3  # type: ignore[arg-type]
    r = await client.post(
        "/deployments",
        json={
            "flow_name": "f",
            "name": "d",
            "entrypoint": "a.py:f",
            "schedules": [{"schedule": {"cron": "not a cron"}}],
        },
    )
    assert r.status_code == 422
    assert "not a valid cron expression" in r.json()["detail"]


async def test_deployment_read_by_name_update_and_delete(client: httpx.AsyncClient) -> None:
    await make_pool(client)
    dep = await make_deployment(client)
    by_name = (await client.get("/deployments/name/etl/daily")).json()
    assert by_name["id"] == dep["id"]
    r = await client.patch(
        f"/deployments/{dep['id']}", json={"paused": True, "concurrency_limit": 1}
    )
    assert r.json()["paused"] is True
    assert (await client.delete(f"/deployments/{dep['id']}")).status_code == 204
    assert (await client.get(f"/deployments/{dep['id']}")).status_code == 404


async def test_concurrency_limits_too_large_to_store_are_422_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/work-pools", json={"name": "big", "concurrency_limit": 2**70})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "concurrency_limit"
    assert (await client.get("/work-pools/big")).status_code == 404
    await make_pool(client)
    r = await client.patch("/work-pools/pool", json={"concurrency_limit": 2**31})
    assert r.status_code == 422, r.text
    dep = await make_deployment(client)
    r = await client.patch(f"/deployments/{dep['id']}", json={"concurrency_limit": 2**63})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "concurrency_limit"
    assert (await client.get(f"/deployments/{dep['id']}")).json()["concurrency_limit"] is None


async def test_an_offset_too_large_for_the_database_is_422(client: httpx.AsyncClient) -> None:
    r = await client.get("/deployments", params={"offset": 2**64})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "offset"
    r = await client.get("/deployments", params={"offset": 2**31 - 1})
    assert r.status_code == 200, r.text
    assert r.json() == []


@pytest.mark.parametrize(
    ("parameter_schema", "words"),
    [
        ({"$ref": "#/definitions/missing"}, "$ref '/definitions/missing' resolves nowhere"),
        ({"$ref": "other.json"}, "$ref 'other.json' resolves nowhere"),
        (
            {"definitions": {"x": {"$ref": "#/definitions/x"}}, "$ref": "#/definitions/x"},
            "$refs loop forever",
        ),
    ],
)
async def test_a_parameter_schema_whose_refs_do_not_resolve_is_422(
    client: httpx.AsyncClient, parameter_schema: dict[str, object], words: str
) -> None:
    await make_pool(client)
    r = await post_deployment(client, work_pool_name="pool", parameter_schema=parameter_schema)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "parameters"
    assert words in r.json()["detail"]
    assert (await client.get("/deployments")).json() == []


async def test_a_parameter_schema_never_makes_the_server_fetch_a_url(
    client: httpx.AsyncClient,
) -> None:
    fetched: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetched.append(self.path)
            body = json.dumps({"type": "object"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/schema.json"
    try:
        await make_pool(client)
        r = await post_deployment(client, parameter_schema={"$ref": url})
    finally:
        server.shutdown()
        server.server_close()
    assert r.status_code == 422, r.text
    assert f"$ref '{url}' resolves nowhere" in r.json()["detail"]
    assert fetched == []


async def test_an_interval_anchor_utc_cannot_hold_is_422(client: httpx.AsyncClient) -> None:
    await make_pool(client)
    anchor = "0001-01-01T00:00:00+05:00"
    r = await post_deployment(
        client, schedules=[{"schedule": {"interval": 60, "anchor_date": anchor}}]
    )
    assert r.status_code == 422, r.text
    assert "out of the supported time range" in r.text
    assert (await client.get("/deployments")).json() == []
