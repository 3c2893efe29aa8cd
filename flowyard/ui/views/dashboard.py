"""The dashboard: runs by state over the last 24 h, failures, what runs now, compute used.

Counts by state are one grouped query over the last day's runs (the
``workspace_id, created`` index bounds it); the lists are short capped pages.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import Response

from flowyard.schemas.states import ACTIVE_STATES, StateType
from flowyard.server.ops import deployments, flow_run_queries, usage, work_pools
from flowyard.ui import _charts as charts
from flowyard.ui import _pages as pages
from flowyard.ui._formatting import now

router = APIRouter(route_class=pages.UiRoute, include_in_schema=False)

SHORT_LIST = 8
STATE_ORDER = (
    StateType.SCHEDULED,
    StateType.PENDING,
    StateType.RUNNING,
    StateType.COMPLETED,
    StateType.FAILED,
    StateType.CRASHED,
    StateType.CANCELLING,
    StateType.CANCELLED,
    StateType.PAUSED,
)


@router.get("/")
async def dashboard(view: pages.View) -> Response:
    reference = now()
    since = reference - timedelta(hours=24)
    Filter = flow_run_queries.FlowRunFilter
    async with view.scope() as scope:
        session, principal = scope.session, scope.principal
        list_runs = flow_run_queries.list_flow_runs
        by_state = await flow_run_queries.count_by_state(session, principal, created_after=since)
        counts = [(state, by_state.get(state, 0)) for state in STATE_ORDER]
        failed, _ = await list_runs(
            session,
            principal,
            Filter(states=[StateType.FAILED, StateType.CRASHED], created_after=since),
            limit=SHORT_LIST,
        )
        running, more_running = await list_runs(
            session, principal, Filter(states=list(ACTIVE_STATES)), limit=SHORT_LIST
        )
        any_run, _ = await list_runs(session, principal, Filter(), limit=1)
        onboarding = None
        if not any_run:
            pools = await work_pools.list_work_pools(session, principal)
            deps = await deployments.list_deployments(session, principal, limit=1)
            onboarding = {"has_pool": bool(pools), "has_deployment": bool(deps)}
        used, open_runs = await usage.used_minutes(session, scope.workspace.id, reference)
        failures = await flow_run_queries.describe(session, failed)
        active = await flow_run_queries.describe(session, running)
    limit = scope.workspace.monthly_limit_minutes
    top = max((n for _, n in counts), default=0)
    return view.render(
        "dashboard.html",
        scope,
        active="dashboard",
        title="Dashboard",
        counts=counts,
        count_top=max(top, 1),
        total_24h=sum(n for _, n in counts),
        failures=failures,
        running=active,
        more_running=more_running is not None,
        used_minutes=used,
        open_runs=open_runs,
        limit_minutes=limit,
        meter=charts.meter(used, limit),
        resets_on=usage.resets_on(reference),
        onboarding=onboarding,
        reference=reference,
    )
