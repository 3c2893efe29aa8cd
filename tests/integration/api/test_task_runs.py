from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from flowyard.server.context import ServerContext
from flowyard.server.db import models as m
from tests.integration.api.conftest import ClientFactory, make_workspace_key

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


async def new_run(client: httpx.AsyncClient, **fields: object) -> str:
    r = await client.post("/flow-runs", json={"flow_name": "etl", **fields})
    assert r.status_code == 201, r.text
    run_id: str = r.json()["id"]
    return run_id


async def run_token(client: httpx.AsyncClient, run_id: str) -> str:
    r = await client.post(f"/flow-runs/{run_id}/token")
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


def entry(
    run_id: str, task_id: str, state: str, seconds: float = 0, **fields: object
) -> dict[str, Any]:
    return {
        "id": task_id,
        "flow_run_id": run_id,
        "name": "extract",
        "task_key": "flows.etl.extract",
        "state_type": state,
        "timestamp": (T0 + timedelta(seconds=seconds)).isoformat(),
        **fields,
    }


async def batch(client: httpx.AsyncClient, *entries: dict[str, Any]) -> httpx.Response:
    return await client.post("/task-runs/batch", json={"task_runs": list(entries)})


async def test_a_batch_creates_task_runs_with_history_and_timings(
    client: httpx.AsyncClient,
) -> None:
    run = await new_run(client)
    task = str(uuid.uuid4())
    r = await batch(
        client,
        entry(run, task, "PENDING", 0),
        entry(run, task, "RUNNING", 1),
        entry(run, task, "COMPLETED", 3, cache_key="abc"),
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 1, "updated": 0, "states_written": 3, "duplicates": 0}
    got = (await client.get(f"/task-runs/{task}")).json()
    assert got["state_type"] == "COMPLETED"
    assert got["state_name"] == "Completed"
    assert got["cache_key"] == "abc"
    assert got["run_count"] == 1
    assert datetime.fromisoformat(got["start_time"]) == T0 + timedelta(seconds=1)
    assert datetime.fromisoformat(got["end_time"]) == T0 + timedelta(seconds=3)
    states = (await client.get(f"/task-runs/{task}/states")).json()
    assert [s["type"] for s in states] == ["PENDING", "RUNNING", "COMPLETED"]


async def test_entries_out_of_order_in_a_batch_apply_in_timestamp_order(
    client: httpx.AsyncClient,
) -> None:
    run = await new_run(client)
    task = str(uuid.uuid4())
    r = await batch(client, entry(run, task, "COMPLETED", 5), entry(run, task, "RUNNING", 1))
    assert r.status_code == 200, r.text
    got = (await client.get(f"/task-runs/{task}")).json()
    assert got["state_type"] == "COMPLETED"
    assert got["run_count"] == 1


async def test_a_later_batch_moves_state_and_a_retry_counts_a_second_run(
    client: httpx.AsyncClient,
) -> None:
    run = await new_run(client)
    task = str(uuid.uuid4())
    await batch(client, entry(run, task, "RUNNING", 0), entry(run, task, "FAILED", 1))
    r = await batch(
        client,
        entry(run, task, "SCHEDULED", 2, state_name="AwaitingRetry"),
        entry(run, task, "RUNNING", 3, state_name="Retrying"),
        entry(run, task, "COMPLETED", 4),
    )
    assert r.json() == {"created": 0, "updated": 1, "states_written": 3, "duplicates": 0}
    got = (await client.get(f"/task-runs/{task}")).json()
    assert (got["state_type"], got["run_count"]) == ("COMPLETED", 2)
    assert datetime.fromisoformat(got["start_time"]) == T0
    assert datetime.fromisoformat(got["end_time"]) == T0 + timedelta(seconds=4)


async def test_resending_a_batch_changes_nothing(client: httpx.AsyncClient) -> None:
    run = await new_run(client)
    task = str(uuid.uuid4())
    entries = [entry(run, task, "RUNNING", 0), entry(run, task, "COMPLETED", 1)]
    await batch(client, *entries)
    r = await batch(client, *entries)
    assert r.json() == {"created": 0, "updated": 0, "states_written": 0, "duplicates": 2}
    assert len((await client.get(f"/task-runs/{task}/states")).json()) == 2


async def test_a_late_older_entry_is_kept_in_history_without_rewinding_the_task(
    client: httpx.AsyncClient,
) -> None:
    run = await new_run(client)
    task = str(uuid.uuid4())
    await batch(client, entry(run, task, "COMPLETED", 5))
    r = await batch(client, entry(run, task, "RUNNING", 1))
    assert r.json()["states_written"] == 1
    assert r.json()["updated"] == 0
    assert (await client.get(f"/task-runs/{task}")).json()["state_type"] == "COMPLETED"
    states = (await client.get(f"/task-runs/{task}/states")).json()
    assert [s["type"] for s in states] == ["RUNNING", "COMPLETED"]


async def test_a_thousand_task_runs_are_written_in_one_batch(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    run = await new_run(client)
    tasks = [str(uuid.uuid4()) for _ in range(1000)]
    r = await batch(client, *(entry(run, t, "RUNNING", i / 1000) for i, t in enumerate(tasks)))
    assert r.json()["created"] == 1000
    r = await batch(client, *(entry(run, t, "COMPLETED", 2) for t in tasks))
    assert r.json()["updated"] == 1000
    async with ctx.db.session() as session:
        states = await session.scalar(select(func.count()).select_from(m.TaskRunState))
        done = await session.scalar(select(func.count()).where(m.TaskRun.state_type == "COMPLETED"))
    assert (states, done) == (2000, 1000)


async def test_listing_a_runs_task_runs_pages_in_creation_order_and_filters_by_state(
    client: httpx.AsyncClient,
) -> None:
    run = await new_run(client)
    tasks = [str(uuid.uuid4()) for _ in range(5)]
    await batch(
        client,
        *(
            entry(run, t, "COMPLETED" if i % 2 else "RUNNING", i, name=f"t{i}")
            for i, t in enumerate(tasks)
        ),
    )
    first = (await client.get(f"/flow-runs/{run}/task-runs", params={"limit": 3})).json()
    assert [t["name"] for t in first["items"]] == ["t0", "t1", "t2"]
    rest = await client.get(
        f"/flow-runs/{run}/task-runs", params={"limit": 3, "cursor": first["next_cursor"]}
    )
    assert [t["name"] for t in rest.json()["items"]] == ["t3", "t4"]
    assert rest.json()["next_cursor"] is None
    done = await client.get(f"/flow-runs/{run}/task-runs", params={"state": "COMPLETED"})
    assert [t["name"] for t in done.json()["items"]] == ["t1", "t3"]


async def test_a_bad_cursor_is_refused_naming_it(client: httpx.AsyncClient) -> None:
    run = await new_run(client)
    r = await client.get(f"/flow-runs/{run}/task-runs", params={"cursor": "nonsense"})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("cursor:")


async def test_a_batch_with_a_missing_flow_run_names_the_entry_and_writes_nothing(
    client: httpx.AsyncClient,
) -> None:
    run = await new_run(client)
    good, bad = str(uuid.uuid4()), str(uuid.uuid4())
    r = await batch(client, entry(run, good, "RUNNING"), entry(str(uuid.uuid4()), bad, "RUNNING"))
    assert r.status_code == 404
    assert r.json()["detail"].startswith("task_runs.1.flow_run_id:")
    assert (await client.get(f"/task-runs/{good}")).status_code == 404


async def test_bad_entries_are_refused_naming_the_field(client: httpx.AsyncClient) -> None:
    run = await new_run(client)
    task = str(uuid.uuid4())
    cases = [
        (entry(run, task, "BOGUS"), "task_runs.0.state_type"),
        (entry(run, task, "RUNNING", timestamp="2030-01-01T00:00:00"), "task_runs.0.timestamp"),
        (entry(run, task, "RUNNING", run_count=-1), "task_runs.0.run_count"),
        (entry(run, task, "RUNNING", run_count=10**30), "task_runs.0.run_count"),
        (entry(run, task, "RUNNING", colour="red"), "task_runs.0.colour"),
        (entry(run, task, "RUNNING", name=""), "task_runs.0.name"),
    ]
    for body, field in cases:
        r = await batch(client, body)
        assert r.status_code == 422, (field, r.text)
        assert r.json()["detail"].startswith(f"{field}:"), r.json()
    r = await client.post(
        "/task-runs/batch", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert "malformed JSON" in r.json()["detail"]
    assert (await client.get(f"/task-runs/{task}")).status_code == 404


async def test_nul_characters_in_reported_text_are_stored_as_replacement_characters(
    client: httpx.AsyncClient,
) -> None:
    run = await new_run(client)
    task = str(uuid.uuid4())
    r = await batch(client, entry(run, task, "FAILED", state_message="boom\x00here"))
    assert r.status_code == 200, r.text
    got = (await client.get(f"/task-runs/{task}")).json()
    assert got["state_message"] == "boom\ufffdhere"


async def test_a_task_run_cannot_move_to_another_flow_run(client: httpx.AsyncClient) -> None:
    run, other = await new_run(client), await new_run(client)
    task = str(uuid.uuid4())
    await batch(client, entry(run, task, "RUNNING"))
    r = await batch(client, entry(other, task, "COMPLETED", 1))
    assert r.status_code == 409
    assert "task_runs.0.id" in r.json()["detail"]


async def test_a_finished_flow_run_accepts_only_finished_task_runs(
    client: httpx.AsyncClient,
) -> None:
    run = await new_run(client)
    running = str(uuid.uuid4())
    await batch(client, entry(run, running, "RUNNING"))
    r = await client.post(f"/flow-runs/{run}/state", json={"type": "CANCELLED"})
    assert r.json()["status"] == "ACCEPT", r.text
    r = await batch(client, entry(run, str(uuid.uuid4()), "RUNNING", 1))
    assert r.status_code == 409
    assert "CANCELLED" in r.json()["detail"]
    late = str(uuid.uuid4())
    r = await batch(
        client,
        entry(run, running, "CANCELLED", 2),
        entry(run, late, "PENDING", 0),
        entry(run, late, "COMPLETED", 1),
    )
    assert r.status_code == 200, r.text
    assert (await client.get(f"/task-runs/{running}")).json()["state_type"] == "CANCELLED"


async def test_another_workspaces_task_runs_are_not_found(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    run = await new_run(client)
    task = str(uuid.uuid4())
    await batch(client, entry(run, task, "RUNNING"))
    key = await make_workspace_key(client, "other")
    async with client_for(key) as other:
        assert (await other.get(f"/task-runs/{task}")).status_code == 404
        assert (await other.get(f"/task-runs/{task}/states")).status_code == 404
        assert (await other.get(f"/flow-runs/{run}/task-runs")).status_code == 404
        r = await batch(other, entry(run, str(uuid.uuid4()), "RUNNING"))
        assert r.status_code == 404
        their_run = await new_run(other)
        r = await batch(other, entry(their_run, task, "COMPLETED", 1))
        assert r.status_code == 409  # the id is taken; the answer does not say where
    assert (await client.get(f"/task-runs/{task}")).json()["state_type"] == "RUNNING"


async def test_a_run_token_writes_task_runs_of_its_own_run_tree_only(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    run, stranger = await new_run(client), await new_run(client)
    token = await run_token(client, run)
    async with client_for(token) as runner:
        subflow = await new_run(runner, flow_name="sub")
        mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
        r = await batch(runner, entry(run, mine, "RUNNING"), entry(subflow, theirs, "RUNNING"))
        assert r.status_code == 200, r.text
        assert (await runner.get(f"/task-runs/{mine}")).status_code == 200
        assert (await runner.get(f"/flow-runs/{subflow}/task-runs")).status_code == 200
        r = await batch(runner, entry(stranger, str(uuid.uuid4()), "RUNNING"))
        assert r.status_code == 404
        assert (await runner.get(f"/flow-runs/{stranger}/task-runs")).status_code == 404
    foreign = str(uuid.uuid4())
    await batch(client, entry(stranger, foreign, "RUNNING"))
    async with client_for(token) as runner:
        assert (await runner.get(f"/task-runs/{foreign}")).status_code == 404
        assert (await runner.get(f"/task-runs/{foreign}/states")).status_code == 404


async def test_an_empty_batch_is_accepted_and_changes_nothing(client: httpx.AsyncClient) -> None:
    r = await batch(client)
    assert r.status_code == 200
    assert r.json() == {"created": 0, "updated": 0, "states_written": 0, "duplicates": 0}
