"""Claims, quota and the usage ledger, on both dialects; a real race on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from flowyard.server.context import ServerContext
from flowyard.server.db import create_database
from flowyard.server.db import models as m
from flowyard.server.ops import claims
from flowyard.server.ops.usage import billed_minutes
from tests.integration.api.conftest import make_deployment, make_pool


async def _runs(client: httpx.AsyncClient, dep: dict[str, Any], n: int) -> list[str]:
    out = []
    for _ in range(n):
        r = await client.post(f"/deployments/{dep['id']}/runs", json={"parameters": {"n": 1}})
        out.append(r.json()["id"])
    return out


async def _pool_id(ctx: ServerContext) -> uuid.UUID:
    async with ctx.db.session() as session:
        return (await session.execute(select(m.WorkPool.id))).scalar_one()


async def _claim(ctx: ServerContext, pool_id: uuid.UUID, who: str = "d1") -> claims.ClaimResult:
    async with ctx.db.session() as session:
        return await claims.claim_runs(session, pool_id, who, limit=50)


@pytest.mark.parametrize(
    ("seconds", "minutes"), [(0.2, 1), (59.9, 1), (60, 1), (60.1, 2), (3600, 60)]
)
def test_billed_minutes_round_up_per_run(seconds: float, minutes: int) -> None:
    assert billed_minutes(seconds) == minutes


async def test_a_claim_moves_due_runs_to_pending_and_opens_usage_records(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    await make_pool(client)
    dep = await make_deployment(client)
    ids = await _runs(client, dep, 3)
    result = await _claim(ctx, await _pool_id(ctx))
    assert sorted(str(r.id) for r in result.claimed) == sorted(ids)
    states = {(await client.get(f"/flow-runs/{i}")).json()["state_type"] for i in ids}
    assert states == {"PENDING"}
    records = (await client.get("/usage/records")).json()
    assert len(records) == 3
    assert all(r["ended_at"] is None for r in records)


async def test_future_runs_are_not_claimed(client: httpx.AsyncClient, ctx: ServerContext) -> None:
    await make_pool(client)
    dep = await make_deployment(client)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    await client.post(
        f"/deployments/{dep['id']}/runs", json={"parameters": {"n": 1}, "scheduled_time": later}
    )
    assert (await _claim(ctx, await _pool_id(ctx))).claimed == []


async def test_a_claim_honours_the_deployment_limit_and_says_why_on_the_waiting_run(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    await make_pool(client)
    dep = await make_deployment(client, concurrency_limit=2)
    ids = await _runs(client, dep, 5)
    result = await _claim(ctx, await _pool_id(ctx))
    assert len(result.claimed) == 2
    waiting = (await client.get(f"/flow-runs/{ids[4]}")).json()
    assert waiting["state_type"] == "SCHEDULED"
    assert waiting["state_name"] == "AwaitingConcurrency"
    assert "concurrency limit of 2 reached" in waiting["state_message"]


async def test_a_paused_pool_claims_nothing_and_the_runs_say_so(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    await make_pool(client, paused=True)
    dep = await make_deployment(client)
    (run_id,) = await _runs(client, dep, 1)
    assert (await _claim(ctx, await _pool_id(ctx))).claimed == []
    run = (await client.get(f"/flow-runs/{run_id}")).json()
    assert (run["state_name"], run["state_message"]) == (
        "AwaitingResume",
        "work pool 'pool' is paused",
    )


async def test_teardown_closes_the_record_once_and_bills_whole_minutes(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    await make_pool(client)
    dep = await make_deployment(client)
    (run_id,) = await _runs(client, dep, 1)
    await _claim(ctx, await _pool_id(ctx))
    await client.post(f"/flow-runs/{run_id}/state", json={"type": "RUNNING"})
    await client.post(f"/flow-runs/{run_id}/state", json={"type": "COMPLETED"})
    report = {"exit_code": 0, "peak_memory_bytes": 1234, "cpu_seconds": 0.5}
    r = await client.post(f"/flow-runs/{run_id}/execution?teardown=true", json=report)
    assert r.json()["peak_memory_bytes"] == 1234
    assert r.json()["compute_seconds"] is not None
    (record,) = (await client.get("/usage/records")).json()
    assert record["billed_minutes"] == 1
    closed_at = record["ended_at"]
    # A second teardown changes nothing: records are never updated after close.
    await client.post(f"/flow-runs/{run_id}/execution?teardown=true", json={})
    (again,) = (await client.get("/usage/records")).json()
    assert again["ended_at"] == closed_at
    usage = (await client.get("/usage", params={"by": "deployment"})).json()
    assert usage["used_minutes"] == 1
    assert usage["buckets"][0]["key"] == "etl/daily"


async def test_over_quota_runs_wait_with_usage_limit_and_reset_date_then_start_when_raised(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    await make_pool(client)
    dep = await make_deployment(client)
    await client.patch("/workspaces/default", json={"monthly_limit_minutes": 1})
    first, second = await _runs(client, dep, 2)
    pool_id = await _pool_id(ctx)
    # The first run is admitted (0 of 1 used) and its open record counts at once.
    result = await _claim(ctx, pool_id)
    assert [str(r.id) for r in result.claimed] == [first]
    waiting = (await client.get(f"/flow-runs/{second}")).json()
    assert waiting["state_name"] == "AwaitingQuota"
    assert "1 of 1 minutes used; resets on" in waiting["state_message"]
    await client.patch("/workspaces/default", json={"monthly_limit_minutes": 100})
    result = await _claim(ctx, pool_id)
    assert [str(r.id) for r in result.claimed] == [second]


@pytest.mark.postgres
async def test_four_concurrent_claimers_on_postgresql_never_share_a_run_or_exceed_limits(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    await make_pool(client, concurrency_limit=7)
    dep = await make_deployment(client)
    await _runs(client, dep, 30)
    pool_id = await _pool_id(ctx)
    databases = [create_database(ctx.db.url) for _ in range(4)]

    async def claimer(i: int) -> list[uuid.UUID]:
        got: list[uuid.UUID] = []
        for _ in range(5):
            async with databases[i].session() as session:
                result = await claims.claim_runs(session, pool_id, f"d{i}", limit=3)
            got += [r.id for r in result.claimed]
        return got

    try:
        results = await asyncio.gather(*(claimer(i) for i in range(4)))
    finally:
        for database in databases:
            await database.dispose()
    claimed = [run_id for batch in results for run_id in batch]
    assert len(claimed) == len(set(claimed)), "a run was claimed twice"
    assert len(claimed) == 7, "the pool limit of 7 must hold under the race"
    pending = (await client.get("/flow-runs", params={"state": "PENDING", "limit": 100})).json()
    assert len(pending["items"]) == 7


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("exit_code", 2**64),
        ("process_id", -(2**40)),
        ("peak_memory_bytes", 2**63),
        ("peak_storage_bytes", 10**30),
    ],
)
async def test_an_execution_report_too_large_to_store_is_422_naming_the_field(
    client: httpx.AsyncClient, field: str, value: int
) -> None:
    await make_pool(client)
    dep = await make_deployment(client)
    (run_id,) = await _runs(client, dep, 1)
    report = {"exit_code": 0, "cpu_seconds": 0.5, field: value}
    r = await client.post(f"/flow-runs/{run_id}/execution", json=report)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field
    assert "less than or equal" in r.json()["detail"] or "greater than" in r.json()["detail"]
    run = (await client.get(f"/flow-runs/{run_id}")).json()
    assert run["exit_code"] is None
    assert run["cpu_seconds"] is None


@pytest.mark.parametrize("path", ["/usage", "/usage/records"])
async def test_the_last_month_of_year_9999_is_422_not_500(
    client: httpx.AsyncClient, path: str
) -> None:
    r = await client.get(path, params={"month": "9999-12"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == ("month: expected YYYY-MM from 0001-01 to 9999-11, got '9999-12'")
    assert (await client.get(path, params={"month": "9999-11"})).status_code == 200
