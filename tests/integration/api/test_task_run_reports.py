"""Task-run batches as the SDK sends them: coalesced states and log lines in one request."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from flowyard.server.context import ServerContext
from flowyard.server.db import models as m
from tests.integration.api.conftest import ClientFactory, make_workspace_key
from tests.integration.api.test_task_runs import T0, batch, entry, new_run


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def coalesced(
    run_id: str, task_id: str, *states: tuple[str, float], **fields: object
) -> dict[str, Any]:
    """One entry holding the task run's last state, with the ones before it."""
    *earlier, (last, seconds) = states
    return {
        **entry(run_id, task_id, last, seconds, **fields),
        "previous_states": [{"type": t, "timestamp": at(s)} for t, s in earlier],
    }


def line(run_id: str, message: str, task_id: str | None = None, **fields: object) -> dict[str, Any]:
    return {
        "flow_run_id": run_id,
        "task_run_id": task_id,
        "level": 20,
        "message": message,
        "timestamp": at(0),
        **fields,
    }


async def report(
    client: httpx.AsyncClient, task_runs: list[dict[str, Any]], logs: list[dict[str, Any]]
) -> httpx.Response:
    return await client.post("/task-runs/batch", json={"task_runs": task_runs, "logs": logs})


async def counts(ctx: ServerContext) -> tuple[int, int, int]:
    async with ctx.db.session() as session:
        tasks = await session.scalar(select(func.count()).select_from(m.TaskRun))
        states = await session.scalar(select(func.count()).select_from(m.TaskRunState))
        lines = await session.scalar(select(func.count()).select_from(m.Log))
    return int(tasks or 0), int(states or 0), int(lines or 0)


async def test_previous_states_are_stored_as_the_full_history(client: httpx.AsyncClient) -> None:
    run = await new_run(client)
    task = str(uuid.uuid4())
    r = await batch(client, coalesced(run, task, ("PENDING", 0), ("RUNNING", 1), ("COMPLETED", 3)))
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 1, "updated": 0, "states_written": 3, "duplicates": 0}
    states = (await client.get(f"/task-runs/{task}/states")).json()
    assert [(s["type"], s["name"], datetime.fromisoformat(s["timestamp"])) for s in states] == [
        ("PENDING", "Pending", T0),
        ("RUNNING", "Running", T0 + timedelta(seconds=1)),
        ("COMPLETED", "Completed", T0 + timedelta(seconds=3)),
    ]
    got = (await client.get(f"/task-runs/{task}")).json()
    assert (got["state_type"], got["run_count"]) == ("COMPLETED", 1)
    assert datetime.fromisoformat(got["start_time"]) == T0 + timedelta(seconds=1)
    assert datetime.fromisoformat(got["end_time"]) == T0 + timedelta(seconds=3)
    assert datetime.fromisoformat(got["created"]) == T0


async def test_a_coalesced_entry_records_what_one_entry_per_state_records(
    client: httpx.AsyncClient,
) -> None:
    run = await new_run(client)
    flat, joined = str(uuid.uuid4()), str(uuid.uuid4())
    steps = [("PENDING", 0.0), ("RUNNING", 1.0), ("FAILED", 2.0)]
    retry = [("SCHEDULED", 3.0), ("RUNNING", 4.0), ("COMPLETED", 5.0)]
    names = {3.0: "AwaitingRetry", 4.0: "Retrying"}

    def one(task: str, state: str, seconds: float) -> dict[str, Any]:
        named = {"state_name": names[seconds]} if seconds in names else {}
        return entry(run, task, state, seconds, **named)

    await batch(client, *(one(flat, t, s) for t, s in steps))
    await batch(client, *(one(flat, t, s) for t, s in retry))
    await batch(client, coalesced(run, joined, *steps))
    last = coalesced(run, joined, *retry)
    for earlier in last["previous_states"]:
        earlier["name"] = names[datetime.fromisoformat(earlier["timestamp"]).second]
    r = await batch(client, last)
    assert r.json() == {"created": 0, "updated": 1, "states_written": 3, "duplicates": 0}

    def comparable(task: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in task.items() if k not in ("id",)}

    a = (await client.get(f"/task-runs/{flat}")).json()
    b = (await client.get(f"/task-runs/{joined}")).json()
    assert comparable(a) == comparable(b)
    assert b["run_count"] == 2
    history = [
        [(s["type"], s["name"], s["timestamp"]) for s in (await client.get(path)).json()]
        for path in (f"/task-runs/{flat}/states", f"/task-runs/{joined}/states")
    ]
    assert history[0] == history[1]
    assert [name for _, name, _ in history[1]] == [
        "Pending",
        "Running",
        "Failed",
        "AwaitingRetry",
        "Retrying",
        "Completed",
    ]


async def test_resending_a_coalesced_batch_changes_nothing(client: httpx.AsyncClient) -> None:
    run = await new_run(client)
    task = str(uuid.uuid4())
    body = coalesced(run, task, ("PENDING", 0), ("RUNNING", 1), ("COMPLETED", 2))
    await batch(client, body)
    r = await batch(client, body)
    assert r.json() == {"created": 0, "updated": 0, "states_written": 0, "duplicates": 3}
    assert len((await client.get(f"/task-runs/{task}/states")).json()) == 3


async def test_a_batch_resending_some_states_with_new_ones_records_only_the_new(
    client: httpx.AsyncClient,
) -> None:
    run = await new_run(client)
    task = str(uuid.uuid4())
    await batch(client, coalesced(run, task, ("PENDING", 0), ("RUNNING", 1)))
    r = await batch(client, coalesced(run, task, ("RUNNING", 1), ("COMPLETED", 2)))
    assert r.json() == {"created": 0, "updated": 1, "states_written": 1, "duplicates": 1}
    states = (await client.get(f"/task-runs/{task}/states")).json()
    assert [s["type"] for s in states] == ["PENDING", "RUNNING", "COMPLETED"]
    got = (await client.get(f"/task-runs/{task}")).json()
    assert (got["state_type"], got["run_count"]) == ("COMPLETED", 1)


async def test_a_state_repeated_within_one_batch_is_recorded_once(
    client: httpx.AsyncClient,
) -> None:
    run = await new_run(client)
    task = str(uuid.uuid4())
    r = await batch(
        client,
        coalesced(run, task, ("PENDING", 0), ("RUNNING", 1)),
        entry(run, task, "PENDING", 0),
        coalesced(run, task, ("RUNNING", 1), ("COMPLETED", 2)),
        entry(run, task, "RUNNING", 1, state_name="Retrying"),  # same time, another state
    )
    assert r.json() == {"created": 1, "updated": 0, "states_written": 4, "duplicates": 2}
    states = (await client.get(f"/task-runs/{task}/states")).json()
    assert sorted(
        (datetime.fromisoformat(s["timestamp"]), s["type"], s["name"]) for s in states
    ) == [
        (T0, "PENDING", "Pending"),
        (T0 + timedelta(seconds=1), "RUNNING", "Retrying"),
        (T0 + timedelta(seconds=1), "RUNNING", "Running"),
        (T0 + timedelta(seconds=2), "COMPLETED", "Completed"),
    ]


async def test_log_lines_in_a_batch_are_stored_with_their_task_runs(
    client: httpx.AsyncClient,
) -> None:
    run = await new_run(client)
    task = str(uuid.uuid4())
    r = await report(
        client,
        [coalesced(run, task, ("RUNNING", 0), ("COMPLETED", 1))],
        [line(run, "extracting", task), line(run, "done", name="flowyard.flow_runs")],
    )
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 1
    lines = (await client.get(f"/flow-runs/{run}/logs")).json()["items"]
    assert [(x["message"], x["task_run_id"], x["name"]) for x in lines] == [
        ("extracting", task, ""),
        ("done", None, "flowyard.flow_runs"),
    ]


async def test_a_batch_of_log_lines_alone_is_stored(client: httpx.AsyncClient) -> None:
    run = await new_run(client)
    r = await client.post("/task-runs/batch", json={"logs": [line(run, "only a line")]})
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 0, "updated": 0, "states_written": 0, "duplicates": 0}
    lines = (await client.get(f"/flow-runs/{run}/logs")).json()["items"]
    assert [x["message"] for x in lines] == ["only a line"]


async def test_bad_input_anywhere_in_a_batch_is_refused_naming_the_field_and_writes_nothing(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    run = await new_run(client)
    task = str(uuid.uuid4())
    good = coalesced(run, task, ("RUNNING", 0), ("COMPLETED", 1))
    bad_state = coalesced(run, str(uuid.uuid4()), ("PENDING", 0), ("RUNNING", 1), ("FAILED", 2))
    bad_state["previous_states"][1]["type"] = "BOGUS"
    naive = coalesced(run, str(uuid.uuid4()), ("RUNNING", 0), ("COMPLETED", 1))
    naive["previous_states"][0]["timestamp"] = "2030-01-01T12:00:00"
    unknown = coalesced(run, str(uuid.uuid4()), ("RUNNING", 0), ("COMPLETED", 1))
    unknown["previous_states"][0]["colour"] = "red"
    cases = [
        ([good, bad_state], [line(run, "x")], "task_runs.1.previous_states.1.type"),
        ([good, naive], [], "task_runs.1.previous_states.0.timestamp"),
        ([good, unknown], [], "task_runs.1.previous_states.0.colour"),
        ([good], [line(run, "x"), line(run, "y", level=500)], "logs.1.level"),
        ([good], [line(run, "x", timestamp="yesterday")], "logs.0.timestamp"),
        ([good], [line(run, "x", task_run_id="not-a-uuid")], "logs.0.task_run_id"),
    ]
    for task_runs, logs, field in cases:
        r = await report(client, task_runs, logs)
        assert r.status_code == 422, (field, r.text)
        assert r.json()["detail"].startswith(f"{field}:"), r.json()
        assert r.json()["errors"][0]["field"] == field
    assert await counts(ctx) == (0, 0, 0)


async def test_too_many_states_counting_previous_states_are_refused(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    run = await new_run(client)
    pending = [("PENDING", i / 1000) for i in range(4)]
    entries = [
        coalesced(run, str(uuid.uuid4()), *pending, ("COMPLETED", 1)) for _ in range(2001)
    ]  # 2,001 entries, 10,005 states
    r = await batch(client, *entries)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("task_runs:")
    assert "10000 states" in r.json()["detail"]
    assert await counts(ctx) == (0, 0, 0)


async def test_a_line_of_a_missing_flow_run_refuses_the_whole_batch(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    run = await new_run(client)
    r = await report(
        client,
        [coalesced(run, str(uuid.uuid4()), ("RUNNING", 0), ("COMPLETED", 1))],
        [line(run, "fine"), line(str(uuid.uuid4()), "nowhere")],
    )
    assert r.status_code == 404
    assert r.json()["detail"].startswith("logs.1.flow_run_id:")
    assert await counts(ctx) == (0, 0, 0)


async def test_a_refused_task_run_refuses_the_lines_sent_with_it(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    run = await new_run(client)
    r = await client.post(f"/flow-runs/{run}/state", json={"type": "CANCELLED"})
    assert r.json()["status"] == "ACCEPT", r.text
    r = await report(
        client,
        [coalesced(run, str(uuid.uuid4()), ("PENDING", 0), ("RUNNING", 1))],
        [line(run, "still running")],
    )
    assert r.status_code == 409
    assert await counts(ctx) == (0, 0, 0)


async def test_lines_of_another_workspaces_run_are_not_found(
    client: httpx.AsyncClient, client_for: ClientFactory, ctx: ServerContext
) -> None:
    run = await new_run(client)
    key = await make_workspace_key(client, "other")
    async with client_for(key) as other:
        their_run = await new_run(other)
        r = await report(
            other,
            [coalesced(their_run, str(uuid.uuid4()), ("RUNNING", 0), ("COMPLETED", 1))],
            [line(their_run, "mine"), line(run, "theirs")],
        )
    assert r.status_code == 404
    assert r.json()["detail"].startswith("logs.1.flow_run_id:")
    assert await counts(ctx) == (0, 0, 0)
