"""Global concurrency limits in flow code, where Prefect keeps them:
``from flowyard.concurrency.sync import concurrency, rate_limit`` and the async forms in
``flowyard.concurrency.asyncio``."""

from __future__ import annotations

from flowyard.sdk._concurrency import (
    AcquireConcurrencySlotTimeoutError,
    ConcurrencySlotAcquisitionError,
)

__all__ = ["AcquireConcurrencySlotTimeoutError", "ConcurrencySlotAcquisitionError"]
