"""Work pools: list, detail (policy, concurrency, the queue and why it waits), create, pause."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import ValidationError

from flowyard.schemas import flow_runs as fr
from flowyard.schemas import work_pools as s
from flowyard.schemas.states import ACTIVE_STATES, StateType
from flowyard.server.db import models as m
from flowyard.server.ops import deployments, flow_run_queries, work_pools
from flowyard.server.ops.errors import Conflict, DomainError
from flowyard.ui import _pages as pages
from flowyard.ui._formatting import ago, duration, now
from flowyard.ui.views.forms import number_or_none, pydantic_errors

router = APIRouter(route_class=pages.UiRoute, include_in_schema=False)

QUEUE = 50
POLICY_FIELDS = (
    ("cpu", "CPU (vCPU)", "cpu"),
    ("memory_gib", "Memory (GiB)", "memory_gib"),
    ("storage_gib", "Storage (GiB)", "storage_gib"),
    ("max_run_hours", "Maximum run time (hours)", "max_run_seconds"),
)


@dataclass(frozen=True)
class PolicyRow:
    label: str
    value: str


def policy_of(pool: m.WorkPool) -> list[PolicyRow]:
    """The ceilings a managed pool's template enforces (its maxima)."""
    props = work_pools.variables_schema(pool).get("properties", {})
    rows = []
    for key, label, fmt in (
        ("cpu", "CPU", "{:g} vCPU"),
        ("memory_gib", "Memory", "{:g} GiB"),
        ("storage_gib", "Storage", "{:g} GiB"),
        ("max_run_seconds", "Maximum run time", "duration"),
    ):
        spec = props.get(key)
        if not isinstance(spec, dict) or "maximum" not in spec:
            continue
        top = spec["maximum"]
        rows.append(
            PolicyRow(label, duration(float(top)) if fmt == "duration" else fmt.format(top))
        )
    if "network" in props:
        rows.append(PolicyRow("Network", str(props["network"].get("default", "none"))))
    return rows


def waiting_reason(run: fr.FlowRun, pool: m.WorkPool, reference: datetime) -> str:
    """Why a SCHEDULED run of the pool has not started, in words."""
    start = run.expected_start_time or run.next_scheduled_start_time
    if run.state_message and run.state_name != "Scheduled":
        return run.state_message
    if start is not None and start > reference:
        return f"scheduled to start {ago(start, reference)}"
    if pool.paused:
        return "the work pool is paused; it starts when the pool is resumed"
    if run.state_name == "Late":
        return f"late: due {ago(start, reference)} and not picked up yet"
    if pool.type == s.WorkPoolType.PROCESS.value:
        return "due; waiting for a worker of this pool to pick it up"
    return "due; waiting for the server's dispatcher to start it"


@router.get("/work-pools")
async def pools_page(view: pages.View) -> Response:
    async with view.scope() as scope:
        pools = await work_pools.list_work_pools(scope.session, scope.principal)
    return view.render(
        "work_pools.html",
        scope,
        active="pools",
        title="Work pools",
        pools=[(p, policy_of(p)) for p in pools],
    )


def _form_page(
    view: pages.View,
    scope: pages.Scope,
    values: dict[str, str],
    errors: dict[str, str],
    status: int,
) -> Response:
    return view.render(
        "work_pool_new.html",
        scope,
        status=status,
        active="pools",
        title="Create a work pool",
        values=values,
        errors=errors,
        policy_fields=POLICY_FIELDS,
        defaults=s.DEFAULT_POLICY,
    )


@router.get("/new/work-pool")
async def new_pool_page(view: pages.View) -> Response:
    async with view.scope() as scope:
        pass
    return _form_page(view, scope, {"type": "managed"}, {}, 200)


def _policy(values: dict[str, str], errors: dict[str, str]) -> dict[str, Any]:
    policy: dict[str, Any] = {}
    for field, _, key in POLICY_FIELDS:
        try:
            number = number_or_none(values.get(field, ""))
        except ValueError as exc:
            errors[field] = str(exc)
            continue
        if number is None:
            continue
        if number <= 0:
            errors[field] = "must be greater than 0"
            continue
        policy[key] = int(number * 3600) if field == "max_run_hours" else number
    return policy


@router.post("/work-pools")
async def create_pool(view: pages.View) -> Response:
    form = await view.form()
    names = ("name", "type", "description", "concurrency_limit", *(f for f, _, _ in POLICY_FIELDS))
    values = {k: form.get(k).strip() for k in names}
    errors: dict[str, str] = {}
    data: s.WorkPoolCreate | None = None
    policy = _policy(values, errors)
    limit: float | int | None = None
    try:
        limit = number_or_none(values["concurrency_limit"], whole=True)
    except ValueError as exc:
        errors["concurrency_limit"] = str(exc)
    fields: dict[str, Any] = {
        "name": values["name"],
        "type": values["type"] or "managed",
        "description": values["description"],
        "concurrency_limit": limit,
    }
    try:
        if policy and fields["type"] == "managed":
            fields["base_job_template"] = s.managed_base_job_template(policy)
        data = s.WorkPoolCreate.model_validate(fields)
    except ValidationError as exc:  # every field's problem at once, not the first only
        errors.update({k: v for k, v in pydantic_errors(exc, NAME_HELP).items() if k not in errors})
    if data is not None and not errors:
        try:
            async with view.scope() as scope:
                pool = await work_pools.create_work_pool(scope.session, scope.principal, data)
        except Conflict:
            errors["name"] = f"a work pool named {data.name!r} already exists"
        except DomainError as exc:
            if exc.status_code == 404:
                raise
            errors["name" if "name" in str(exc) else "form"] = str(exc)
        else:
            view.notify("ok", f"Created work pool {pool.name}.")
            return view.redirect(f"/work-pools/{pool.name}")
    async with view.scope() as scope:
        pass
    return _form_page(view, scope, values, errors, 422)


NAME_HELP = {"name": "use letters, digits, '.', '_' or '-' (starting with a letter or digit)"}


@router.get("/work-pools/{name}")
async def pool_page(view: pages.View, name: str) -> Response:
    reference = now()
    async with view.scope() as scope:
        pool = await work_pools.read_work_pool(scope.session, scope.principal, name)
        session, principal = scope.session, scope.principal
        waiting, more_waiting = await flow_run_queries.list_flow_runs(
            session,
            principal,
            flow_run_queries.FlowRunFilter(states=[StateType.SCHEDULED], work_pool_id=pool.id),
            sort="expected_start_asc",
            limit=QUEUE,
        )
        queue = await flow_run_queries.describe(session, waiting)
        by_state = await flow_run_queries.count_by_state(session, principal, work_pool_id=pool.id)
        pool_deployments = await deployments.list_deployments(
            session, principal, work_pool_id=pool.id
        )
    return view.render(
        "work_pool.html",
        scope,
        active="pools",
        title=f"{pool.name} · work pool",
        pool=pool,
        policy=policy_of(pool),
        queue=[(run, waiting_reason(run, pool, reference)) for run in queue],
        more_waiting=more_waiting is not None,
        occupied=sum(by_state.get(state, 0) for state in ACTIVE_STATES),
        waiting_total=by_state.get(StateType.SCHEDULED, 0),
        deployments=pool_deployments,
        reference=reference,
    )


async def _set_paused(view: pages.View, name: str, paused: bool) -> Response:
    await view.form()
    try:
        async with view.scope() as scope:
            await work_pools.update_work_pool(
                scope.session, scope.principal, name, s.WorkPoolUpdate(paused=paused)
            )
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        view.notify("error", str(exc))
    else:
        view.notify("ok", f"Work pool {name} is {'paused' if paused else 'running again'}.")
    return view.redirect(f"/work-pools/{name}")


@router.post("/work-pools/{name}/pause")
async def pause_pool(view: pages.View, name: str) -> Response:
    return await _set_paused(view, name, True)


@router.post("/work-pools/{name}/resume")
async def resume_pool(view: pages.View, name: str) -> Response:
    return await _set_paused(view, name, False)
