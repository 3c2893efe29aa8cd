"""The flow runs list: filters, cursor pages, and a polled refresh of the first page.

Only one page of runs is ever read (keyset pagination in ``ops``), so the
list costs the same with ten runs or ten million. Cursors only go forward:
"newer" is the browser's back button or the first page.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from flowyard.schemas import flow_runs as fr
from flowyard.schemas.states import StateType
from flowyard.server.db import models as m
from flowyard.server.ops import deployments, flow_run_queries, work_pools
from flowyard.server.ops.errors import InvalidInput, NotFound
from flowyard.ui import _pages as pages
from flowyard.ui._formatting import now

router = APIRouter(route_class=pages.UiRoute, include_in_schema=False)

PERIODS = {
    "1h": ("Last hour", timedelta(hours=1)),
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
}
SORTS = {
    "created_desc": "Newest first",
    "created_asc": "Oldest first",
    "expected_start_asc": "Expected start, soonest first",
    "expected_start_desc": "Expected start, latest first",
}
PAGE_SIZES = (25, 50, 100, 200)
REFRESH_SECONDS = 5


@dataclass(frozen=True)
class RunQuery:
    """The list's filters as the page's query string carries them."""

    states: tuple[str, ...] = ()
    deployment: str = ""
    pool: str = ""
    tag: str = ""
    period: str = ""
    sort: str = "created_desc"
    limit: int = 50
    cursor: str = ""
    page: int = 1
    refresh: bool = True

    def params(self, **changes: Any) -> dict[str, Any]:
        """Query parameters for a link to this list with ``changes`` applied."""
        out: dict[str, Any] = {
            "state": list(self.states),
            "deployment": self.deployment,
            "pool": self.pool,
            "tag": self.tag,
            "period": self.period,
            "sort": "" if self.sort == "created_desc" else self.sort,
            "limit": "" if self.limit == 50 else self.limit,
            "cursor": self.cursor,
            "page": "" if self.page == 1 else self.page,
            "refresh": "" if self.refresh else "0",
        }
        out.update(changes)
        return out

    @property
    def filtered(self) -> bool:
        return bool(self.states or self.deployment or self.pool or self.tag or self.period)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def parse_query(
    state: list[str], deployment: str, pool: str, tag: str, period: str, sort: str,
    limit: str, cursor: str, page: str, refresh: str,
) -> RunQuery:  # fmt: skip
    """Unknown values are dropped rather than refused: a stale bookmark still opens."""
    valid = {t.value for t in StateType}
    size = int(limit) if limit.isdigit() and int(limit) in PAGE_SIZES else 50
    return RunQuery(
        states=tuple(s for s in dict.fromkeys(state) if s in valid),
        deployment=deployment if _uuid(deployment) else "",
        pool=pool if _uuid(pool) else "",
        tag=tag.strip()[:100],
        period=period if period in PERIODS else "",
        sort=sort if sort in SORTS else "created_desc",
        limit=size,
        cursor=cursor[:500],
        page=int(page) if page.isdigit() and 0 < int(page) < 1_000_000 else 1,
        refresh=refresh != "0",
    )


def to_filter(q: RunQuery, reference: datetime) -> flow_run_queries.FlowRunFilter:
    after = reference - PERIODS[q.period][1] if q.period else None
    return flow_run_queries.FlowRunFilter(
        states=[StateType(s) for s in q.states],
        deployment_id=_uuid(q.deployment),
        work_pool_id=_uuid(q.pool),
        tags=[q.tag] if q.tag else [],
        created_after=after,
    )


async def _page(scope: pages.Scope, q: RunQuery) -> tuple[list[fr.FlowRun], str | None, str]:
    """One page of runs; a cursor that no longer parses restarts at the first page."""
    flt = to_filter(q, now())
    try:
        rows, next_cursor = await flow_run_queries.list_flow_runs(
            scope.session, scope.principal, flt, sort=q.sort, limit=q.limit, cursor=q.cursor or None
        )
    except InvalidInput:
        rows, next_cursor = await flow_run_queries.list_flow_runs(
            scope.session, scope.principal, flt, sort=q.sort, limit=q.limit
        )
        return await flow_run_queries.describe(scope.session, rows), next_cursor, "stale"
    return await flow_run_queries.describe(scope.session, rows), next_cursor, ""


async def _deployment_choices(scope: pages.Scope, q: RunQuery) -> list[m.Deployment]:
    """The filter's options (the first 200); the chosen one is kept even when past them."""
    rows = await deployments.list_deployments(scope.session, scope.principal)
    chosen = _uuid(q.deployment)
    if chosen is not None and all(d.id != chosen for d in rows):
        # Deleted, or another workspace's: then the filter simply matches nothing.
        with contextlib.suppress(NotFound):
            rows.append(await deployments.read_deployment(scope.session, scope.principal, chosen))
    return rows


@router.get("/runs")
async def runs_page(
    view: pages.View,
    state: list[str] = Query(default=[]),
    deployment: str = "",
    pool: str = "",
    tag: str = "",
    period: str = "",
    sort: str = "",
    limit: str = "",
    cursor: str = "",
    page: str = "",
    refresh: str = "",
    fragment: str = "",
) -> Response:
    q = parse_query(state, deployment, pool, tag, period, sort, limit, cursor, page, refresh)
    async with view.scope() as scope:
        runs, next_cursor, stale = await _page(scope, q)
        choices: dict[str, Any] = {}
        if fragment != "rows":
            choices = {
                "deployments": await _deployment_choices(scope, q),
                "pools": await work_pools.list_work_pools(scope.session, scope.principal),
            }
    template = "runs_results.html" if fragment == "rows" else "runs.html"
    return view.render(
        template,
        scope,
        active="runs",
        title="Flow runs",
        runs=runs,
        q=q,
        next_cursor=next_cursor,
        stale_cursor=bool(stale),
        states=[t.value for t in StateType],
        periods=PERIODS,
        sorts=SORTS,
        page_sizes=PAGE_SIZES,
        refresh_seconds=REFRESH_SECONDS,
        reference=now(),
        **choices,
    )
