"""The ASGI application: API, UI and the in-server services.

``create_app`` is pure wiring. Start-up connects the database, applies
migrations, makes sure a default workspace exists, and starts the services
(scheduler, managed dispatcher) as tasks that stop on shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from flowyard import ui
from flowyard._version import __version__
from flowyard.server import api
from flowyard.server.bootstrap import bootstrap
from flowyard.server.context import ServerContext
from flowyard.server.db import Database, check_connection, create_database
from flowyard.server.db.migrate import upgrade
from flowyard.server.keys import load_server_keys
from flowyard.server.services import default_services
from flowyard.settings import Settings

logger = logging.getLogger("flowyard.server")


def create_app(
    settings: Settings,
    *,
    context: ServerContext | None = None,
    database: Database | None = None,
) -> FastAPI:
    """Build the app.

    Pass ``context`` to reuse an existing database and keys (tests), or
    ``database`` for a database the caller has already checked and migrated
    (``flowyard server start``). Either way the caller disposes of it.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = context or ServerContext(
            settings=settings,
            db=database or create_database(settings.effective_database_url),
            keys=load_server_keys(settings),
            services=default_services(settings),
        )
        app.state.ctx = ctx
        if database is None:
            await check_connection(ctx.db)
            if await upgrade(ctx.db):
                logger.info("database migrated to the latest schema")
        await bootstrap(ctx)
        await ctx.start()
        try:
            yield
        finally:
            await ctx.stop()
            if context is None and database is None:
                await ctx.db.dispose()

    app = FastAPI(
        title="Flowyard",
        version=__version__,
        lifespan=lifespan,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    api.install(app, settings)
    ui.install(app, settings)
    return app
