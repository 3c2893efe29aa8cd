"""``flowyard.runtime``: facts about the current run, read as attributes.

``from flowyard.runtime import flow_run, task_run, deployment`` then
``flow_run.id``, ``flow_run.parameters``, ``deployment.name``... Outside a run
the values are None (or empty), as in Prefect. Any attribute can be forced
with an environment variable ``FLOWYARD__RUNTIME__<OBJECT>__<ATTRIBUTE>``
(for example ``FLOWYARD__RUNTIME__FLOW_RUN__NAME``), which is how tests and
runners fake a context.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from flowyard.sdk._context import FlowRunContext, flow_run_context, task_run_context
from flowyard.sdk._runs import FlowRun

__all__ = ["deployment", "flow_run", "task_run"]


def _override(kind: str, attribute: str) -> str | None:
    return os.environ.get(f"FLOWYARD__RUNTIME__{kind.upper()}__{attribute.upper()}")


def _flow_context() -> FlowRunContext | None:
    ctx = flow_run_context.get()
    if ctx is None:
        task_ctx = task_run_context.get()
        if task_ctx is not None:
            return task_ctx.flow_run_context
    return ctx


def _current_flow_run() -> FlowRun | None:
    ctx = _flow_context()
    return ctx.flow_run if ctx is not None else None


class _FlowRunFacts:
    """The current flow run."""

    @property
    def id(self) -> str | None:
        run = _current_flow_run()
        return _override("flow_run", "id") or (str(run.id) if run else None)

    @property
    def name(self) -> str | None:
        run = _current_flow_run()
        return _override("flow_run", "name") or (run.name if run else None)

    @property
    def flow_name(self) -> str | None:
        run = _current_flow_run()
        return _override("flow_run", "flow_name") or (run.flow_name if run else None)

    @property
    def flow_version(self) -> str | None:
        run = _current_flow_run()
        return _override("flow_run", "flow_version") or (run.flow_version if run else None)

    @property
    def parameters(self) -> dict[str, object]:
        ctx = _flow_context()
        return dict(ctx.parameters) if ctx is not None else {}

    @property
    def tags(self) -> list[str]:
        run = _current_flow_run()
        return sorted(run.tags) if run else []

    @property
    def run_count(self) -> int:
        run = _current_flow_run()
        return run.run_count if run else 0

    @property
    def scheduled_start_time(self) -> datetime:
        run = _current_flow_run()
        if run is None:
            return datetime.now(UTC)
        return run.scheduled_start_time or run.start_time or run.state.timestamp

    @property
    def parent_flow_run_id(self) -> str | None:
        run = _current_flow_run()
        return str(run.parent_flow_run_id) if run and run.parent_flow_run_id else None

    @property
    def parent_task_run_id(self) -> str | None:
        run = _current_flow_run()
        return str(run.parent_task_run_id) if run and run.parent_task_run_id else None

    @property
    def api_url(self) -> str | None:
        return os.environ.get("FLOWYARD_API_URL") or None


class _TaskRunFacts:
    """The current task run."""

    @property
    def id(self) -> str | None:
        ctx = task_run_context.get()
        return _override("task_run", "id") or (str(ctx.task_run.id) if ctx else None)

    @property
    def name(self) -> str | None:
        ctx = task_run_context.get()
        return _override("task_run", "name") or (ctx.task_run.name if ctx else None)

    @property
    def task_name(self) -> str | None:
        ctx = task_run_context.get()
        return _override("task_run", "task_name") or (ctx.task_run.task_name if ctx else None)

    @property
    def parameters(self) -> dict[str, object]:
        ctx = task_run_context.get()
        return dict(ctx.parameters) if ctx else {}

    @property
    def tags(self) -> list[str]:
        ctx = task_run_context.get()
        return sorted(ctx.task_run.tags) if ctx else []

    @property
    def run_count(self) -> int:
        ctx = task_run_context.get()
        return ctx.task_run.run_count if ctx else 0


class _DeploymentFacts:
    """The deployment the current flow run belongs to, if any."""

    @property
    def id(self) -> str | None:
        run = _current_flow_run()
        value = run.deployment_id if run else None
        return _override("deployment", "id") or (str(value) if value else None)

    @property
    def name(self) -> str | None:
        run = _current_flow_run()
        return _override("deployment", "name") or (run.deployment_name if run else None)

    @property
    def flow_run_id(self) -> str | None:
        run = _current_flow_run()
        return str(run.id) if run and run.deployment_id else None

    @property
    def parameters(self) -> dict[str, object]:
        run = _current_flow_run()
        return dict(run.parameters) if run and run.deployment_id else {}


flow_run = _FlowRunFacts()
task_run = _TaskRunFacts()
deployment = _DeploymentFacts()
