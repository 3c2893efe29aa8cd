"""``async with concurrency("name"):`` and ``await rate_limit("name")``: the same limits as
``flowyard.concurrency.sync``, waiting on the event loop (never on a thread, so a crowd of
waiters cannot hold the threads that the holders' releases need)."""

from __future__ import annotations

from flowyard.sdk._concurrency import (
    AcquireConcurrencySlotTimeoutError,
    ConcurrencySlotAcquisitionError,
)
from flowyard.sdk._concurrency import aconcurrency as concurrency
from flowyard.sdk._concurrency import arate_limit as rate_limit

__all__ = [
    "AcquireConcurrencySlotTimeoutError",
    "ConcurrencySlotAcquisitionError",
    "concurrency",
    "rate_limit",
]
