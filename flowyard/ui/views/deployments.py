"""Deployments: the list, one deployment, and its Run form."""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from flowyard.schemas import flow_runs as fr
from flowyard.server.db import models as m
from flowyard.server.ops import deployments, flow_run_queries, flow_runs, work_pools
from flowyard.server.ops.errors import InvalidInput, NotFound
from flowyard.ui import _pages as pages
from flowyard.ui import _run_form as run_form
from flowyard.ui._formatting import duration, now

router = APIRouter(route_class=pages.UiRoute, include_in_schema=False)

PAGE = 100
RECENT_RUNS = 10
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def redact_url(url: str) -> str:
    """Never show credentials embedded in a source URL."""
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}***@", url)


def describe_schedule(schedule: dict[str, Any]) -> str:
    tz = schedule.get("timezone") or "UTC"
    if "cron" in schedule:
        return f"cron {schedule['cron']} ({tz})"
    if "interval" in schedule:
        return f"every {duration(float(schedule['interval']))}"
    if "rrule" in schedule:
        return f"rrule {schedule['rrule']} ({tz})"
    return "unknown schedule"


def describe_source(source: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows for a deployment's source."""
    kind = source.get("kind")
    if kind == "git":
        rows = [("Git repository", redact_url(str(source.get("url", ""))))]
        for key, label in (("branch", "Branch"), ("tag", "Tag"), ("commit", "Commit")):
            if source.get(key):
                rows.append((label, str(source[key])))
        if source.get("directory"):
            rows.append(("Directory", str(source["directory"])))
        if source.get("credentials_secret"):
            rows.append(("Credentials secret", str(source["credentials_secret"])))
        return rows
    if kind == "storage":
        return [("Storage URL", redact_url(str(source.get("url", ""))))]
    if kind == "local":
        return [("Local path", str(source.get("path", "")))]
    return [("Source", "none (code is not pulled by the platform)")]


async def _pool_names(scope: pages.Scope) -> dict[uuid.UUID, str]:
    return {p.id: p.name for p in await work_pools.list_work_pools(scope.session, scope.principal)}


@router.get("/deployments")
async def deployments_page(view: pages.View, page: str = "") -> Response:
    number = int(page) if page.isdigit() and 0 < int(page) < 100_000 else 1
    async with view.scope() as scope:
        rows = await deployments.list_deployments(
            scope.session, scope.principal, limit=PAGE + 1, offset=(number - 1) * PAGE
        )
        pools = await _pool_names(scope)
    return view.render(
        "deployments.html",
        scope,
        active="deployments",
        title="Deployments",
        deployments=rows[:PAGE],
        pools=pools,
        page=number,
        has_next=len(rows) > PAGE,
    )


async def _deployment_context(scope: pages.Scope, deployment_id: uuid.UUID) -> dict[str, Any]:
    row = await deployments.read_deployment(scope.session, scope.principal, deployment_id)
    pool: m.WorkPool | None = None
    if row.work_pool_id is not None:
        try:
            pool = await work_pools.read_work_pool_by_id(
                scope.session, scope.principal.workspace_id, row.work_pool_id
            )
        except NotFound:
            pool = None
    return {"deployment": row, "pool": pool}


@router.get("/deployments/{deployment_id}")
async def deployment_page(view: pages.View, deployment_id: uuid.UUID) -> Response:
    async with view.scope() as scope:
        context = await _deployment_context(scope, deployment_id)
        row = context["deployment"]
        schedules = await deployments.schedules_of(scope.session, row.id)
        warnings = await deployments.warnings_for(scope.session, row)
        runs, _ = await flow_run_queries.list_flow_runs(
            scope.session,
            scope.principal,
            flow_run_queries.FlowRunFilter(deployment_id=row.id),
            limit=RECENT_RUNS,
        )
        recent = await flow_run_queries.describe(scope.session, runs)
    return view.render(
        "deployment.html",
        scope,
        active="deployments",
        title=f"{row.flow_name}/{row.name}",
        schedules=[(describe_schedule(s.schedule), s) for s in schedules],
        warnings=warnings,
        source_rows=describe_source(row.source),
        recent=recent,
        reference=now(),
        **context,
    )


def _run_form_page(
    view: pages.View,
    scope: pages.Scope,
    context: dict[str, Any],
    *,
    submitted: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    job_variables: str = "",
    run_name: str = "",
    general_error: str = "",
    status: int = 200,
) -> Response:
    row = context["deployment"]
    fields = run_form.build_fields(row.parameter_schema or {}, row.parameters, submitted, errors)
    return view.render(
        "run_form.html",
        scope,
        status=status,
        active="deployments",
        title=f"Run {row.flow_name}/{row.name}",
        fields=fields,
        job_variables=job_variables,
        job_variables_error=(errors or {}).get("job_variables", ""),
        run_name=run_name,
        general_error=general_error,
        **context,
    )


@router.get("/deployments/{deployment_id}/run")
async def run_form_page(view: pages.View, deployment_id: uuid.UUID) -> Response:
    async with view.scope() as scope:
        context = await _deployment_context(scope, deployment_id)
    return _run_form_page(view, scope, context)


@router.post("/deployments/{deployment_id}/run")
async def start_run(view: pages.View, deployment_id: uuid.UUID) -> Response:
    form = await view.form()
    async with view.scope() as scope:
        context = await _deployment_context(scope, deployment_id)
    row = context["deployment"]
    fields = run_form.build_fields(row.parameter_schema or {}, row.parameters)
    submitted = {f.name: form.get("param:" + f.name) for f in fields}
    parameters, errors = run_form.read_parameters(fields, submitted)
    job_text, run_name = form.get("job_variables"), form.get("run_name").strip()
    try:
        job_variables = run_form.read_json_object(job_text)
    except ValueError as exc:
        errors["job_variables"] = str(exc)
        job_variables = {}
    if len(run_name) > 200:
        errors["run_name"] = "at most 200 characters"
    if errors:
        general = errors.pop("run_name", "")
        return _run_form_page(
            view, scope, context, errors=errors, general_error=general and f"Run name: {general}",
            status=422, submitted=submitted, job_variables=job_text, run_name=run_name,
        )  # fmt: skip
    data = fr.FlowRunCreate(
        parameters=parameters, job_variables=job_variables, name=run_name or None
    )
    try:
        async with view.scope() as scope:
            run, _ = await flow_runs.create_flow_run(scope.session, scope.principal, row.id, data)
    except InvalidInput as exc:
        name, prefix = run_form.field_of_error(exc.field, {f.name for f in fields})
        field_errors = {name: prefix + exc.detail} if name else {}
        general = "" if name else f"{prefix}{exc.detail}"
        return _run_form_page(
            view, scope, context, errors=field_errors, general_error=general, status=422,
            submitted=submitted, job_variables=job_text, run_name=run_name,
        )  # fmt: skip
    view.notify("ok", f"Started run {run.name}.")
    return view.redirect(f"/runs/{run.id}")
