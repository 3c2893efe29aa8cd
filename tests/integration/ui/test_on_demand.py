"""Pages load on first use, and then answer exactly as pages installed at start would."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from flowyard.server._on_demand import RoutesOnDemand
from flowyard.server.app import create_app
from flowyard.server.context import ServerContext
from flowyard.settings import Settings
from flowyard.ui import views

# Pages, the API, and what neither has: every way a request can fall through.
REQUESTS = [
    ("GET", "/"),
    ("GET", "/sign-in"),
    ("GET", "/runs"),
    ("GET", "/no/such/page"),
    ("POST", "/no/such/page"),
    ("GET", "/api"),
    ("GET", "/api/no-such-resource"),
    ("DELETE", "/api/no-such-resource"),
    ("POST", "/api/health"),
    ("GET", "/api/health"),
    ("GET", "/api/work-pools/"),
    ("GET", "/static/no-such-file.css"),
]


def _placeholder(app: FastAPI) -> RoutesOnDemand:
    """The pages' placeholder: the one that covers every path (the API's cover theirs)."""
    found = [
        r for r in app.router.routes if isinstance(r, RoutesOnDemand) and r.covers("/no/such/page")
    ]
    assert len(found) == 1
    return found[0]


def _eager_app(settings: Settings, ctx: ServerContext) -> FastAPI:
    """The same app with the page routes installed up front, as before they loaded on demand."""
    app = create_app(settings, context=ctx)
    routes = app.router.routes
    routes.remove(_placeholder(app))
    for router in views.ROUTERS:
        app.include_router(router)
    app.state.ctx = ctx
    return app


async def _answers(app: FastAPI, key: str | None) -> list[tuple[int, str, str, str]]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = httpx.ASGITransport(app=app)
    out = []
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for method, path in REQUESTS:
            r = await client.request(method, path, headers=headers)
            out.append(
                (
                    r.status_code,
                    r.headers.get("allow", ""),
                    r.headers.get("location", ""),
                    r.text if "csrf" not in r.text else "",  # sign-in forms carry fresh tokens
                )
            )
    return out


async def test_pages_load_on_the_first_request_that_reaches_them_and_answer_as_before(
    ctx: ServerContext, settings: Settings, admin_key: str
) -> None:
    app = create_app(settings, context=ctx)
    app.state.ctx = ctx
    pages = _placeholder(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/api/health")).status_code == 200
        assert not pages.loaded, "an API request must not load the pages"
        assert (await client.get("/sign-in")).status_code == 200
        assert pages.loaded

    fresh = create_app(settings, context=ctx)
    fresh.state.ctx = ctx
    lazy = await _answers(fresh, admin_key)
    eager = await _answers(_eager_app(settings, ctx), admin_key)
    assert lazy == eager
    # A page sends the key-only caller to sign in; unknown paths under /api stay JSON.
    assert lazy[0][:3] == (303, "", "/sign-in")
    assert lazy[4][0] == 405
    assert lazy[6] == (404, "", "", '{"detail":"Not Found"}')


async def test_concurrent_first_requests_install_the_pages_once(
    ctx: ServerContext, settings: Settings
) -> None:
    app = create_app(settings, context=ctx)
    app.state.ctx = ctx
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answers = await asyncio.gather(*(client.get("/sign-in") for _ in range(5)))
    assert [r.status_code for r in answers] == [200] * 5
    included = [getattr(r, "original_router", None) for r in app.router.routes]
    assert [r for r in included if r in views.ROUTERS] == list(views.ROUTERS)


async def test_the_openapi_document_is_unchanged_by_pages_loading_on_demand(
    ctx: ServerContext, settings: Settings
) -> None:
    lazy = create_app(settings, context=ctx)
    eager = _eager_app(settings, ctx)
    assert lazy.openapi() == eager.openapi()
    assert not _placeholder(lazy).loaded
