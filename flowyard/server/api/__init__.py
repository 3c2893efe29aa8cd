"""HTTP API: one router per resource, errors mapped to HTTP in one place."""

from __future__ import annotations

from fastapi import FastAPI

from flowyard.server.api import (
    deployments,
    errors,
    flow_runs,
    health,
    logs,
    results,
    secrets,
    task_runs,
    variables,
    work_pools,
    workspaces,
)
from flowyard.server.api.limits import BodySizeLimit
from flowyard.settings import Settings

# Every router but health's authenticates its callers.
ROUTERS = (
    workspaces.router,
    work_pools.router,
    deployments.router,
    flow_runs.router,
    task_runs.router,
    logs.router,
    variables.router,
    secrets.router,
    results.router,
)


def install(app: FastAPI, settings: Settings) -> None:
    errors.install(app)
    app.include_router(health.router, prefix="/api")
    for router in ROUTERS:
        app.include_router(router, prefix="/api", responses=errors.RESPONSES)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
