"""Routes that load on the first request that reaches them, not at server start.

Importing a router module costs real start-up time: FastAPI builds every
route's validators as the module is imported (and again, per inclusion, on
the first request that is matched against them). A server used through a
few resources, or only through its API, need not pay for the others.

:class:`RoutesOnDemand` stands where a group of routers would be included.
The first request it covers makes it import the routers off the event loop,
include them in its own place, and hand the request back to the app's
router, which then routes it exactly as if they had been there from the
start; from then on it matches nothing. A placeholder covers either every
request that reaches it (the web UI, whose last route answers every path)
or the paths it is given, which are the routers' own.

Loading every router in the background after start was rejected: it would
take the same time from the first requests, and the memory anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

Routers = Callable[[], Sequence[APIRouter]]


def _segments(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split("/") if part)


class RoutesOnDemand(BaseRoute):
    """A placeholder that turns into ``routers()`` on the first request it covers.

    ``paths`` (after ``prefix``) are path prefixes by whole segments, where
    ``*`` stands for any one segment: ``/flow-runs/*/logs`` covers
    ``/flow-runs/1/logs`` and ``/flow-runs/1/logs/x``. ``None`` covers
    every path. ``include`` is passed on to ``include_router``.
    """

    def __init__(
        self,
        app: FastAPI,
        routers: Routers,
        *,
        prefix: str = "",
        paths: Sequence[str] | None = None,
        **include: Any,
    ) -> None:
        self._app = app
        self._routers = routers
        self._prefix = prefix
        self._include = include
        self._paths = None if paths is None else [_segments(prefix + p) for p in paths]
        self._lock: asyncio.Lock | None = None
        self.loaded = False

    def covers(self, path: str) -> bool:
        if self._paths is None:
            return True
        got = _segments(path)
        return any(
            len(got) >= len(want) and all(w in ("*", g) for w, g in zip(want, got, strict=False))
            for want in self._paths
        )

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self.loaded or scope["type"] != "http" or not self.covers(scope["path"]):
            return Match.NONE, {}
        return Match.FULL, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.load()
        # Route again from the top: the routers now stand where this placeholder is.
        await self._app.router(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        # Rare (nothing in Flowyard reverses URLs): load in place, so that the
        # router finds the name among the routes it visits next.
        self.load_now()
        raise NoMatchFound(name, path_params)

    async def load(self) -> None:
        """Import the routers (on a thread: other requests go on) and include them."""
        if self.loaded:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self.loaded:
                self._install(await asyncio.to_thread(self._routers))

    def load_now(self) -> None:
        """Import and include the routers now, on this thread (the OpenAPI document)."""
        if not self.loaded:
            self._install(self._routers())

    def _install(self, routers: Sequence[APIRouter]) -> None:
        if self.loaded:
            return
        routes = self._app.router.routes
        before = len(routes)
        for router in routers:
            self._app.include_router(router, prefix=self._prefix, **self._include)
        added = routes[before:]
        del routes[before:]
        at = routes.index(self) + 1
        routes[at:at] = added
        self.loaded = True
