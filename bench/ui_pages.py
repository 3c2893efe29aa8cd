"""Web UI server render time with 10,000 flow runs, on SQLite and PostgreSQL.

Measures the whole request in-process (ASGI, no TCP, no browser): the
session cookie is opened, the key re-authenticated, the page read through
``ops`` and rendered. Seeded: 10,000 runs of one deployment in mixed states
(with usage records this month), and one of them with 100,000 log lines,
200 task runs (some retried) and a full state history. Medians of 30
requests per page; the floor is a static file served by the same app in the
same way. Target: list pages <= 200 ms.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, select

from bench._report import python_floor
from flowyard.server.app import create_app
from flowyard.server.context import ServerContext
from flowyard.server.db import Database, create_database
from flowyard.server.db import models as m
from flowyard.server.db.migrate import upgrade
from flowyard.server.keys import ServerKeys
from flowyard.server.ops import workspaces
from flowyard.settings import Settings

RUNS = 10_000
LOG_LINES = 100_000
TASKS = 200
REPEAT = 30
CHUNK = 2000
PG_ADMIN = os.environ.get(
    "FLOWYARD_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
STATES = (
    ("COMPLETED", "Completed"),
    ("COMPLETED", "Completed"),
    ("COMPLETED", "Completed"),
    ("FAILED", "Failed"),
    ("CRASHED", "Crashed"),
    ("RUNNING", "Running"),
    ("SCHEDULED", "Scheduled"),
    ("CANCELLED", "Cancelled"),
)


async def _insert(db: Database, model: type[m.Base], rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        async with db.session() as session:
            await session.execute(insert(model), rows[start : start + CHUNK])


async def _seed(db: Database, api: httpx.AsyncClient) -> uuid.UUID:
    """10k runs; returns the id of the run with 100k lines and 200 task runs."""
    r = await api.post("/work-pools", json={"name": "pool", "type": "managed"})
    assert r.status_code == 201, r.text
    r = await api.post(
        "/deployments",
        json={
            "flow_name": "etl",
            "name": "daily",
            "entrypoint": "f.py:f",
            "work_pool_name": "pool",
        },
    )
    assert r.status_code in (200, 201), r.text
    dep_id = uuid.UUID(r.json()["id"])
    async with db.session() as session:
        ws_id = (await session.execute(select(m.Workspace.id))).scalar_one()
        pool_id = (await session.execute(select(m.WorkPool.id))).scalar_one()
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    span = max(60.0, (now - month_start).total_seconds() - 120)
    runs: list[dict[str, Any]] = []
    usage: list[dict[str, Any]] = []
    for i in range(RUNS):
        t = now - timedelta(seconds=span * (RUNS - i) / RUNS)
        state, name = STATES[i % len(STATES)]
        done = state not in ("RUNNING", "SCHEDULED")
        run_id = uuid.uuid4()
        runs.append(
            {
                "id": run_id,
                "workspace_id": ws_id,
                "deployment_id": dep_id,
                "work_pool_id": pool_id,
                "name": f"run-{i}",
                "flow_name": "etl",
                "parameters": {"i": i},
                "job_variables": {"memory_gib": 16},
                "tags": ["bench", "even" if i % 2 == 0 else "odd"],
                "state_type": state,
                "state_name": name,
                "state_message": "exit code 1" if state == "CRASHED" else "",
                "state_timestamp": t + timedelta(seconds=90),
                "expected_start_time": t,
                "start_time": None if state == "SCHEDULED" else t + timedelta(seconds=5),
                "end_time": t + timedelta(seconds=90) if done else None,
                "created": t,
                "updated": t,
                "run_count": 1,
                "auto_scheduled": False,
                "resolved_commit": "3f2a9c1e0b7d",
                "peak_memory_bytes": 300 * 2**20 if done else None,
                "cpu_seconds": 42.0 if done else None,
            }
        )
        if state != "SCHEDULED":
            usage.append(
                {
                    "id": uuid.uuid4(),
                    "workspace_id": ws_id,
                    "flow_run_id": run_id,
                    "attempt": 1,
                    "deployment_id": dep_id,
                    "started_at": t,
                    "ended_at": t + timedelta(seconds=95) if done else None,
                    "seconds": 95.0 if done else None,
                    "billed_minutes": 2 if done else None,
                }
            )
    await _insert(db, m.FlowRun, runs)
    await _insert(db, m.UsageRecord, usage)
    detail = runs[-8]  # a COMPLETED run among the newest
    detail_id: uuid.UUID = detail["id"]
    t0: datetime = detail["created"]
    history = [
        ("SCHEDULED", "Scheduled", 0),
        ("PENDING", "Pending", 1),
        ("RUNNING", "Running", 5),
        ("COMPLETED", "Completed", 90),
    ]
    await _insert(
        db,
        m.FlowRunState,
        [
            {
                "id": uuid.uuid4(),
                "flow_run_id": detail_id,
                "type": kind,
                "name": label,
                "message": "",
                "timestamp": t0 + timedelta(seconds=dt),
            }
            for kind, label, dt in history
        ],
    )
    tasks = []
    for i in range(TASKS):
        start = t0 + timedelta(seconds=5 + i * 0.4)
        tasks.append(
            {
                "id": uuid.uuid4(),
                "workspace_id": ws_id,
                "flow_run_id": detail_id,
                "name": f"transform-{i}",
                "task_key": "transform",
                "dynamic_key": str(i),
                "tags": [],
                "state_type": "COMPLETED",
                "state_name": "Completed",
                "state_message": "",
                "state_timestamp": start + timedelta(seconds=2),
                "run_count": 2 if i % 10 == 0 else 1,
                "max_retries": 2,
                "start_time": start,
                "end_time": start + timedelta(seconds=2),
                "created": start,
            }
        )
    await _insert(db, m.TaskRun, tasks)
    lines = [
        {
            "workspace_id": ws_id,
            "flow_run_id": detail_id,
            "level": 40 if i % 1000 == 0 else 20,
            "name": "flowyard.flow_runs",
            "message": f"processed batch {i} of {LOG_LINES}: 512 rows",
            "timestamp": t0 + timedelta(seconds=5 + 85 * i / LOG_LINES),
        }
        for i in range(LOG_LINES)
    ]
    await _insert(db, m.Log, lines)
    return detail_id


async def _sign_in(browser: httpx.AsyncClient, key: str) -> None:
    page = await browser.get("/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None, page.text
    r = await browser.post(
        "/sign-in", data={"csrf_token": token.group(1), "api_key": key, "next": "/"}
    )
    assert r.status_code == 303, r.text


async def _median_ms(browser: httpx.AsyncClient, path: str, expect: str) -> float:
    r = await browser.get(path)  # warm: templates compiled, statements cached
    assert r.status_code == 200, (path, r.status_code, r.text[:500])
    assert expect in r.text, (path, expect)
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        r = await browser.get(path)
        times.append(time.perf_counter() - start)
        assert r.status_code == 200, (path, r.status_code)
    return statistics.median(times) * 1000


async def _measure(url: str, label: str) -> list[dict[str, Any]]:
    db = create_database(url)
    await upgrade(db)
    settings = Settings(home=Path(tempfile.mkdtemp()), dispatcher=False)
    ctx = ServerContext(settings=settings, db=db, keys=ServerKeys.from_master(b"bench"))
    async with db.session() as session:
        key = await workspaces.bootstrap(session)
    assert key is not None, "a fresh database bootstraps an admin key"
    app = create_app(settings, context=ctx)
    app.state.ctx = ctx
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench/api", headers=headers
    ) as api:
        detail_id = await _seed(db, api)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as browser:
        await _sign_in(browser, key)
        dep_id = (await api_get(transport, key, "/deployments"))[0]["id"]
        floor = await _median_ms(browser, "/static/favicon.svg", "svg")
        pages = [
            ("runs list, first page (50)", "/runs", "run-9999", True),
            ("runs list, filtered (state + tag + 24 h)", "/runs?state=FAILED&tag=even&period=7d",
             "Failed", True),
            ("runs list, page 2 by cursor", None, "run-", True),
            ("runs list, auto-refresh fragment", "/runs?fragment=rows", "run-9999", True),
            ("run detail (100k log lines, 200 task runs)", f"/runs/{detail_id}", "transform-199",
             False),
            ("run logs, next page (500 lines)", f"/runs/{detail_id}/logs?after=50000",
             "processed batch", False),
            ("run logs, search over 100k lines", f"/runs/{detail_id}/logs?q=batch+99999",
             "batch 99999", False),
            ("dashboard", "/", "Runs by state", False),
            ("deployment detail", f"/deployments/{dep_id}", "Recent runs", False),
            ("work pool detail (queue of 1,250)", "/work-pools/pool", "Waiting", False),
            ("usage (8,750 records this month)", "/usage", "Minutes per day", False),
        ]  # fmt: skip
        first = await browser.get("/runs")
        found = re.search(r'href="(/runs\?[^"]*cursor=[^"]+)"', first.text)
        assert found is not None, "the first page has no next-page link"
        next_page = found.group(1).replace("&amp;", "&")
        rows = [{"metric": f"{label}: static file (floor)", "value": floor, "unit": "ms"}]
        for name, path, expect, is_list in pages:
            ms = await _median_ms(browser, path or next_page, expect)
            row: dict[str, Any] = {"metric": f"{label}: {name}", "value": ms, "unit": "ms"}
            if is_list:
                row["target"] = "<= 200 ms"
            rows.append(row)
            if name.startswith(("runs list, first page", "run detail")):
                ratio = {"metric": f"{label}: {name} / static file", "value": ms / floor}
                rows.append({**ratio, "unit": "x"})
    await db.dispose()
    return rows


async def api_get(transport: httpx.ASGITransport, key: str, path: str) -> Any:
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench/api", headers={"Authorization": f"Bearer {key}"}
    ) as api:
        r = await api.get(path)
        assert r.status_code == 200, r.text
        body = r.json()
        return body["items"] if isinstance(body, dict) and "items" in body else body


async def _pg_database() -> tuple[str, str]:
    import asyncpg

    name = f"flowyard_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN.replace("postgresql+asyncpg://", "postgresql://"))
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", name


async def _drop(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN.replace("postgresql+asyncpg://", "postgresql://"))
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


async def _main() -> dict[str, Any]:
    rows: list[dict[str, Any]] = [
        {"metric": "python -c pass (floor)", "value": python_floor() * 1000, "unit": "ms"}
    ]
    with tempfile.TemporaryDirectory() as tmp:
        rows += await _measure(f"sqlite+aiosqlite:///{tmp}/bench.db", "SQLite")
    try:
        url, name = await _pg_database()
    except OSError as exc:
        rows.append({"metric": "PostgreSQL", "value": f"not measured: {exc}", "unit": ""})
    else:
        try:
            rows += await _measure(url, "PostgreSQL")
        finally:
            await _drop(name)
    return {
        "title": "Web UI server render (bench/ui_pages.py)",
        "notes": __doc__.split("\n\n")[1].replace("\n", " "),
        "rows": rows,
    }


def main() -> dict[str, Any]:
    return asyncio.run(_main())


if __name__ == "__main__":
    from bench._report import write_result

    result = main()
    write_result("ui_pages", result)
    for row in result["rows"]:
        print(row)
