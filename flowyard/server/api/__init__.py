"""HTTP API: one router per resource, errors mapped to HTTP in one place.

Each resource's router loads on the first request under its paths (see
``flowyard.server._on_demand``); health's is always there.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from functools import partial
from typing import Any

from fastapi import APIRouter, FastAPI

from flowyard.server._on_demand import RoutesOnDemand
from flowyard.server.api import errors, health
from flowyard.server.api.limits import BodySizeLimit
from flowyard.settings import Settings

# Every router but health's authenticates its callers. In routing order: each
# module's router and the paths (under /api) its routes live at; a test holds
# every route to them.
ROUTERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("workspaces", ("/me", "/workspaces", "/api-keys", "/usage")),
    ("work_pools", ("/work-pools",)),
    ("deployments", ("/deployments",)),
    ("flow_runs", ("/flow-runs",)),
    ("task_runs", ("/task-runs", "/flow-runs/*/task-runs")),
    ("logs", ("/logs", "/flow-runs/*/logs")),
    ("variables", ("/variables",)),
    ("secrets", ("/secrets",)),
    ("results", ("/results",)),
    ("artifacts", ("/artifacts",)),
    ("concurrency", ("/concurrency-limits",)),
)


def router_of(module: str) -> Sequence[APIRouter]:
    """Import ``flowyard.server.api.<module>`` and return its router."""
    router: APIRouter = importlib.import_module(f"{__name__}.{module}").router
    return (router,)


def install(app: FastAPI, settings: Settings) -> None:
    errors.install(app)
    app.include_router(health.router, prefix="/api")
    on_demand = [
        RoutesOnDemand(
            app, partial(router_of, module), prefix="/api", paths=paths, responses=errors.RESPONSES
        )
        for module, paths in ROUTERS
    ]
    app.router.routes.extend(on_demand)
    document = app.openapi

    def openapi() -> dict[str, Any]:
        for routes in on_demand:  # the document describes every route
            routes.load_now()
        return document()

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
