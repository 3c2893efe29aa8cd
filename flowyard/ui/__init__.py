"""The web UI: server-rendered pages (Jinja2 + htmx), served by the API server at ``/``.

Pages call ``flowyard.server.ops`` directly, in the same process and with
the same rules as the HTTP API; they are not a client of it. The browser
signs in with an API key (kept only inside an encrypted, HttpOnly cookie),
every form carries a CSRF token, and live logs arrive over Server-Sent
Events. The only JavaScript is htmx, its SSE extension (vendored, no build
step) and a small script for log scrolling.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from flowyard.settings import Settings

STATIC = Path(__file__).parent / "static"

__all__ = ["install"]


def install(app: FastAPI, settings: Settings) -> None:
    """Mount the pages at ``/`` and their assets at ``/static``; call after the API.

    The pages themselves load on the first request that reaches them (see
    ``flowyard.ui._on_demand``), so a server used only through the API never
    pays for them.
    """
    from flowyard.ui._on_demand import PagesOnDemand

    del settings  # the UI reads the running server's settings from its context
    app.mount("/static", StaticFiles(directory=STATIC), name="ui-static")
    app.router.routes.append(PagesOnDemand(app))
