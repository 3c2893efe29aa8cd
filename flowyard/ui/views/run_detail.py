"""One flow run: state timeline, parameters, telemetry, task runs, artifacts, logs, cancel
and retry.

The page's upper part (state, timeline, telemetry, task runs) is one
fragment that polls itself while the run is active and stops once it ends;
the artifacts and the logs below are never re-rendered by the poll (the
logs stream over SSE, see ``views.log_panel``).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from flowyard.schemas import flow_runs as fr
from flowyard.schemas.states import StateType, Verdict
from flowyard.server.db import models as m
from flowyard.server.ops import artifacts, flow_run_queries, flow_runs, logs, task_runs
from flowyard.server.ops.errors import DomainError, InvalidInput
from flowyard.ui import _pages as pages
from flowyard.ui import _timelines as timelines
from flowyard.ui._artifacts import present
from flowyard.ui._explain import explain
from flowyard.ui._formatting import now
from flowyard.ui.views import log_panel

router = APIRouter(route_class=pages.UiRoute, include_in_schema=False)

TASK_PAGE = 200
# PENDING's sub-steps are the platform's first lines; a few hundred always cover them.
SUBSTEP_LINES = 300
POLL_SECONDS = 3
# Shown in full on the run page; the rest are a link away on the artifacts page.
RUN_ARTIFACTS = 20
CANCELLABLE = {StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED}
GIB = 1024**3


def _limit_bytes(job_variables: dict[str, Any], key: str) -> int | None:
    value = job_variables.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return int(value * GIB)
    return None


async def live_context(
    scope: pages.Scope, run_id: uuid.UUID, tasks_cursor: str | None
) -> dict[str, Any]:
    """Everything the polled part of the page shows."""
    session, principal = scope.session, scope.principal
    row = await flow_runs.read_flow_run(session, principal, run_id)
    run: fr.FlowRun = (await flow_run_queries.describe(session, [row]))[0]
    history = await flow_runs.state_history(session, principal, run_id)
    states = [
        timelines.StatePoint(StateType(h.type), h.name, h.message, h.timestamp) for h in history
    ]
    lines: list[timelines.LogPoint] = []
    if any(s.type is StateType.PENDING for s in states):
        rows, _ = await logs.logs_after(session, run_id, limit=SUBSTEP_LINES)
        lines = [timelines.LogPoint(r.timestamp, r.message) for r in rows]
    try:
        tasks, next_tasks = await task_runs.list_task_runs(
            session, principal, run_id, limit=TASK_PAGE, cursor=tasks_cursor
        )
    except InvalidInput:  # a stale cursor: start over
        tasks, next_tasks = await task_runs.list_task_runs(
            session, principal, run_id, limit=TASK_PAGE
        )
        tasks_cursor = None
    reference = now()
    chart = timelines.task_chart(
        [
            timelines.TaskPoint(
                t.name, StateType(t.state_type), t.state_name, t.created, t.start_time,
                t.end_time, t.run_count, t.max_retries,
            )
            for t in tasks
        ],
        reference,
    )  # fmt: skip
    state = run.state_type
    return {
        "run": run,
        "segments": timelines.state_timeline(states, lines, reference),
        "chart": chart,
        "tasks_cursor": tasks_cursor,
        "next_tasks_cursor": next_tasks,
        "explanation": explain(state, run.state_message, run.crash_reason),
        "memory_limit": _limit_bytes(run.job_variables, "memory_gib"),
        "storage_limit": _limit_bytes(run.job_variables, "storage_gib"),
        "can_cancel": state in CANCELLABLE,
        "can_retry": state.is_terminal,
        "is_active": not state.is_terminal,
        "poll_seconds": POLL_SECONDS,
        "reference": reference,
    }


@router.get("/runs/{run_id}")
async def run_page(
    view: pages.View,
    run_id: uuid.UUID,
    tasks_cursor: str = "",
    level: str = "",
    q: str = "",
) -> Response:
    filters = log_panel.LogFilters.parse(level, q)
    async with view.scope() as scope:
        live = await live_context(scope, run_id, tasks_cursor or None)
        panel = await log_panel.first_page(scope, run_id, filters, live["is_active"])
        rows = await _artifact_rows(scope, run_id)
    published = await _artifacts(rows)
    response = view.render(
        "run.html",
        scope,
        active="runs",
        title=f"{live['run'].name} · flow run",
        **published,
        **panel.template_context(),
        **live,
    )
    # Images of artifacts shown now, or of those an active run may still publish.
    visible = published["artifacts"] or live["is_active"]
    return pages.allow_remote_images(response) if visible else response


async def _artifact_rows(scope: pages.Scope, run_id: uuid.UUID) -> list[m.Artifact]:
    return await artifacts.list_artifacts(
        scope.session, scope.principal, flow_run_id=run_id, limit=RUN_ARTIFACTS + 1
    )


async def _artifacts(rows: list[m.Artifact]) -> dict[str, Any]:
    """The card's artifacts, rendered after the page's transaction and off the event loop:
    a long markdown report takes a while, and neither may wait on it."""
    shown = await asyncio.to_thread(lambda: [present(row) for row in rows[:RUN_ARTIFACTS]])
    return {"artifacts": shown, "more_artifacts": len(rows) > RUN_ARTIFACTS}


@router.get("/runs/{run_id}/artifacts")
async def run_artifacts(view: pages.View, run_id: uuid.UUID) -> Response:
    """The run's artifacts card, which an active run's page polls."""
    async with view.scope() as scope:
        run = await flow_runs.read_flow_run(scope.session, scope.principal, run_id)
        rows = await _artifact_rows(scope, run_id)
    published = await _artifacts(rows)
    return view.render(
        "run_artifacts.html",
        scope,
        run=run,
        is_active=not StateType(run.state_type).is_terminal,
        poll_seconds=POLL_SECONDS,
        reference=now(),
        **published,
    )


@router.get("/runs/{run_id}/live")
async def run_live(view: pages.View, run_id: uuid.UUID, tasks_cursor: str = "") -> Response:
    async with view.scope() as scope:
        live = await live_context(scope, run_id, tasks_cursor or None)
    return view.render("run_live.html", scope, **live)


async def _act(view: pages.View, run_id: uuid.UUID, action: str) -> Response:
    await view.form()
    try:
        async with view.scope() as scope:
            if action == "cancel":
                result = await flow_runs.cancel_flow_run(scope.session, scope.principal, run_id)
            else:
                result = await flow_runs.retry_flow_run(scope.session, scope.principal, run_id)
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        view.notify("error", f"Could not {action} this run: {exc}")
        return view.redirect(f"/runs/{run_id}")
    if result.status is Verdict.ACCEPT and result.state is not None:
        done = "Cancel requested" if action == "cancel" else "Retry scheduled"
        view.notify("ok", f"{done}: the run is now {result.state.name}.")
    else:
        reason = result.reason or result.status.value.lower()
        view.notify("error", f"Could not {action} this run: {reason}")
    return view.redirect(f"/runs/{run_id}")


@router.post("/runs/{run_id}/cancel")
async def cancel_run(view: pages.View, run_id: uuid.UUID) -> Response:
    return await _act(view, run_id, "cancel")


@router.post("/runs/{run_id}/retry")
async def retry_run(view: pages.View, run_id: uuid.UUID) -> Response:
    return await _act(view, run_id, "retry")
