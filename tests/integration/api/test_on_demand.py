"""The API's routers load on the first request under their paths, and answer as if always there."""

from __future__ import annotations

import importlib
import re
import uuid

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

from flowyard.server import api
from flowyard.server._on_demand import RoutesOnDemand
from flowyard.server.app import create_app
from flowyard.server.context import ServerContext
from flowyard.settings import Settings

NO_RUN = uuid.uuid4()
# Successes, refusals, unknown paths and methods, under every router.
REQUESTS: list[tuple[str, str, object]] = [
    ("GET", "/api/me", None),
    ("GET", "/api/work-pools", None),
    ("GET", "/api/work-pools/", None),
    ("PUT", "/api/work-pools", None),
    ("POST", "/api/work-pools", {"name": 3}),
    ("GET", "/api/deployments", None),
    ("GET", f"/api/flow-runs/{NO_RUN}", None),
    ("GET", f"/api/flow-runs/{NO_RUN}/logs", None),
    ("GET", f"/api/flow-runs/{NO_RUN}/task-runs", None),
    ("GET", f"/api/flow-runs/{NO_RUN}/no-such-thing", None),
    ("GET", f"/api/task-runs/{NO_RUN}", None),
    ("GET", "/api/variables/nope", None),
    ("DELETE", "/api/secrets/nope", None),
    ("GET", "/api/results/a/b", None),
    ("GET", "/api/usage/records", None),
    ("GET", "/api/no-such-resource", None),
    ("GET", "/api/health", None),
]


def _on_demand(app: FastAPI) -> list[RoutesOnDemand]:
    """The API's placeholders, in routing order (the UI's covers every path)."""
    return [
        r
        for r in app.router.routes
        if isinstance(r, RoutesOnDemand) and not r.covers("/no/such/page")
    ]


def _app(settings: Settings, ctx: ServerContext, *, up_front: bool) -> FastAPI:
    app = create_app(settings, context=ctx)
    app.state.ctx = ctx
    if up_front:
        for routes in _on_demand(app):
            routes.load_now()
    return app


async def _answers(app: FastAPI, key: str) -> list[tuple[int, str, str]]:
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {key}"}
    out = []
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for method, path, body in REQUESTS:
            r = await client.request(method, path, json=body, headers=headers)
            out.append((r.status_code, r.headers.get("location", ""), r.text))
    return out


def test_every_route_lies_under_the_paths_its_router_loads_for(
    ctx: ServerContext, settings: Settings
) -> None:
    placeholders = _on_demand(create_app(settings, context=ctx))
    assert len(placeholders) == len(api.ROUTERS)
    for (module, _), placeholder in zip(api.ROUTERS, placeholders, strict=True):
        router = importlib.import_module(f"flowyard.server.api.{module}").router
        for route in router.routes:
            assert isinstance(route, APIRoute)
            example = "/api" + re.sub(r"\{[^}]+\}", "x", route.path)
            assert placeholder.covers(example), f"{module}: {route.path} is not under its paths"


async def test_a_request_loads_only_the_routers_it_reaches(
    ctx: ServerContext, settings: Settings, admin_key: str
) -> None:
    app = _app(settings, ctx, up_front=False)
    loaded = dict(zip((m for m, _ in api.ROUTERS), _on_demand(app), strict=True))
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/api/health")).status_code == 200
        assert not any(r.loaded for r in loaded.values())
        assert (await client.get("/api/work-pools", headers=headers)).status_code == 200
        assert [m for m, r in loaded.items() if r.loaded] == ["work_pools"]
        r = await client.get(f"/api/flow-runs/{NO_RUN}/logs", headers=headers)
        assert r.status_code == 404
    # Under /flow-runs the runs' router is tried first, then the logs'.
    assert [m for m, r in loaded.items() if r.loaded] == ["work_pools", "flow_runs", "logs"]


async def test_routers_loaded_on_demand_answer_as_routers_loaded_up_front(
    ctx: ServerContext, settings: Settings, admin_key: str
) -> None:
    on_demand = await _answers(_app(settings, ctx, up_front=False), admin_key)
    up_front = await _answers(_app(settings, ctx, up_front=True), admin_key)
    assert on_demand == up_front
    statuses = dict(
        zip((f"{m} {p}" for m, p, _ in REQUESTS), (a[0] for a in on_demand), strict=True)
    )
    assert statuses["GET /api/work-pools"] == 200
    assert statuses["POST /api/work-pools"] == 422
    assert statuses["PUT /api/work-pools"] == 405
    assert statuses[f"GET /api/flow-runs/{NO_RUN}/logs"] == 404
    assert statuses["GET /api/no-such-resource"] == 404


def test_the_openapi_document_lists_every_route_before_any_is_used(
    ctx: ServerContext, settings: Settings
) -> None:
    fresh = _app(settings, ctx, up_front=False).openapi()
    loaded = _app(settings, ctx, up_front=True).openapi()
    assert fresh == loaded
    assert "/api/flow-runs/{run_id}/logs" in fresh["paths"]
    assert "/api/results/{key}" in fresh["paths"]
