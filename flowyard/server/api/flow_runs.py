from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Response

from flowyard.schemas import flow_runs as s
from flowyard.schemas import times
from flowyard.schemas.pagination import Page
from flowyard.schemas.states import SetStateResult, State, StateCreate, StateType
from flowyard.server.api.deps import Caller, Ctx, Session
from flowyard.server.ops import flow_run_queries, flow_runs
from flowyard.server.ops.auth import issue_run_token

router = APIRouter(prefix="/flow-runs", tags=["flow runs"])


@router.post("", status_code=201)
async def create_ad_hoc_flow_run(
    data: s.AdHocFlowRunCreate, session: Session, caller: Caller
) -> s.FlowRun:
    """Record a flow run that is not from a deployment (the SDK calls this)."""
    run = await flow_runs.create_ad_hoc_flow_run(session, caller, data)
    return (await flow_run_queries.describe(session, [run]))[0]


@router.get("")
async def list_flow_runs(
    session: Session,
    caller: Caller,
    state: list[StateType] = Query(default=[]),
    state_name: list[str] = Query(default=[]),
    deployment_id: uuid.UUID | None = None,
    work_pool_id: uuid.UUID | None = None,
    flow_name: str | None = None,
    tag: list[str] = Query(default=[]),
    created_after: times.UtcTime | None = None,
    created_before: times.UtcTime | None = None,
    parent_task_run_id: uuid.UUID | None = None,
    sort: str = Query(default="created_desc", pattern="^(" + "|".join(s.SORTS) + ")$"),
    limit: int = Query(default=50, ge=1, le=flow_run_queries.MAX_PAGE),
    cursor: str | None = Query(default=None, max_length=500),
) -> Page[s.FlowRun]:
    flt = flow_run_queries.FlowRunFilter(
        states=state,
        state_names=state_name,
        deployment_id=deployment_id,
        work_pool_id=work_pool_id,
        flow_name=flow_name,
        tags=tag,
        created_after=created_after,
        created_before=created_before,
        parent_task_run_id=parent_task_run_id,
    )
    rows, next_cursor = await flow_run_queries.list_flow_runs(
        session, caller, flt, sort=sort, limit=limit, cursor=cursor
    )
    return Page(items=await flow_run_queries.describe(session, rows), next_cursor=next_cursor)


@router.get("/{run_id}")
async def read_flow_run(run_id: uuid.UUID, session: Session, caller: Caller) -> s.FlowRun:
    run = await flow_runs.read_flow_run(session, caller, run_id)
    return (await flow_run_queries.describe(session, [run]))[0]


@router.delete("/{run_id}", status_code=204)
async def delete_flow_run(run_id: uuid.UUID, session: Session, caller: Caller) -> Response:
    await flow_runs.delete_flow_run(session, caller, run_id)
    return Response(status_code=204)


@router.post("/{run_id}/state")
async def set_flow_run_state(
    run_id: uuid.UUID, data: StateCreate, session: Session, caller: Caller
) -> SetStateResult:
    """Propose a state. The answer is ACCEPT, REJECT, WAIT (with a reason) or ABORT."""
    return await flow_runs.set_state(session, caller, run_id, data)


@router.get("/{run_id}/states")
async def read_flow_run_states(run_id: uuid.UUID, session: Session, caller: Caller) -> list[State]:
    rows = await flow_runs.state_history(session, caller, run_id)
    return [State.model_validate(r) for r in rows]


@router.post("/{run_id}/cancel")
async def cancel_flow_run(run_id: uuid.UUID, session: Session, caller: Caller) -> SetStateResult:
    return await flow_runs.cancel_flow_run(session, caller, run_id)


@router.post("/{run_id}/retry")
async def retry_flow_run(run_id: uuid.UUID, session: Session, caller: Caller) -> SetStateResult:
    return await flow_runs.retry_flow_run(session, caller, run_id)


@router.post("/{run_id}/execution")
async def record_execution(
    run_id: uuid.UUID,
    data: s.ExecutionReport,
    session: Session,
    caller: Caller,
    teardown: bool = False,
) -> s.FlowRun:
    """What the execution plane measured; ``teardown=true`` closes the usage record."""
    if teardown:
        caller.require_api_key()
    run = await flow_runs.record_execution(session, caller, run_id, data, teardown=teardown)
    return (await flow_run_queries.describe(session, [run]))[0]


@router.post("/{run_id}/token")
async def issue_token(
    run_id: uuid.UUID, session: Session, caller: Caller, ctx: Ctx
) -> dict[str, str]:
    """A token that may act only on this run (for the process that runs it)."""
    caller.require_api_key()
    await flow_runs.read_flow_run(session, caller, run_id)
    return {"token": issue_run_token(ctx.keys, run_id)}
