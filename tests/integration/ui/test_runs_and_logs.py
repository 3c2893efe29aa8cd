"""The runs list's filters and cursor pages; a run's logs in pages, filtered, and streamed."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert, select

from flowyard.server.context import ServerContext
from flowyard.server.db import models as m
from tests.integration.ui.conftest import make_deployment, make_pool, set_state, start_run

RUN_LINK = re.compile(r'<a href="/runs/([0-9a-f-]{36})" class="run-name">')
NEXT_PAGE = re.compile(r'<a class="button" href="(/runs\?[^"]+)" rel="next">')


def run_ids(page: str) -> list[str]:
    return RUN_LINK.findall(page)


async def _workspace_id(ctx: ServerContext) -> uuid.UUID:
    async with ctx.db.session() as session:
        ident: uuid.UUID = (await session.execute(select(m.Workspace.id))).scalar_one()
    return ident


def _bulk_run(workspace_id: uuid.UUID, created: datetime, name: str) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "workspace_id": workspace_id,
        "name": name,
        "flow_name": "bulk",
        "parameters": {},
        "job_variables": {},
        "tags": [],
        "state_type": "COMPLETED",
        "state_name": "Completed",
        "state_message": "",
        "state_timestamp": created,
        "created": created,
        "updated": created,
        "run_count": 1,
        "auto_scheduled": False,
    }


async def test_the_runs_list_filters_by_state_deployment_pool_tag_and_period(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    await make_pool(client, "pool-a")
    await make_pool(client, "pool-b")
    dep_a = await make_deployment(client, "pool-a", name="a")
    dep_b = await make_deployment(client, "pool-b", name="b")
    on_a = (await start_run(client, dep_a["id"], tags=["nightly"]))["id"]
    on_b = (await start_run(client, dep_b["id"]))["id"]
    await set_state(client, on_b, "FAILED", force=True)
    old = _bulk_run(await _workspace_id(ctx), datetime.now(UTC) - timedelta(days=3), "old-run")
    async with ctx.db.session() as session:
        await session.execute(insert(m.FlowRun), [old])
    pools = {p["name"]: p["id"] for p in (await client.get("/work-pools")).json()}

    async def listed(**params: Any) -> set[str]:
        r = await browser.get("/runs", params=params)
        assert r.status_code == 200, r.text
        return set(run_ids(r.text))

    everything = {on_a, on_b, str(old["id"])}
    assert await listed() == everything
    assert await listed(state="FAILED") == {on_b}
    assert await listed(state=["FAILED", "SCHEDULED"]) == {on_a, on_b}
    assert await listed(deployment=dep_a["id"]) == {on_a}
    assert await listed(pool=pools["pool-b"]) == {on_b}
    assert await listed(tag="nightly") == {on_a}
    assert await listed(period="24h") == {on_a, on_b}
    assert await listed(period="7d") == everything
    assert await listed(state="FAILED", deployment=dep_a["id"]) == set()
    # A stale bookmark still opens: unknown values are dropped, not refused.
    assert await listed(state="NOT_A_STATE", pool="not-a-uuid", period="1y") == everything
    page = (await browser.get("/runs", params={"state": "FAILED"})).text
    assert 'value="FAILED" checked' in page  # the form shows the filters applied
    assert "No runs match" in (await browser.get("/runs", params={"tag": "none-such"})).text


async def test_the_runs_list_pages_by_cursor_with_no_run_repeated_or_skipped(
    browser: httpx.AsyncClient, ctx: ServerContext
) -> None:
    ws = await _workspace_id(ctx)
    now = datetime.now(UTC)
    same_time = now - timedelta(minutes=5)  # ties on ``created`` are broken by id
    rows = [_bulk_run(ws, now - timedelta(seconds=i), f"r{i}") for i in range(40)]
    rows += [_bulk_run(ws, same_time, f"tie{i}") for i in range(20)]
    async with ctx.db.session() as session:
        await session.execute(insert(m.FlowRun), rows)
    seen: list[str] = []
    url: str | None = "/runs?limit=25"
    pages = 0
    while url is not None:
        r = await browser.get(url)
        assert r.status_code == 200, r.text
        seen += run_ids(r.text)
        pages += 1
        if pages > 1:
            assert "hx-trigger" not in r.text  # only the first page refreshes itself
            assert f"Page {pages}" in r.text
        found = NEXT_PAGE.search(r.text)
        url = html.unescape(found.group(1)) if found else None
    assert pages == 3
    assert len(seen) == 60
    assert set(seen) == {str(row["id"]) for row in rows}
    assert seen[0] == str(rows[0]["id"])  # newest first
    r = await browser.get("/runs", params={"cursor": "garbage", "page": "2"})
    assert r.status_code == 200
    assert "That page link had expired" in r.text
    assert len(run_ids(r.text)) == 50


async def _run_with_lines(client: httpx.AsyncClient, count: int) -> tuple[str, list[int]]:
    """A finished run with ``count`` lines; every 100th is an ERROR. Returns its id and log ids."""
    await make_pool(client)
    dep = await make_deployment(client)
    run = (await start_run(client, dep["id"]))["id"]
    t0 = datetime.now(UTC)
    lines = [
        {
            "flow_run_id": run,
            "level": 40 if i % 100 == 0 else 20,
            "message": f"line {i:05d}" + (" boom" if i % 100 == 0 else ""),
            "timestamp": (t0 + timedelta(milliseconds=i)).isoformat(),
        }
        for i in range(count)
    ]
    for start in range(0, count, 500):
        r = await client.post("/logs", json={"logs": lines[start : start + 500]})
        assert r.status_code == 201, r.text
    await set_state(client, run, "COMPLETED", force=True)
    ids = [line["id"] for line in (await client.get(f"/flow-runs/{run}/logs", params={"limit": 5000})).json()["items"]]  # fmt: skip
    return run, ids


LINE = re.compile(r'<li class="log-line [^"]*" id="log-(\d+)">')
MORE = re.compile(r'hx-get="(/runs/[^"]+/logs\?[^"]*after=\d+[^"]*)"')


async def test_a_long_log_is_read_a_page_at_a_time(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    run, ids = await _run_with_lines(client, 1200)
    page = (await browser.get(f"/runs/{run}")).text
    first = [int(i) for i in LINE.findall(page)]
    assert first == ids[:500]  # one page, never the whole log
    assert "Show the next 500 lines" in page
    assert "sse-connect" not in page  # a finished run does not stream
    shown = list(first)
    more = MORE.search(page)
    while more is not None:
        fragment = (await browser.get(html.unescape(more.group(1)))).text
        shown += [int(i) for i in LINE.findall(fragment)]
        more = MORE.search(fragment)
    assert shown == ids
    assert "End of logs." in fragment


async def test_the_level_filter_and_search_narrow_the_lines(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    run, _ = await _run_with_lines(client, 300)
    errors = (await browser.get(f"/runs/{run}/logs", params={"level": "40"})).text
    assert LINE.findall(errors)
    assert all("boom" in m for m in re.findall(r'log-msg">([^<]*)<', errors))
    assert len(LINE.findall(errors)) == 3
    found = (await browser.get(f"/runs/{run}/logs", params={"q": "LINE 0025"})).text
    assert re.findall(r'log-msg">([^<]*)<', found) == [f"line {i:05d}" for i in range(250, 260)]
    both = (await browser.get(f"/runs/{run}", params={"level": "40", "q": "00200"})).text
    assert re.findall(r'log-msg">([^<]*)<', both) == ["line 00200 boom"]
    assert '<option value="40" selected>' in both  # the page keeps the filter it shows
    none = (await browser.get(f"/runs/{run}/logs", params={"q": "no such text"})).text
    assert "No lines match these filters." in none
    literal = (await browser.get(f"/runs/{run}/logs", params={"q": "%"})).text
    assert LINE.findall(literal) == []  # search text is literal, not a LIKE pattern


async def test_the_stream_resumes_after_a_cursor_keeps_the_filter_and_ends_with_the_run(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    run, ids = await _run_with_lines(client, 300)
    body = (await browser.get(f"/runs/{run}/logs/stream", params={"after": ids[149]})).text
    streamed = [int(i) for i in re.findall(r"^id: (\d+)$", body, re.M)]
    assert streamed
    assert streamed[-1] == ids[-1]
    events = re.findall(r"^event: (\w+)$", body, re.M)
    assert events[0] == "state"
    assert events[-1] == "end"
    assert "line 00149" not in body
    assert "line 00150" in body
    assert "line 00299" in body
    assert "The run is Completed; no more lines will arrive." in body
    errors = (await browser.get(f"/runs/{run}/logs/stream", params={"level": "40"})).text
    assert re.findall(r"line \d+ boom", errors) == ["line 00000 boom", "line 00100 boom", "line 00200 boom"]  # fmt: skip
    reconnect = await browser.get(
        f"/runs/{run}/logs/stream", headers={"Last-Event-ID": str(ids[-2])}
    )
    assert "line 00298" not in reconnect.text
    assert "line 00299" in reconnect.text


async def test_a_task_runs_lines_show_its_name_on_the_page_and_in_the_stream(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    await make_pool(client)
    dep = await make_deployment(client)
    run = (await start_run(client, dep["id"]))["id"]
    task = str(uuid.uuid4())
    now = datetime.now(UTC).isoformat()
    recorded = await client.post(
        "/task-runs/batch",
        json={
            "task_runs": [
                {
                    "id": task,
                    "flow_run_id": run,
                    "name": "double-<0>",
                    "state_type": "COMPLETED",
                    "timestamp": now,
                }
            ]
        },
    )
    assert recorded.status_code == 200, recorded.text
    lines = [
        {"flow_run_id": run, "level": 20, "message": "from the flow", "timestamp": now},
        {"flow_run_id": run, "task_run_id": task, "level": 20, "message": "Finished", "timestamp": now},
    ]  # fmt: skip
    written = await client.post("/logs", json={"logs": lines})
    assert written.status_code == 201, written.text
    await set_state(client, run, "COMPLETED", force=True)
    shown = '<span class="log-source" title="Task run">double-&lt;0&gt;</span>Finished'
    page = (await browser.get(f"/runs/{run}")).text
    assert shown in page
    assert 'log-msg">from the flow<' in page
    stream = (await browser.get(f"/runs/{run}/logs/stream")).text
    assert shown in stream


async def test_a_deployment_chosen_past_the_filters_first_options_stays_chosen(
    browser: httpx.AsyncClient, ctx: ServerContext
) -> None:
    ws = await _workspace_id(ctx)
    rows = [
        {"id": uuid.uuid4(), "workspace_id": ws, "flow_name": "f", "name": f"d{i:03d}",
         "entrypoint": "f.py:f", "source": {}, "pull_steps": [], "parameters": {},
         "parameter_schema": {}, "job_variables": {}, "tags": [], "description": "",
         "paused": False}
        for i in range(205)
    ]  # fmt: skip
    async with ctx.db.session() as session:
        await session.execute(insert(m.Deployment), rows)
    last = rows[-1]["id"]
    page = (await browser.get("/runs", params={"deployment": str(last)})).text
    assert f'<option value="{last}" selected>f/d204</option>' in page
    assert '<option value="' + str(rows[0]["id"]) + '">f/d000</option>' in page
