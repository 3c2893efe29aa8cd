"""What a running server holds: settings, database, services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from flowyard.server.db import Database
from flowyard.server.keys import ServerKeys
from flowyard.settings import Settings

logger = logging.getLogger("flowyard.server")

Service = Callable[["ServerContext"], Awaitable[None]]


@dataclass
class ServerContext:
    settings: Settings
    db: Database
    keys: ServerKeys
    services: list[Service] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        for service in self.services:
            self._tasks.append(asyncio.create_task(self._supervise(service)))

    async def _supervise(self, service: Service) -> None:
        name = getattr(service, "__name__", repr(service))
        try:
            await service(self)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("service %s stopped with an error", name)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
