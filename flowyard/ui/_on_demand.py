"""The pages load on the first request that reaches them, not at server start.

The views pull in Jinja2, the session cipher (``cryptography``) and a few
dozen routes: a tenth of the server's start-up time and over 10 MiB that a
server used only through its API or CLI never needs. :class:`PagesOnDemand`
stands where the page routes go (after the API). The first request that no
earlier route fully matches makes it import the views off the event loop,
put their routes in its own place, and hand the request back to the router,
which then routes it exactly as if the pages had been there from the start.
Loading the views in the background after start was rejected: it would cost
the memory anyway. The price is paid once, by the first page (about 0.2 s).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send


def _view_routers() -> Sequence[APIRouter]:
    views = importlib.import_module("flowyard.ui.views")
    routers: Sequence[APIRouter] = views.ROUTERS
    return routers


class PagesOnDemand(BaseRoute):
    """A placeholder route that turns into the UI's routes on first use."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._lock: asyncio.Lock | None = None
        self.loaded = False

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # Whatever reaches this point would have been tried against the pages.
        if self.loaded or scope["type"] != "http":
            return Match.NONE, {}
        return Match.FULL, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.load()
        # Route again from the top: the pages now stand where this placeholder is.
        await self._app.router(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        # Rare (nothing in Flowyard reverses page URLs); load in place so the router
        # finds the name among the pages it visits next.
        if not self.loaded:
            self._install(_view_routers())
        raise NoMatchFound(name, path_params)

    async def load(self) -> None:
        """Import the views (on a thread: other requests go on) and install their routes."""
        if self.loaded:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self.loaded:
                self._install(await asyncio.to_thread(_view_routers))

    def _install(self, routers: Sequence[APIRouter]) -> None:
        routes = self._app.router.routes
        before = len(routes)
        for router in routers:
            self._app.include_router(router)
        added = routes[before:]
        del routes[before:]
        at = routes.index(self) + 1
        routes[at:at] = added
        self.loaded = True
