"""``async with concurrency("name"):`` and ``await rate_limit("name")``: the same limits as
``flowyard.concurrency.sync``, waiting without blocking the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from flowyard.sdk import _concurrency as _c
from flowyard.sdk._concurrency import (
    AcquireConcurrencySlotTimeoutError,
    ConcurrencySlotAcquisitionError,
)

__all__ = [
    "AcquireConcurrencySlotTimeoutError",
    "ConcurrencySlotAcquisitionError",
    "concurrency",
    "rate_limit",
]


@asynccontextmanager
async def concurrency(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    max_retries: int | None = None,
    lease_duration: float = 300,
    strict: bool = False,
    holder: object = None,
) -> AsyncIterator[None]:
    """Hold ``occupy`` slots of each named limit for the duration of the ``async with``."""
    manager = _c.concurrency(
        names, occupy, timeout_seconds, max_retries, lease_duration, strict, holder
    )
    await asyncio.to_thread(manager.__enter__)  # the wait sleeps on a thread, not the loop
    try:
        yield
    except BaseException as exc:
        await asyncio.to_thread(manager.__exit__, type(exc), exc, exc.__traceback__)
        raise
    else:
        await asyncio.to_thread(manager.__exit__, None, None, None)


async def rate_limit(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    strict: bool = False,
) -> None:
    """Take ``occupy`` slots of each named limit and let their decay free them."""
    await asyncio.to_thread(_c.rate_limit, names, occupy, timeout_seconds, strict)
