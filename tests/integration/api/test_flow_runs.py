from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from flowyard.schemas import flow_runs as s
from flowyard.server.context import ServerContext
from flowyard.server.db import models as m
from flowyard.server.ops import flow_run_queries
from tests.integration.api.conftest import make_deployment, make_pool


async def _run(client: httpx.AsyncClient, dep: dict[str, Any], **body: Any) -> dict[str, Any]:
    body.setdefault("parameters", {"n": 1})
    r = await client.post(f"/deployments/{dep['id']}/runs", json=body)
    assert r.status_code in (200, 201), r.text
    out: dict[str, Any] = r.json()
    return out


async def _state(client: httpx.AsyncClient, run_id: str, **body: Any) -> dict[str, Any]:
    r = await client.post(f"/flow-runs/{run_id}/state", json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


@pytest.fixture
async def dep(client: httpx.AsyncClient) -> dict[str, Any]:
    await make_pool(client)
    return await make_deployment(client)


@pytest.mark.parametrize(
    ("parameters", "field", "words"),
    [
        ({"n": "three"}, "parameters.n", "expected integer"),
        ({}, "parameters.n", "is required"),
        ({"n": 1, "name": 5}, "parameters.name", "expected string"),
    ],
)
async def test_bad_parameters_are_422_naming_the_parameter_and_create_nothing(
    client: httpx.AsyncClient,
    parameters: dict[str, Any],
    field: str,
    words: str,
) -> None:
    await make_pool(client)
    dep = await make_deployment(client, parameters={})
    r = await client.post(f"/deployments/{dep['id']}/runs", json={"parameters": parameters})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == field
    assert words in r.json()["detail"]
    assert (await client.get("/flow-runs")).json()["items"] == []


async def test_an_idempotency_key_returns_the_same_run(
    client: httpx.AsyncClient, dep: dict[str, Any]
) -> None:
    first = await _run(client, dep, idempotency_key="k1")
    second = await _run(client, dep, idempotency_key="k1")
    assert first["id"] == second["id"]
    assert len((await client.get("/flow-runs")).json()["items"]) == 1


async def test_a_run_goes_through_its_states_with_history_and_timings(
    client: httpx.AsyncClient, dep: dict[str, Any]
) -> None:
    run = await _run(client, dep)
    for state in ("PENDING", "RUNNING", "COMPLETED"):
        assert (await _state(client, run["id"], type=state))["status"] == "ACCEPT"
    final = (await client.get(f"/flow-runs/{run['id']}")).json()
    assert final["state_type"] == "COMPLETED"
    assert final["run_count"] == 1
    assert final["start_time"] is not None
    assert final["end_time"] is not None
    history = (await client.get(f"/flow-runs/{run['id']}/states")).json()
    assert [h["type"] for h in history] == ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"]


async def test_leaving_a_terminal_state_is_rejected_with_the_reason(
    client: httpx.AsyncClient, dep: dict[str, Any]
) -> None:
    run = await _run(client, dep)
    await _state(client, run["id"], type="RUNNING")
    await _state(client, run["id"], type="FAILED", message="boom")
    result = await _state(client, run["id"], type="RUNNING")
    assert result["status"] == "REJECT"
    assert "already FAILED" in result["reason"]
    assert result["state"]["type"] == "FAILED"


async def test_a_stale_writer_gets_409(client: httpx.AsyncClient, dep: dict[str, Any]) -> None:
    run = await _run(client, dep)
    seen = run["state_id"]
    await _state(client, run["id"], type="PENDING", expected_state_id=seen)
    r = await client.post(
        f"/flow-runs/{run['id']}/state", json={"type": "CANCELLED", "expected_state_id": seen}
    )
    assert r.status_code == 409
    assert "re-read it" in r.json()["detail"]


async def test_cancelling_a_scheduled_run_goes_straight_to_cancelled(
    client: httpx.AsyncClient, dep: dict[str, Any]
) -> None:
    run = await _run(client, dep)
    result = (await client.post(f"/flow-runs/{run['id']}/cancel")).json()
    assert result["state"]["type"] == "CANCELLED"


async def test_cancelling_a_running_run_asks_it_to_stop(
    client: httpx.AsyncClient, dep: dict[str, Any]
) -> None:
    run = await _run(client, dep)
    await _state(client, run["id"], type="RUNNING")
    result = (await client.post(f"/flow-runs/{run['id']}/cancel")).json()
    assert result["state"]["type"] == "CANCELLING"


async def test_a_finished_run_can_be_retried(
    client: httpx.AsyncClient, dep: dict[str, Any]
) -> None:
    run = await _run(client, dep)
    await _state(client, run["id"], type="RUNNING")
    await _state(client, run["id"], type="CRASHED", message="killed by signal 9")
    result = (await client.post(f"/flow-runs/{run['id']}/retry")).json()
    assert result["status"] == "ACCEPT"
    assert result["state"]["name"] == "AwaitingRetry"
    again = await _state(client, run["id"], type="RUNNING")
    assert again["status"] == "ACCEPT"
    assert (await client.get(f"/flow-runs/{run['id']}")).json()["run_count"] == 2


async def test_an_unfinished_run_cannot_be_retried(
    client: httpx.AsyncClient, dep: dict[str, Any]
) -> None:
    run = await _run(client, dep)
    r = await client.post(f"/flow-runs/{run['id']}/retry")
    assert r.status_code == 403


async def test_concurrency_wait_names_the_limit_and_a_finished_run_frees_the_slot(
    client: httpx.AsyncClient,
) -> None:
    await make_pool(client)
    dep = await make_deployment(client, concurrency_limit=1)
    first, second = await _run(client, dep), await _run(client, dep)
    assert (await _state(client, first["id"], type="RUNNING"))["status"] == "ACCEPT"
    waiting = await _state(client, second["id"], type="PENDING")
    assert waiting["status"] == "WAIT"
    assert waiting["reason"] == "deployment 'etl/daily' concurrency limit of 1 reached (1 active)"
    run2 = (await client.get(f"/flow-runs/{second['id']}")).json()
    assert run2["state_name"] == "AwaitingConcurrency"  # the run itself says why
    assert run2["state_message"] == waiting["reason"]
    await _state(client, first["id"], type="CRASHED", message="sandbox died")
    assert (await _state(client, second["id"], type="PENDING"))["status"] == "ACCEPT"


async def test_pool_and_workspace_limits_apply_too(client: httpx.AsyncClient) -> None:
    await make_pool(client, concurrency_limit=1)
    dep = await make_deployment(client)
    a, b = await _run(client, dep), await _run(client, dep)
    await _state(client, a["id"], type="PENDING")
    waiting = await _state(client, b["id"], type="PENDING")
    assert "work pool 'pool' concurrency limit of 1" in waiting["reason"]
    await client.patch("/work-pools/pool", json={"concurrency_limit": None})
    await client.patch("/workspaces/default", json={"concurrency_limit": 1})
    waiting = await _state(client, b["id"], type="PENDING")
    assert "workspace 'default' concurrency limit of 1" in waiting["reason"]


async def test_listing_filters_and_cursor_pagination(
    client: httpx.AsyncClient, dep: dict[str, Any]
) -> None:
    ids = [
        (await _run(client, dep, tags=["even" if i % 2 == 0 else "odd"]))["id"] for i in range(7)
    ]
    await _state(client, ids[0], type="RUNNING")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/flow-runs", params=params)).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    even = (await client.get("/flow-runs", params={"tag": "even"})).json()["items"]
    assert len(even) == 4
    running = (await client.get("/flow-runs", params={"state": "RUNNING"})).json()["items"]
    assert [r["id"] for r in running] == [ids[0]]
    by_dep = (await client.get("/flow-runs", params={"deployment_id": dep["id"]})).json()["items"]
    assert len(by_dep) == 7


async def test_a_tag_filter_with_quotes_backslashes_or_control_characters_just_matches_nothing(
    client: httpx.AsyncClient, dep: dict[str, Any]
) -> None:
    await _run(client, dep, tags=["even"])
    for tag in ('ev"en', "ev\\en", "ev\x01en", "even\u2028"):
        r = await client.get("/flow-runs", params={"tag": tag})
        assert r.status_code == 200, r.text
        assert r.json()["items"] == []


async def test_a_garbage_cursor_is_422(client: httpx.AsyncClient) -> None:
    r = await client.get("/flow-runs", params={"cursor": "garbage"})
    assert r.status_code == 422
    assert "cursor" in r.json()["detail"]


async def test_active_runs_cannot_be_deleted_finished_ones_can(
    client: httpx.AsyncClient, dep: dict[str, Any]
) -> None:
    run = await _run(client, dep)
    await _state(client, run["id"], type="RUNNING")
    assert (await client.delete(f"/flow-runs/{run['id']}")).status_code == 403
    await _state(client, run["id"], type="COMPLETED")
    assert (await client.delete(f"/flow-runs/{run['id']}")).status_code == 204


async def test_ad_hoc_runs_from_the_sdk_are_recorded(client: httpx.AsyncClient) -> None:
    r = await client.post("/flow-runs", json={"flow_name": "hello", "parameters": {"x": 1}})
    assert r.status_code == 201
    run = r.json()
    assert run["state_type"] == "RUNNING"
    assert run["deployment_id"] is None
    assert (await _state(client, run["id"], type="COMPLETED"))["status"] == "ACCEPT"


@pytest.mark.parametrize(
    ("time", "words"),
    [
        ("2030-01-01T00:00:00", "should have timezone info"),
        ("9999-12-31T23:59:59-14:00", "out of the supported time range"),
        ("0001-01-01T00:00:00+05:00", "out of the supported time range"),
    ],
)
async def test_times_that_cannot_be_stored_in_utc_are_422_naming_the_field(
    client: httpx.AsyncClient, dep: dict[str, Any], time: str, words: str
) -> None:
    r = await client.post(
        f"/deployments/{dep['id']}/runs", json={"parameters": {"n": 1}, "scheduled_time": time}
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "scheduled_time"
    assert words in r.json()["detail"]
    assert (await client.get("/flow-runs")).json()["items"] == []
    run = await _run(client, dep)
    r = await client.post(
        f"/flow-runs/{run['id']}/state", json={"type": "PENDING", "timestamp": time}
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "timestamp"
    assert len((await client.get(f"/flow-runs/{run['id']}/states")).json()) == 1
    r = await client.post(
        "/flow-runs", json={"flow_name": "x", "state": {"type": "RUNNING", "timestamp": time}}
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "state.timestamp"
    for bound in ("created_after", "created_before"):
        r = await client.get("/flow-runs", params={bound: time})
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == bound


async def test_a_run_reads_the_same_from_a_row_just_written_or_read_whole(
    client: httpx.AsyncClient, dep: dict[str, Any], ctx: ServerContext
) -> None:
    # Created: a row its insert left in part (what it never set is not loaded).
    created = await _run(client, dep, tags=["nightly"])
    read = (await client.get(f"/flow-runs/{created['id']}")).json()
    listed = (await client.get("/flow-runs")).json()["items"]
    assert created == read == listed[0]
    assert (read["deployment_name"], read["work_pool_name"]) == ("etl/daily", "pool")
    async with ctx.db.session() as session:
        row = await session.get(m.FlowRun, uuid.UUID(created["id"]))
        assert row is not None
        [wire] = await flow_run_queries.describe(session, [row])
    assert wire == s.FlowRun.model_validate(read)
