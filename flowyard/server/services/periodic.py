"""The loop every in-server service runs: a pass, then sleep until the next tick or a wake-up.

A pass that raises is logged with its traceback and the loop carries on at
the next tick: one bad row or a database blip must not stop scheduling for
the life of the server. Cancellation (server shutdown) is never swallowed,
and the sleep is an ``Event.wait``, so a service stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

logger = logging.getLogger("flowyard.services")

# Services take their clock as a parameter, so tests move time instead of sleeping.
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Wakeup:
    """Wakes every loop subscribed to it (one per running server in this process)."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Event] = set()

    def subscribe(self) -> asyncio.Event:
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        return waiter

    def unsubscribe(self, waiter: asyncio.Event) -> None:
        self._waiters.discard(waiter)

    def wake(self) -> None:
        """Run the next pass now rather than at the next tick. Safe to call any time."""
        for waiter in list(self._waiters):
            waiter.set()


async def run_periodically(
    name: str,
    tick: Callable[[], Awaitable[object]],
    *,
    interval: float,
    wakeup: Wakeup | None = None,
) -> None:
    """Call ``tick`` now and then every ``interval`` seconds (sooner when woken), forever."""
    waiter = wakeup.subscribe() if wakeup is not None else asyncio.Event()
    try:
        while True:
            # Cleared before the pass: a wake-up during it triggers another pass.
            waiter.clear()
            try:
                await tick()
            except Exception:
                logger.exception("%s: pass failed; trying again in %g s", name, interval)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await waiter.wait()
    finally:
        if wakeup is not None:
            wakeup.unsubscribe(waiter)
