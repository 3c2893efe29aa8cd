"""Long-running loops inside the server: scheduler, late and lost runs, the managed dispatcher.

Each service is an ``async def service(ctx)`` that runs until cancelled;
:func:`default_services` is the list ``flowyard server start`` runs.
"""

from __future__ import annotations

from flowyard.server.context import ServerContext, Service
from flowyard.server.services.late_runs import late_runs_service
from flowyard.server.services.lost_runs import lost_runs_service
from flowyard.server.services.scheduler import fill_policy, scheduler_service, wake_scheduler
from flowyard.settings import Settings

__all__ = [
    "default_services",
    "late_runs_service",
    "lost_runs_service",
    "scheduler_service",
    "wake_scheduler",
]


def default_services(settings: Settings) -> list[Service]:
    """The services a server runs with these settings.

    Raises ConfigurationError for inconsistent scheduler settings, so a bad
    value stops start-up with one clear line instead of a silent service.
    """
    services: list[Service] = []
    if settings.scheduler:
        fill_policy(settings)  # validate now, not in a background task
        services += [scheduler_service, late_runs_service, lost_runs_service]
    if settings.dispatcher:
        services.append(dispatcher_service)
    return services


# How long the dispatcher lets a starting server have the CPU before loading the
# execution plane (sandboxes, environments, egress proxy). Its loading thread
# holds the interpreter lock in turns with the event loop, so loading at once
# delayed the server's first answers; a run that changes meanwhile ends the wait.
DISPATCHER_START_DELAY = 0.5


async def dispatcher_service(ctx: ServerContext) -> None:
    """The managed dispatcher, loaded once the server answers, on a thread so it goes on answering.

    A run created before the delay is up starts the loading at once (the
    in-process "runs changed" signal), so it is not held back.
    """
    import asyncio
    import contextlib
    import importlib

    from flowyard.server import signals

    changed = signals.subscribe()
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DISPATCHER_START_DELAY):
                await changed.wait()
    finally:
        signals.unsubscribe(changed)
    module = await asyncio.to_thread(importlib.import_module, "flowyard.server.services.dispatcher")
    await module.dispatcher_service(ctx)
