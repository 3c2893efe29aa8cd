"""Futures of submitted task runs (``from flowyard.futures import wait``)."""

from __future__ import annotations

from flowyard.sdk import (
    DoneAndNotDoneFutures,
    FlowyardConcurrentFuture,
    FlowyardFuture,
    FlowyardFutureList,
    PrefectFuture,
    as_completed,
    resolve_futures_to_states,
    wait,
)

PrefectConcurrentFuture = FlowyardConcurrentFuture
PrefectFutureList = FlowyardFutureList

__all__ = [
    "DoneAndNotDoneFutures",
    "FlowyardConcurrentFuture",
    "FlowyardFuture",
    "FlowyardFutureList",
    "PrefectConcurrentFuture",
    "PrefectFuture",
    "PrefectFutureList",
    "as_completed",
    "resolve_futures_to_states",
    "wait",
]
