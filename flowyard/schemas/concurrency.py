"""Global concurrency limits: named slot counts that flows take with ``concurrency(...)``
(held by a lease, released at the end) or ``rate_limit(...)`` (slots that free themselves
as time passes)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from flowyard.schemas._base import Out, Wire

NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}$"
MAX_LEASE_SECONDS = 24 * 3600


class ConcurrencyLimitCreate(Wire):
    name: str = Field(pattern=NAME)
    limit: int = Field(ge=0, le=1_000_000)
    active: bool = True
    # Slots freed per second after a rate_limit() takes them; 0: not usable as a rate limit.
    slot_decay_per_second: float = Field(default=0.0, ge=0.0, le=1_000_000.0)


class ConcurrencyLimitUpdate(Wire):
    limit: int | None = Field(default=None, ge=0, le=1_000_000)
    active: bool | None = None
    slot_decay_per_second: float | None = Field(default=None, ge=0.0, le=1_000_000.0)


class ConcurrencyLimit(Out):
    id: uuid.UUID
    name: str
    limit: int
    active: bool
    slot_decay_per_second: float
    # Slots held now by unexpired leases.
    active_slots: int = 0
    created: datetime
    updated: datetime


class SlotRequest(Wire):
    """Take ``slots`` of every named limit at once, or none.

    ``concurrency`` holds them for ``lease_seconds`` (renew to keep them, release
    when done); ``rate_limit`` holds them until the limit's decay frees them.
    """

    names: list[str] = Field(min_length=1, max_length=20)
    slots: int = Field(default=1, ge=1, le=1_000_000)
    mode: Literal["concurrency", "rate_limit"] = "concurrency"
    lease_seconds: float = Field(default=300.0, ge=1.0, le=MAX_LEASE_SECONDS)
    flow_run_id: uuid.UUID | None = None
    # The id the lease gets, chosen by the caller: a request sent again after its answer
    # was lost finds the lease it already made instead of taking the slots twice.
    lease_id: uuid.UUID | None = None


class SlotGrant(Wire):
    """``acquired``: the lease (for concurrency) and when it ends; else how long to wait.
    ``missing`` names the requested limits that do not exist (they limit nothing)."""

    acquired: bool
    lease_id: uuid.UUID | None = None
    expires_at: datetime | None = None
    retry_after_seconds: float | None = None
    missing: list[str] = Field(default_factory=list)
    # Why not acquired: the first limit that is full.
    blocked_by: str | None = None


class LeaseRenewal(Wire):
    lease_seconds: float = Field(default=300.0, ge=1.0, le=MAX_LEASE_SECONDS)


class LeaseRenewed(Wire):
    expires_at: datetime
