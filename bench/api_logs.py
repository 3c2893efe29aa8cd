"""Log ingestion through the HTTP API, in process, on SQLite and PostgreSQL.

Each batch is one ``POST /api/logs`` of pre-encoded JSON (the client's
encoding is not timed) through the full app: authentication, parsing and
validation, the access query and the bulk insert, and the commit. Lines are
~100 characters, like ordinary application logging. The figure is the median
lines/s over several batches into a run that already holds earlier batches.
Target: >= 50,000 lines/s on SQLite. PostgreSQL is measured when reachable
(``FLOWYARD_BENCH_PG``, default the local server the tests use).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench._report import median
from flowyard.server.app import create_app
from flowyard.server.context import ServerContext
from flowyard.server.db import Database, create_database
from flowyard.server.db.migrate import upgrade
from flowyard.server.keys import ServerKeys
from flowyard.server.ops import workspaces
from flowyard.settings import Settings

PG_ADMIN_URL = os.environ.get(
    "FLOWYARD_BENCH_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
BATCH_SIZES = (1000, 5000)
BATCHES = 9
TARGET = 50_000


def _body(run_id: str, size: int, start: int) -> bytes:
    now = datetime.now(UTC).isoformat()
    lines = [
        {
            "flow_run_id": run_id,
            "level": 20,
            "name": "flowyard.task_runs",
            "message": f"Task run 'extract-{start + i}' processed 1,024 rows from s3://bucket/key "
            f"in {i % 97} ms",
            "timestamp": now,
        }
        for i in range(size)
    ]
    return json.dumps({"logs": lines}).encode()


async def _measure(db: Database, home: Path) -> dict[int, float]:
    settings = Settings(home=home, server_key="bench", dispatcher=False)
    ctx = ServerContext(settings=settings, db=db, keys=ServerKeys.from_master(b"bench"))
    await upgrade(db)
    async with db.session() as session:
        key = await workspaces.bootstrap(session)
    app = create_app(settings, context=ctx)
    app.state.ctx = ctx
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    rates: dict[int, float] = {}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench/api", headers=headers, timeout=60
    ) as client:
        r = await client.post("/flow-runs", json={"flow_name": "bench"})
        r.raise_for_status()
        run_id = r.json()["id"]
        written = 0
        for size in BATCH_SIZES:
            bodies = [_body(run_id, size, written + i * size) for i in range(BATCHES + 1)]
            samples = []
            for index, body in enumerate(bodies):
                start = time.perf_counter()
                r = await client.post("/logs", content=body)
                elapsed = time.perf_counter() - start
                if r.status_code != 201:
                    raise RuntimeError(f"ingestion failed: {r.status_code} {r.text[:200]}")
                if index:  # the first batch warms caches and statement preparation
                    samples.append(size / elapsed)
            written += size * len(bodies)
            rates[size] = median(samples)
    return rates


async def _sqlite() -> dict[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        db = create_database(f"sqlite+aiosqlite:///{tmp}/bench.db")
        try:
            return await _measure(db, Path(tmp))
        finally:
            await db.dispose()


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL.replace("+asyncpg", ""), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _postgres() -> dict[int, float] | None:
    name = f"flowyard_bench_{uuid.uuid4().hex[:8]}"
    try:
        await _admin(f'CREATE DATABASE "{name}"')
    except (OSError, ImportError) as exc:
        print(f"  PostgreSQL not measured: {exc}")
        return None
    try:
        db = create_database(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
        try:
            with tempfile.TemporaryDirectory() as tmp:
                return await _measure(db, Path(tmp))
        finally:
            await db.dispose()
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _rows(dialect: str, rates: dict[int, float]) -> list[dict[str, Any]]:
    target = f">= {TARGET:,} lines/s" if dialect == "SQLite" else ""
    return [
        {
            "metric": f"log ingestion, {dialect}, {size:,}-line batches",
            "value": round(rate),
            "unit": "lines/s",
            "target": target,
        }
        for size, rate in rates.items()
    ]


def main() -> dict[str, Any]:
    sqlite = asyncio.run(_sqlite())
    postgres = asyncio.run(_postgres())
    rows = _rows("SQLite", sqlite)
    if postgres is not None:
        rows += _rows("PostgreSQL", postgres)
    return {
        "title": "Log ingestion over the API (bench/api_logs.py)",
        "notes": f"POST /api/logs in process (httpx ASGI transport), median of {BATCHES} "
        "batches after one warm-up batch; ~100-character lines.",
        "rows": rows,
    }


if __name__ == "__main__":
    from bench._report import write_result

    result = main()
    write_result("api_logs", result)
    for row in result["rows"]:
        print(row)
