"""Control-plane API latency with 10,000 flow runs, on SQLite and PostgreSQL.

Measures, through the HTTP API in-process (ASGI, no TCP): p50/p99 of a
filtered list page and p50/p99 of a state transition. Seeding inserts the
runs in bulk, which is not what is measured. Targets: list page p99 <= 20 ms,
state transition p50 <= 3 ms.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, select

from flowyard.server.app import create_app
from flowyard.server.context import ServerContext
from flowyard.server.db import create_database
from flowyard.server.db import models as m
from flowyard.server.db.migrate import upgrade
from flowyard.server.keys import ServerKeys
from flowyard.server.ops import workspaces
from flowyard.settings import Settings

RUNS = 10_000
PG_ADMIN = os.environ.get(
    "FLOWYARD_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _seed(ctx: ServerContext, client: httpx.AsyncClient) -> dict[str, Any]:
    await client.post("/work-pools", json={"name": "pool", "type": "managed"})
    dep = (
        await client.post(
            "/deployments",
            json={
                "flow_name": "etl",
                "name": "daily",
                "entrypoint": "f.py:f",
                "work_pool_name": "pool",
            },
        )
    ).json()
    async with ctx.db.session() as session:
        ws_id = (await session.execute(select(m.Workspace.id))).scalar_one()
        pool_id = (await session.execute(select(m.WorkPool.id))).scalar_one()
        now = datetime.now(UTC)
        rows = []
        for i in range(RUNS):
            t = now - timedelta(seconds=RUNS - i)
            state = ("COMPLETED", "Completed") if i % 3 else ("FAILED", "Failed")
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "workspace_id": ws_id,
                    "deployment_id": uuid.UUID(dep["id"]),
                    "work_pool_id": pool_id,
                    "name": f"run-{i}",
                    "flow_name": "etl",
                    "parameters": {"i": i},
                    "job_variables": {},
                    "tags": ["bench", "even" if i % 2 == 0 else "odd"],
                    "state_type": state[0],
                    "state_name": state[1],
                    "state_message": "",
                    "state_timestamp": t,
                    "expected_start_time": t,
                    "created": t,
                    "updated": t,
                    "run_count": 1,
                    "auto_scheduled": False,
                }
            )
        for start in range(0, RUNS, 1000):
            await session.execute(insert(m.FlowRun), rows[start : start + 1000])
    return dep  # type: ignore[no-any-return]


async def _measure(url: str, label: str) -> list[dict[str, Any]]:
    db = create_database(url)
    await upgrade(db)
    settings = Settings(home=Path(tempfile.mkdtemp()), dispatcher=False)
    ctx = ServerContext(settings=settings, db=db, keys=ServerKeys.from_master(b"bench"))
    async with db.session() as session:
        key = await workspaces.bootstrap(session)
    app = create_app(settings, context=ctx)
    app.state.ctx = ctx
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench/api", headers={"Authorization": f"Bearer {key}"}
    ) as client:
        dep = await _seed(ctx, client)
        # Steady state: a server loads each API router on its first request, once.
        await client.get("/flow-runs", params={"limit": 1})
        warm = (await client.post(f"/deployments/{dep['id']}/runs", json={"parameters": {}})).json()
        await client.post(f"/flow-runs/{warm['id']}/state", json={"type": "PENDING"})
        list_times = []
        for i in range(200):
            params = {"state": "FAILED", "tag": "even", "limit": 50, "deployment_id": dep["id"]}
            start = time.perf_counter()
            r = await client.get("/flow-runs", params=params)
            list_times.append(time.perf_counter() - start)
            assert r.status_code == 200, r.text
            assert r.json()["items"], r.text
            del i
        transition_times = []
        for _ in range(100):
            run = (
                await client.post(f"/deployments/{dep['id']}/runs", json={"parameters": {}})
            ).json()
            for state in ("PENDING", "RUNNING", "COMPLETED"):
                start = time.perf_counter()
                r = await client.post(f"/flow-runs/{run['id']}/state", json={"type": state})
                transition_times.append(time.perf_counter() - start)
                assert r.json()["status"] == "ACCEPT", r.text
    await db.dispose()
    ms = 1000
    return [
        {
            "metric": f"{label}: list page p50 (filtered, 10k runs)",
            "value": statistics.median(list_times) * ms,
            "unit": "ms",
        },
        {
            "metric": f"{label}: list page p99",
            "value": _pct(list_times, 0.99) * ms,
            "unit": "ms",
            "target": "<= 20 ms",
        },
        {
            "metric": f"{label}: state transition p50",
            "value": statistics.median(transition_times) * ms,
            "unit": "ms",
            "target": "<= 3 ms",
        },
        {
            "metric": f"{label}: state transition p99",
            "value": _pct(transition_times, 0.99) * ms,
            "unit": "ms",
        },
    ]


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
    rows = []
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
        "title": "Control-plane API (bench/api.py)",
        "notes": __doc__.split("\n\n")[1],
        "rows": rows,
    }


def main() -> dict[str, Any]:
    return asyncio.run(_main())


if __name__ == "__main__":
    from bench._report import write_result

    result = main()
    write_result("api", result)
    for row in result["rows"]:
        print(row)
