"""Every page renders on an empty database (with a way to get started) and with data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from flowyard.server.context import ServerContext
from flowyard.server.ops import claims
from tests.integration.ui.conftest import make_deployment, make_pool, set_state, start_run

EMPTY_PAGES = {
    "/": "Get started",
    "/runs": "flowyard work-pool create my-managed-pool --type managed",
    "/artifacts": "No artifacts yet",
    "/deployments": "No deployments yet",
    "/work-pools": "flowyard work-pool create my-managed-pool --type managed",
    "/new/work-pool": "Create a work pool",
    "/usage": "No compute used yet",
    "/settings": "No variables",
}


@pytest.mark.parametrize(("path", "text"), EMPTY_PAGES.items())
async def test_each_page_renders_on_an_empty_database_with_a_way_to_start(
    browser: httpx.AsyncClient, path: str, text: str
) -> None:
    r = await browser.get(path)
    assert r.status_code == 200, r.text
    assert text in r.text
    assert "<title>" in r.text


@dataclass
class World:
    pool: dict[str, object]
    deployment: dict[str, object]
    running: str
    crashed: str
    completed: str
    scheduled: str


async def claim(ctx: ServerContext, pool_id: str) -> None:
    """Act as the managed dispatcher: move due runs to PENDING and open their usage records."""
    async with ctx.db.session() as session:
        await claims.claim_runs(session, uuid.UUID(pool_id), "test-dispatcher")


@pytest.fixture
async def world(client: httpx.AsyncClient, ctx: ServerContext) -> World:
    pool = await make_pool(client, "my-managed-pool", concurrency_limit=5)
    deployment = await make_deployment(
        client, "my-managed-pool", description="Nightly ETL", tags=["etl"],
        schedules=[{"schedule": {"cron": "0 3 * * *", "timezone": "Europe/Paris"}}],
    )  # fmt: skip
    runs = [await start_run(client, deployment["id"], tags=["nightly"]) for _ in range(3)]
    await claim(ctx, str(pool["id"]))
    t0 = datetime.now(UTC)
    running, crashed, completed = (r["id"] for r in runs)
    lines = [
        (0.0, 20, "preparing compute for etl/daily"),
        (0.5, 20, "cloned https://example.com/org/repo.git at 3f2a9c1"),
        (0.9, 20, "environment ready: 12 packages (cached)"),
    ]
    r = await client.post(
        "/logs",
        json={
            "logs": [
                {
                    "flow_run_id": running,
                    "level": level,
                    "message": message,
                    "timestamp": (t0 + timedelta(seconds=dt)).isoformat(),
                }
                for dt, level, message in lines
            ]
        },
    )
    assert r.status_code == 201, r.text
    await set_state(client, running, "RUNNING", timestamp=(t0 + timedelta(seconds=1.2)).isoformat())
    await client.post(
        f"/flow-runs/{running}/execution",
        json={"resolved_commit": "3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39", "backend": "local"},
    )
    task = str(uuid.uuid4())
    r = await client.post(
        "/task-runs/batch",
        json={
            "task_runs": [
                {"id": task, "flow_run_id": running, "name": "extract", "state_type": "RUNNING",
                 "timestamp": (t0 + timedelta(seconds=2)).isoformat()},
                {"id": task, "flow_run_id": running, "name": "extract", "state_type": "COMPLETED",
                 "timestamp": (t0 + timedelta(seconds=4)).isoformat(), "run_count": 2},
            ]
        },
    )  # fmt: skip
    assert r.status_code in (200, 201), r.text
    await set_state(client, crashed, "RUNNING")
    reason = "out of memory: limit 2 GiB reached (peak 2 GiB)"
    await set_state(client, crashed, "CRASHED", message=reason)
    r = await client.post(
        f"/flow-runs/{crashed}/execution",
        params={"teardown": "true"},
        json={"crash_reason": reason, "peak_memory_bytes": 2 * 1024**3, "cpu_seconds": 3.5},
    )
    assert r.status_code == 200, r.text
    await set_state(client, completed, "RUNNING")
    await set_state(client, completed, "COMPLETED")
    await client.post(f"/flow-runs/{completed}/execution", params={"teardown": "true"}, json={})
    scheduled = (await start_run(client, deployment["id"]))["id"]
    return World(pool, deployment, running, crashed, completed, scheduled)


async def test_the_dashboard_counts_states_lists_failures_and_what_runs_now(
    browser: httpx.AsyncClient, world: World
) -> None:
    page = (await browser.get("/")).text
    assert "Get started" not in page
    assert "4 <span" in page  # runs created in the last 24 hours
    assert "out of memory: limit 2 GiB reached" in page  # a recent failure with its reason
    assert f'href="/runs/{world.running}"' in page  # running now
    assert "minutes (no limit)" in page


async def test_the_runs_list_shows_runs_with_their_deployment_pool_and_tags(
    browser: httpx.AsyncClient, world: World
) -> None:
    page = (await browser.get("/runs")).text
    for run in (world.running, world.crashed, world.completed, world.scheduled):
        assert f'href="/runs/{run}"' in page
    assert "etl/daily" in page
    assert "my-managed-pool" in page
    assert "nightly" in page
    assert 'hx-trigger="every 5s"' in page  # the first page refreshes itself


async def test_the_run_page_shows_the_timeline_with_pending_steps_commit_and_tasks(
    browser: httpx.AsyncClient, world: World
) -> None:
    page = (await browser.get(f"/runs/{world.running}")).text
    assert "State timeline" in page
    assert "Steps while pending" in page
    assert "cloned https://example.com/org/repo.git at 3f2a9c1" in page
    assert "3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39" in page
    assert "extract" in page
    assert "attempt 2" in page  # a retried task is marked
    assert "Cancel run" in page
    assert "Retry run" not in page
    assert f'hx-get="/runs/{world.running}/live' in page  # polls while active
    assert f'sse-connect="/runs/{world.running}/logs/stream' in page  # logs follow live


async def test_a_crashed_run_says_why_in_plain_words_with_its_telemetry(
    browser: httpx.AsyncClient, world: World
) -> None:
    page = (await browser.get(f"/runs/{world.crashed}")).text
    assert "The run used all the memory it was allowed, so it was stopped." in page
    assert "memory_gib" in page
    assert "2 GiB" in page
    assert "3.5 s" in page  # CPU time
    assert "Retry run" in page
    assert "Cancel run" not in page
    assert "sse-connect" not in page  # a finished run's logs do not stream
    live = await browser.get(f"/runs/{world.crashed}/live")
    assert live.status_code == 200
    assert "hx-trigger" not in live.text  # polling stops once the run has ended


async def test_deployment_pages_show_source_schedules_runs_and_the_run_form(
    browser: httpx.AsyncClient, world: World
) -> None:
    listing = (await browser.get("/deployments")).text
    assert "etl/daily" in listing
    assert f'href="/deployments/{world.deployment["id"]}/run"' in listing
    page = (await browser.get(f"/deployments/{world.deployment['id']}")).text
    assert "https://example.com/org/repo.git" in page
    assert "cron 0 3 * * * (Europe/Paris)" in page
    assert "flows/etl.py:etl" in page
    assert "Nightly ETL" in page
    assert f'href="/runs/{world.completed}"' in page
    form = (await browser.get(f"/deployments/{world.deployment['id']}/run")).text
    assert 'name="param:n"' in form
    assert 'type="number"' in form
    assert 'name="param:name"' in form
    assert 'name="job_variables"' in form


async def test_work_pool_pages_show_policy_occupancy_and_the_queue_with_reasons(
    browser: httpx.AsyncClient, world: World
) -> None:
    listing = (await browser.get("/work-pools")).text
    assert "my-managed-pool" in listing
    assert "4 vCPU" in listing
    page = (await browser.get("/work-pools/my-managed-pool")).text
    assert "16 GiB" in page
    assert "1 <span" in page  # one active run holds a slot
    assert "of 5 slots in use" in page
    assert 'Waiting runs <span class="muted">(1)</span>' in page  # counted, not capped
    assert f'href="/runs/{world.scheduled}"' in page
    assert "waiting for the server&#39;s dispatcher" in page
    assert "etl/daily" in page


async def test_the_usage_page_draws_minutes_per_day_and_per_deployment(
    browser: httpx.AsyncClient, world: World
) -> None:
    page = (await browser.get("/usage")).text
    assert "No compute used yet" not in page
    assert '<svg class="chart"' in page
    assert 'class="chart-bar today"' in page
    assert "etl/daily" in page
    assert "Resets on" in page
    assert (
        f"{datetime.now(UTC).date().isoformat()}: 3 min, 3 runs" in page
    )  # two closed, one still open


async def test_the_settings_page_lists_keys_variables_and_secret_names(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, world: World
) -> None:
    await client.put("/variables/batch_size", json={"value": 500})
    await client.put("/secrets/github-token", json={"value": "ghp_supersecretvalue"})
    page = (await browser.get("/settings")).text
    assert "admin" in page
    assert "this session" in page
    assert "batch_size" in page
    assert "500" in page
    assert "github-token" in page
    assert "ghp_supersecretvalue" not in page
