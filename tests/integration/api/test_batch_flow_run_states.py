"""A batch ending with a flow run's state: proposed once the rest is stored, in one request."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from flowyard.server.context import ServerContext
from tests.integration.api.conftest import ClientFactory
from tests.integration.api.test_task_run_reports import at, coalesced, counts, line
from tests.integration.api.test_task_runs import new_run, run_token


def state(run_id: str, type_: str, **fields: object) -> dict[str, Any]:
    return {"flow_run_id": run_id, "type": type_, "timestamp": at(5), **fields}


async def test_the_state_is_proposed_after_the_batchs_lines_and_task_runs(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    run = await new_run(client, state={"type": "PENDING"})
    task = str(uuid.uuid4())
    async with client_for(await run_token(client, run)) as runner:
        r = await runner.post(
            "/task-runs/batch",
            json={
                "task_runs": [coalesced(run, task, ("RUNNING", 1), ("COMPLETED", 2))],
                "logs": [line(run, "hello")],
                "flow_run_state": state(run, "RUNNING", message="started"),
            },
        )
    assert r.status_code == 200, r.text
    body = r.json()
    verdict = body.pop("flow_run_state")
    assert body == {"created": 1, "updated": 0, "states_written": 2, "duplicates": 0}
    assert verdict["status"] == "ACCEPT"
    assert (verdict["state"]["type"], verdict["state"]["message"]) == ("RUNNING", "started")
    got = (await client.get(f"/flow-runs/{run}")).json()
    assert (got["state_type"], got["run_count"], got["state_id"]) == (
        "RUNNING",
        1,
        verdict["state"]["id"],
    )
    lines = (await client.get(f"/flow-runs/{run}/logs")).json()["items"]
    assert [x["message"] for x in lines] == ["hello"]
    history = (await client.get(f"/flow-runs/{run}/states")).json()
    assert [s["type"] for s in history] == ["PENDING", "RUNNING"]


async def test_a_state_the_policy_refuses_is_answered_and_the_batch_is_stored(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    run = await new_run(client)
    r = await client.post(f"/flow-runs/{run}/state", json={"type": "COMPLETED"})
    assert r.json()["status"] == "ACCEPT", r.text
    r = await client.post(
        "/task-runs/batch",
        json={"logs": [line(run, "late line")], "flow_run_state": state(run, "RUNNING")},
    )
    assert r.status_code == 200, r.text
    verdict = r.json()["flow_run_state"]
    assert (verdict["status"], verdict["state"]["type"]) == ("REJECT", "COMPLETED")
    assert "already COMPLETED" in verdict["reason"]
    assert (await client.get(f"/flow-runs/{run}")).json()["state_type"] == "COMPLETED"
    assert await counts(ctx) == (0, 0, 1)


async def test_a_state_that_fails_refuses_the_whole_batch(
    client: httpx.AsyncClient, client_for: ClientFactory, ctx: ServerContext
) -> None:
    run, other = await new_run(client), await new_run(client)
    async with client_for(await run_token(client, run)) as runner:
        cases = [
            (state(other, "COMPLETED"), 404),  # a run token acts on its own run only
            (state(str(uuid.uuid4()), "COMPLETED"), 404),
            (state(run, "COMPLETED", force=True), 403),
        ]
        for proposed, status in cases:
            r = await runner.post(
                "/task-runs/batch",
                json={
                    "task_runs": [coalesced(run, str(uuid.uuid4()), ("RUNNING", 0))],
                    "logs": [line(run, "stored with its state or not at all")],
                    "flow_run_state": proposed,
                },
            )
            assert r.status_code == status, (proposed, r.text)
    assert await counts(ctx) == (0, 0, 0)
    assert (await client.get(f"/flow-runs/{run}")).json()["state_type"] == "RUNNING"


async def test_a_bad_state_in_a_batch_is_refused_naming_its_field(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    run = await new_run(client)
    for bad, field in [
        (state(run, "BOGUS"), "flow_run_state.type"),
        (state(run, "COMPLETED", colour="red"), "flow_run_state.colour"),
        ({"type": "COMPLETED"}, "flow_run_state.flow_run_id"),
    ]:
        r = await client.post(
            "/task-runs/batch", json={"logs": [line(run, "x")], "flow_run_state": bad}
        )
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == field
    assert await counts(ctx) == (0, 0, 0)
