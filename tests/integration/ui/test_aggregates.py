"""Totals the pages show are exact at any volume and bucketed by the UTC day."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert, select

from flowyard.server.context import ServerContext
from flowyard.server.db import models as m
from tests.integration.ui.conftest import make_deployment, make_pool


async def _workspace_id(ctx: ServerContext) -> uuid.UUID:
    async with ctx.db.session() as session:
        ident: uuid.UUID = (
            await session.execute(select(m.Workspace.id).where(m.Workspace.name == "default"))
        ).scalar_one()
    return ident


def _run(workspace_id: uuid.UUID, created: datetime, state: str, i: int) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "workspace_id": workspace_id,
        "name": f"bulk-{i}",
        "flow_name": "etl",
        "parameters": {},
        "job_variables": {},
        "tags": [],
        "state_type": state,
        "state_name": state.capitalize(),
        "state_message": "",
        "state_timestamp": created,
        "created": created,
        "updated": created,
        "run_count": 1,
        "auto_scheduled": False,
    }


async def test_the_dashboard_counts_every_run_of_the_last_day_by_state(
    browser: httpx.AsyncClient, ctx: ServerContext
) -> None:
    ws = await _workspace_id(ctx)
    now = datetime.now(UTC)
    rows = [_run(ws, now - timedelta(minutes=i), "COMPLETED", i) for i in range(130)]
    rows += [_run(ws, now - timedelta(minutes=i), "FAILED", i) for i in range(7)]
    rows += [_run(ws, now - timedelta(days=2, minutes=i), "FAILED", i) for i in range(50)]
    async with ctx.db.session() as session:
        await session.execute(insert(m.FlowRun), rows)
    page = (await browser.get("/")).text
    assert "137 <span" in page  # created in the last 24 hours; the older 50 are not counted
    cells = dict(
        re.findall(r"state=(\w+)&amp;period=24h\">.*?</a></th>\s*<td class=\"num\">(\d+)", page)
    )
    assert cells["COMPLETED"] == "130"
    assert cells["FAILED"] == "7"
    assert cells["RUNNING"] == "0"


async def test_usage_per_day_splits_at_utc_midnight_and_sums_per_deployment(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    await make_pool(client, "pool")
    deployment = await make_deployment(client, "pool")
    ws = await _workspace_id(ctx)
    month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    day_one_late = month + timedelta(hours=23, minutes=59, seconds=30)
    day_two_early = month + timedelta(days=1, seconds=30)

    def record(started: datetime, seconds: float, deployment_id: object) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(),
            "workspace_id": ws,
            "flow_run_id": uuid.uuid4(),
            "attempt": 1,
            "deployment_id": deployment_id,
            "started_at": started,
            "ended_at": started + timedelta(seconds=seconds),
            "seconds": seconds,
            "billed_minutes": -(-int(seconds) // 60),
        }

    dep_id = uuid.UUID(str(deployment["id"]))
    async with ctx.db.session() as session:
        await session.execute(
            insert(m.UsageRecord),
            [
                record(day_one_late, 600, dep_id),  # 10 min, billed to the day it started
                record(day_one_late, 61, None),  # 2 min, ad hoc
                record(day_two_early, 120, dep_id),  # 2 min
            ],
        )
    page = (await browser.get("/usage")).text
    first, second = month.date().isoformat(), (month + timedelta(days=1)).date().isoformat()
    assert f"{first}: 12 min, 2 runs" in page
    assert f"{second}: 2 min, 1 run<" in page
    assert "14 <span" in page  # the month's total
    per_deployment = re.findall(r"<tr><td>([^<]+)</td><td class=\"num\">(\d+)</td>"
                                r"<td class=\"num\">(\d+)</td></tr>", page)  # fmt: skip
    assert ("etl/daily", "2", "12") in per_deployment
    assert ("(ad hoc)", "1", "2") in per_deployment
