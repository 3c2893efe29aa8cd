"""The web UI: server-rendered pages (Jinja2 + htmx), served by the API server at ``/``.

Pages call ``flowyard.server.ops`` directly, in the same process and with
the same rules as the HTTP API; they are not a client of it. The browser
signs in with an API key (kept only inside an encrypted, HttpOnly cookie),
every form carries a CSRF token, and live logs arrive over Server-Sent
Events. The only JavaScript is htmx, its SSE extension (vendored, no build
step) and a small script for log scrolling.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from flowyard.settings import Settings

STATIC = Path(__file__).parent / "static"

__all__ = ["install"]


def install(app: FastAPI, settings: Settings) -> None:
    """Mount the pages at ``/`` and their assets at ``/static``; call after the API.

    The pages load on the first request that reaches them (see
    ``flowyard.server._on_demand``): the views pull in Jinja2, the session
    cipher and a few dozen routes, a tenth of the server's start-up and over
    10 MiB that a server used only through its API never needs. The first
    page pays for it once (about 0.2 s).
    """
    from flowyard.server._on_demand import RoutesOnDemand

    del settings  # the UI reads the running server's settings from its context
    app.mount("/static", StaticFiles(directory=STATIC), name="ui-static")
    # No paths: the last of the pages answers every path nothing else claimed.
    app.router.routes.append(RoutesOnDemand(app, _view_routers))


def _view_routers() -> Sequence[APIRouter]:
    views = importlib.import_module("flowyard.ui.views")
    routers: Sequence[APIRouter] = views.ROUTERS
    return routers
