"""``with concurrency("name", occupy=1):`` and ``rate_limit("name")`` for synchronous code."""

from __future__ import annotations

from flowyard.sdk._concurrency import (
    AcquireConcurrencySlotTimeoutError,
    ConcurrencySlotAcquisitionError,
    concurrency,
    rate_limit,
)

__all__ = [
    "AcquireConcurrencySlotTimeoutError",
    "ConcurrencySlotAcquisitionError",
    "concurrency",
    "rate_limit",
]
