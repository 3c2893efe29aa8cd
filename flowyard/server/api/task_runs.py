"""Task runs: batched upserts (with the run's log lines) from the runner, and reads per flow run."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query
from pydantic import Field

from flowyard.schemas import task_runs as s
from flowyard.schemas.pagination import Page
from flowyard.schemas.states import SetStateResult, StateCreate, StateType
from flowyard.server.api.deps import Caller, Session
from flowyard.server.ops import reports, task_runs

router = APIRouter(tags=["task runs"])


class FlowRunStateReport(StateCreate):
    """A flow run's state, proposed once the rest of its batch is stored."""

    flow_run_id: uuid.UUID


class RunReport(s.TaskRunBatch):
    """A batch that may end with a flow run's state: one request for both, not two."""

    flow_run_state: FlowRunStateReport | None = None


class RunReportResult(s.TaskRunBatchResult):
    """What the batch changed and, when it carried one, the verdict on its flow-run state."""

    flow_run_state: SetStateResult | None = Field(default=None, exclude_if=lambda v: v is None)


@router.post("/task-runs/batch")
async def upsert_task_runs(data: RunReport, session: Session, caller: Caller) -> RunReportResult:
    """Create task runs or move their states, and store log lines, all or nothing.

    Re-sending a batch records no task-run state twice (its log lines are stored again).
    ``flow_run_state``, when given, is proposed last, in the same transaction, as
    ``POST /flow-runs/{id}/state`` would propose it; the answer carries its verdict.
    """
    state = data.flow_run_state
    then = None if state is None else (state.flow_run_id, state)
    result, verdict = await reports.record_batch(session, caller, data, then=then)
    return RunReportResult(**result.model_dump(), flow_run_state=verdict)


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
