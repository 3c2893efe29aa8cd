"""Flow runs: creation, state transitions through the policy, and reads.

Every state write is one transaction: the run row is locked (``FOR UPDATE``
on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serialises writers), the
writer's expected state is checked (a stale writer gets 409), the policy
decides, and the state row, the run's denormalised state and the usage
ledger change together. Occupancy of concurrency limits is counted from the
runs themselves inside that transaction, so a slot is freed by the same
commit that ends a run.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.schemas import flow_runs as s
from flowyard.schemas.states import (
    ACTIVE_STATES,
    DEFAULT_NAMES,
    SetStateResult,
    State,
    StateCreate,
    StateType,
    Verdict,
)
from flowyard.server import signals
from flowyard.server.db import models as m
from flowyard.server.db.dialect import dialect_of, lock_rows
from flowyard.server.ops import deployments as deployments_ops
from flowyard.server.ops import usage, work_pools
from flowyard.server.ops.auth import Principal
from flowyard.server.ops.errors import Forbidden, NotFound, StaleState
from flowyard.server.ops.names import run_name
from flowyard.server.ops.validation import validate
from flowyard.server.orchestration import FLOW_RUN_POLICY, LimitUsage, TransitionContext
from flowyard.server.orchestration.rules import RETRY_NAME


def _now() -> datetime:
    return datetime.now(UTC)


def check_access(principal: Principal, run: m.FlowRun) -> None:
    """Same workspace; and a run token only for its own run tree."""
    if run.workspace_id != principal.workspace_id:
        raise NotFound("flow run", run.id)
    if principal.is_run_token and principal.flow_run_id not in (run.id, run.root_flow_run_id):
        raise NotFound("flow run", run.id)


# The statements of every state transition, built once: building and keying a
# statement costs more than SQLite takes to run it.
_RUN = select(m.FlowRun).where(m.FlowRun.id == bindparam("run_id"))
# A run without a deployment or pool joins nothing: its NULL id matches no row.
_ACTIVATION = (
    select(m.Workspace, m.Deployment, m.WorkPool)
    .select_from(m.Workspace)
    .outerjoin(m.Deployment, m.Deployment.id == bindparam("deployment_id"))
    .outerjoin(m.WorkPool, m.WorkPool.id == bindparam("work_pool_id"))
    .where(m.Workspace.id == bindparam("workspace_id"))
)


@functools.cache
def _locked_run(dialect: str) -> Select[m.FlowRun]:
    return lock_rows(dialect, _RUN)


@functools.cache
def _locked_activation(dialect: str) -> Select[m.Workspace, m.Deployment, m.WorkPool]:
    return lock_rows(dialect, _ACTIVATION, key_share=True, of=m.Workspace)


async def read_flow_run(
    session: AsyncSession, principal: Principal, run_id: uuid.UUID, *, lock: bool = False
) -> m.FlowRun:
    query = _locked_run(dialect_of(session)) if lock else _RUN
    run = (await session.execute(query, {"run_id": run_id})).scalar_one_or_none()
    if run is None:
        raise NotFound("flow run", run_id)
    check_access(principal, run)
    return run


async def create_flow_run(
    session: AsyncSession,
    principal: Principal,
    deployment_id: uuid.UUID,
    data: s.FlowRunCreate,
    *,
    auto_scheduled: bool = False,
) -> tuple[m.FlowRun, bool]:
    """A run of a deployment. Returns (run, created); an idempotency key may return an old run."""
    deployment = await deployments_ops.read_deployment(session, principal, deployment_id)
    if data.idempotency_key is not None:
        existing = (
            await session.execute(
                select(m.FlowRun).where(
                    m.FlowRun.deployment_id == deployment.id,
                    m.FlowRun.idempotency_key == data.idempotency_key,
                )
            )
        ).scalar_one_or_none()
        if existing is not None:
            return existing, False
    parameters = {**deployment.parameters, **data.parameters}
    if deployment.parameter_schema:
        validate(parameters, deployment.parameter_schema, "parameters")
    pool = (
        await session.get(m.WorkPool, deployment.work_pool_id) if deployment.work_pool_id else None
    )
    job_variables = work_pools.resolve_job_variables(
        pool, deployment.job_variables, data.job_variables
    )
    now = _now()
    scheduled = data.scheduled_time or now
    root = None
    if principal.is_run_token:
        root = await _root_of(session, principal)
    run = m.FlowRun(
        id=uuid.uuid4(),
        workspace_id=principal.workspace_id,
        deployment_id=deployment.id,
        work_pool_id=deployment.work_pool_id,
        parent_task_run_id=data.parent_task_run_id,
        root_flow_run_id=root,
        name=data.name or run_name(),
        flow_name=deployment.flow_name,
        parameters=parameters,
        job_variables=job_variables,
        tags=sorted({*deployment.tags, *data.tags}),
        idempotency_key=data.idempotency_key,
        state_type=StateType.SCHEDULED.value,
        state_name=DEFAULT_NAMES[StateType.SCHEDULED],
        expected_start_time=scheduled,
        next_scheduled_start_time=scheduled,
        auto_scheduled=auto_scheduled,
        created=now,
    )
    session.add(run)
    # The run and its first state in one flush (the run's row goes first: the state's
    # key names it), so the run is inserted as it stands, not inserted then updated.
    await _write_state(session, run, StateType.SCHEDULED, run.state_name, "", None, now)
    await session.flush()
    await signals.runs_changed(session)
    return run, True


async def _root_of(session: AsyncSession, principal: Principal) -> uuid.UUID | None:
    if principal.flow_run_id is None:
        return None
    parent = await session.get(m.FlowRun, principal.flow_run_id)
    if parent is None:
        return principal.flow_run_id
    return parent.root_flow_run_id or parent.id


async def create_ad_hoc_flow_run(
    session: AsyncSession, principal: Principal, data: s.AdHocFlowRunCreate
) -> m.FlowRun:
    """A run the SDK records for a flow called directly (or a subflow)."""
    now = _now()
    if data.id is not None and await session.get(m.FlowRun, data.id) is not None:
        run = await read_flow_run(session, principal, data.id)
        return run
    state = data.state or StateCreate(type=StateType.RUNNING)
    run = m.FlowRun(
        id=data.id or uuid.uuid4(),
        workspace_id=principal.workspace_id,
        parent_task_run_id=data.parent_task_run_id,
        root_flow_run_id=await _root_of(session, principal) if principal.is_run_token else None,
        name=data.name or run_name(),
        flow_name=data.flow_name,
        parameters=data.parameters,
        tags=data.tags,
        state_type=StateType.SCHEDULED.value,
        state_name=DEFAULT_NAMES[StateType.SCHEDULED],
        expected_start_time=now,
        created=now,
    )
    session.add(run)
    await session.flush()
    result = await _transition(session, run, state, now)
    if result.status is not Verdict.ACCEPT:
        await _write_state(session, run, StateType.SCHEDULED, run.state_name, "", None, now)
    return run


async def _write_state(
    session: AsyncSession,
    run: m.FlowRun,
    type_: StateType,
    name: str,
    message: str,
    data: dict[str, Any] | None,
    ts: datetime,
) -> m.FlowRunState:
    row = m.FlowRunState(
        id=uuid.uuid4(),
        flow_run_id=run.id,
        type=type_.value,
        name=name,
        message=message,
        timestamp=ts,
        data=data,
    )
    session.add(row)
    previous = StateType(run.state_type)
    run.state_id = row.id
    run.state_type = type_.value
    run.state_name = name
    run.state_message = message
    run.state_timestamp = ts
    if (type_ is StateType.RUNNING and previous is not StateType.RUNNING) or name == "Retrying":
        run.run_count += 1
        if run.start_time is None:
            run.start_time = ts
    if type_ is StateType.SCHEDULED:
        run.next_scheduled_start_time = run.next_scheduled_start_time or ts
        run.end_time = None
    else:
        run.next_scheduled_start_time = None
    if type_.is_terminal:
        run.end_time = ts
        # A run that ended (killed, crashed, cancelled: its blocks' cleanup may never have
        # run) gives back the concurrency slots it still holds, without waiting for them
        # to run out.
        await session.execute(_RELEASE_LEASES, {"run_id": run.id})
    return row


_RELEASE_LEASES = delete(m.ConcurrencyLease).where(
    m.ConcurrencyLease.flow_run_id == bindparam("run_id")
)


async def _limits(
    session: AsyncSession,
    run: m.FlowRun,
    workspace: m.Workspace,
    deployment: m.Deployment | None,
    pool: m.WorkPool | None,
) -> tuple[LimitUsage, ...]:
    """Occupancy of each limit the run is under, counted in one statement."""
    active = [t.value for t in ACTIVE_STATES]
    scopes: list[tuple[str, int, Any]] = []
    if deployment is not None and deployment.concurrency_limit is not None:
        label = f"deployment '{deployment.flow_name}/{deployment.name}'"
        scopes.append(
            (label, deployment.concurrency_limit, m.FlowRun.deployment_id == deployment.id)
        )
    if pool is not None and pool.concurrency_limit is not None:
        scopes.append(
            (f"work pool '{pool.name}'", pool.concurrency_limit, m.FlowRun.work_pool_id == pool.id)
        )
    if workspace.concurrency_limit is not None:
        scopes.append(
            (
                f"workspace '{workspace.name}'",
                workspace.concurrency_limit,
                m.FlowRun.workspace_id == workspace.id,
            )
        )
    if not scopes:
        return ()
    counts = [
        select(func.count())
        .select_from(m.FlowRun)
        .where(m.FlowRun.state_type.in_(active), m.FlowRun.id != run.id, where)
        .scalar_subquery()
        for _, _, where in scopes
    ]
    row = (await session.execute(select(*counts))).one()
    return tuple(
        LimitUsage(label, limit, int(n)) for (label, limit, _), n in zip(scopes, row, strict=True)
    )


def _pauses(deployment: m.Deployment | None, pool: m.WorkPool | None) -> tuple[str, ...]:
    out = []
    if pool is not None and pool.paused:
        out.append(f"work pool '{pool.name}' is paused")
    if deployment is not None and deployment.paused:
        out.append(f"deployment '{deployment.flow_name}/{deployment.name}' is paused")
    return tuple(out)


async def lock_workspace(session: AsyncSession, workspace_id: uuid.UUID) -> m.Workspace:
    """Serialise activations within a workspace (limits and quota are per workspace)."""
    query = lock_rows(
        dialect_of(session),
        select(m.Workspace).where(m.Workspace.id == workspace_id),
        key_share=True,
    )
    workspace: m.Workspace = (await session.execute(query)).scalar_one()
    return workspace


# Per transaction (a session's info), the rows each activation read: a claim activates
# many runs of one deployment, and the workspace's lock holds until the commit.
_ACTIVATIONS = "flowyard_activations"


async def _lock_for_activation(
    session: AsyncSession, run: m.FlowRun
) -> tuple[m.Workspace, m.Deployment | None, m.WorkPool | None]:
    """:func:`lock_workspace`, reading the run's deployment and pool in the same statement.

    Once per transaction for the same three: later activations in it reuse them.
    """
    key = (run.workspace_id, run.deployment_id, run.work_pool_id)
    read = session.info.setdefault(_ACTIVATIONS, {})
    if key not in read:
        params = {
            "workspace_id": run.workspace_id,
            "deployment_id": run.deployment_id,
            "work_pool_id": run.work_pool_id,
        }
        row = (await session.execute(_locked_activation(dialect_of(session)), params)).one()
        read[key] = (row[0], row[1], row[2])
    workspace, deployment, pool = read[key]
    return workspace, deployment, pool


async def _context(
    session: AsyncSession, run: m.FlowRun, proposed: StateCreate, name: str, now: datetime
) -> TransitionContext:
    ctx = TransitionContext(
        from_type=StateType(run.state_type),
        to_type=proposed.type,
        to_name=name,
        to_message=proposed.message,
    )
    if not ctx.activates:
        return ctx
    workspace, deployment, pool = await _lock_for_activation(session, run)
    quota = None
    if pool is not None and pool.type == "managed":
        quota = await usage.quota_reason(session, workspace, now)
    return TransitionContext(
        from_type=ctx.from_type,
        to_type=ctx.to_type,
        to_name=name,
        to_message=proposed.message,
        limits=await _limits(session, run, workspace, deployment, pool),
        paused=_pauses(deployment, pool),
        quota_reason=quota,
    )


async def _transition(
    session: AsyncSession, run: m.FlowRun, proposed: StateCreate, now: datetime
) -> SetStateResult:
    name = proposed.name or DEFAULT_NAMES[proposed.type]
    if proposed.force:
        decision_type, decision_name = proposed.type, name
        verdict, reason, retry_after = Verdict.ACCEPT, "", None
    else:
        ctx = await _context(session, run, proposed, name, now)
        decision = FLOW_RUN_POLICY.decide(ctx)
        verdict, reason = decision.verdict, decision.reason
        retry_after = decision.retry_after_seconds
        decision_type = decision.to_type or proposed.type
        decision_name = decision.to_name or name
    if verdict is Verdict.WAIT and StateType(run.state_type) is StateType.SCHEDULED:
        await mark_waiting(session, run, decision_name, reason, now)
    if verdict is not Verdict.ACCEPT:
        return SetStateResult(
            status=verdict,
            state=_state_of(run),
            reason=reason,
            retry_after_seconds=retry_after,
        )
    was_active = StateType(run.state_type) in ACTIVE_STATES
    row = await _write_state(
        session,
        run,
        decision_type,
        decision_name,
        proposed.message,
        proposed.data,
        proposed.timestamp or now,
    )
    if (was_active and not decision_type.is_active) or decision_type is StateType.SCHEDULED:
        await signals.runs_changed(session)  # a slot freed or a run became due: wake claimers
    if decision_type.is_terminal and run.work_pool_id is None:
        await usage.close_record(session, run, now)
    return SetStateResult(status=Verdict.ACCEPT, state=State.model_validate(row))


async def mark_waiting(
    session: AsyncSession, run: m.FlowRun, name: str, reason: str, now: datetime
) -> None:
    """Say on the run itself why it is not starting (once per distinct reason)."""
    if run.state_name == name and run.state_message == reason:
        return
    await _write_state(session, run, StateType.SCHEDULED, name, reason, None, now)


def _state_of(run: m.FlowRun) -> State | None:
    if run.state_id is None:
        return None
    return State(
        id=run.state_id,
        type=StateType(run.state_type),
        name=run.state_name,
        message=run.state_message,
        timestamp=run.state_timestamp,
    )


async def set_state(
    session: AsyncSession,
    principal: Principal,
    run_id: uuid.UUID,
    proposed: StateCreate,
    *,
    locked: m.FlowRun | None = None,
) -> SetStateResult:
    """``locked``: the run, already read with its row lock in this transaction (not read again)."""
    if proposed.force:
        principal.require_admin()
    if locked is None:
        run = await read_flow_run(session, principal, run_id, lock=True)
    else:
        run = locked
        check_access(principal, run)
    if proposed.expected_state_id is not None and proposed.expected_state_id != run.state_id:
        raise StaleState(
            f"flow run {run_id} is now {run.state_type} ({run.state_name}); "
            "re-read it and try again"
        )
    return await _transition(session, run, proposed, _now())


async def cancel_flow_run(
    session: AsyncSession, principal: Principal, run_id: uuid.UUID
) -> SetStateResult:
    return await set_state(
        session,
        principal,
        run_id,
        StateCreate(type=StateType.CANCELLING, message="cancel requested"),
    )


async def retry_flow_run(
    session: AsyncSession, principal: Principal, run_id: uuid.UUID
) -> SetStateResult:
    principal.require_api_key()
    run = await read_flow_run(session, principal, run_id, lock=True)
    if not StateType(run.state_type).is_terminal:
        raise Forbidden(f"only a finished run can be retried; this one is {run.state_type}")
    now = _now()
    run.next_scheduled_start_time = now
    run.crash_reason = None
    run.exit_code = None
    return await _transition(
        session,
        run,
        StateCreate(type=StateType.SCHEDULED, name=RETRY_NAME, message="retry requested"),
        now,
    )


_MEASURED = tuple(f for f in s.ExecutionReport.model_fields if f != "heartbeat")


async def record_execution(
    session: AsyncSession,
    principal: Principal,
    run_id: uuid.UUID,
    report: s.ExecutionReport,
    *,
    teardown: bool = False,
) -> m.FlowRun:
    """What the execution plane measured; ``teardown`` closes the usage record."""
    run = await read_flow_run(session, principal, run_id, lock=True)
    now = _now()
    if teardown:  # first: its read would flush the fields below as an update of their own
        await usage.close_record(session, run, now)
    for field in _MEASURED:
        value = getattr(report, field)
        if value is not None:
            setattr(run, field, value)
    if report.heartbeat:
        run.heartbeat_at = now
    if teardown:
        from flowyard.server.ops.liveness import end_orphans

        await end_orphans(session, run, now)
    await session.flush()
    return run


async def write_report(
    session: AsyncSession, principal: Principal, run_id: uuid.UUID, report: s.ExecutionReport
) -> bool:
    """:func:`record_execution` short of teardown, in one statement: the run is not read.

    For the platform (an API key's principal): whether the run exists in its workspace.
    """
    principal.require_api_key()
    values: dict[str, Any] = {f: v for f in _MEASURED if (v := getattr(report, f)) is not None}
    if report.heartbeat:
        values["heartbeat_at"] = _now()
    where = (m.FlowRun.id == run_id, m.FlowRun.workspace_id == principal.workspace_id)
    if not values:  # nothing to write: whether the run is there
        return (await session.execute(select(m.FlowRun.id).where(*where))).first() is not None
    statement = update(m.FlowRun).where(*where).values(values)
    result = await session.execute(statement.execution_options(synchronize_session=False))
    return bool(getattr(result, "rowcount", 0))


async def delete_flow_run(session: AsyncSession, principal: Principal, run_id: uuid.UUID) -> None:
    principal.require_api_key()
    run = await read_flow_run(session, principal, run_id, lock=True)
    if StateType(run.state_type) in ACTIVE_STATES:
        raise Forbidden(f"flow run {run_id} is {run.state_type}; cancel it before deleting")
    await session.delete(run)


async def state_history(
    session: AsyncSession, principal: Principal, run_id: uuid.UUID
) -> list[m.FlowRunState]:
    await read_flow_run(session, principal, run_id)
    query = (
        select(m.FlowRunState)
        .where(m.FlowRunState.flow_run_id == run_id)
        .order_by(m.FlowRunState.timestamp, m.FlowRunState.id)
    )
    return list((await session.execute(query)).scalars())
