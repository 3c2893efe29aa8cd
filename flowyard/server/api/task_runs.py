"""Task runs: batched upserts (with the run's log lines) from the runner, and reads per flow run."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query

from flowyard.schemas import task_runs as s
from flowyard.schemas.pagination import Page
from flowyard.schemas.states import StateType
from flowyard.server.api.deps import Caller, Session
from flowyard.server.ops import reports, task_runs

router = APIRouter(tags=["task runs"])


@router.post("/task-runs/batch")
async def upsert_task_runs(
    data: s.TaskRunBatch, session: Session, caller: Caller
) -> s.TaskRunBatchResult:
    """Create task runs or move their states, and store log lines, all or nothing.

    Re-sending a batch records no task-run state twice (its log lines are stored again).
    """
    return await reports.record_batch(session, caller, data)


@router.get("/flow-runs/{run_id}/task-runs")
async def list_task_runs(
    run_id: uuid.UUID,
    session: Session,
    caller: Caller,
    state: list[StateType] = Query(default=[]),
    limit: int = Query(default=200, ge=1, le=task_runs.MAX_PAGE),
    cursor: str | None = Query(default=None, max_length=500),
) -> Page[s.TaskRun]:
    """A flow run's task runs in creation order."""
    rows, next_cursor = await task_runs.list_task_runs(
        session, caller, run_id, states=state, limit=limit, cursor=cursor
    )
    return Page(items=[s.TaskRun.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/task-runs/{task_run_id}")
async def read_task_run(task_run_id: uuid.UUID, session: Session, caller: Caller) -> s.TaskRun:
    return s.TaskRun.model_validate(await task_runs.read_task_run(session, caller, task_run_id))


@router.get("/task-runs/{task_run_id}/states")
async def read_task_run_states(
    task_run_id: uuid.UUID, session: Session, caller: Caller
) -> list[s.TaskRunStateOut]:
    rows = await task_runs.state_history(session, caller, task_run_id)
    return [s.TaskRunStateOut.model_validate(r) for r in rows]
