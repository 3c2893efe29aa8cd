"""Wake-ups: "runs changed" reaches dispatchers at commit, not after a poll.

In-process listeners are woken by a session ``after_commit`` hook; other
processes on PostgreSQL hear ``NOTIFY flowyard_runs`` (sent inside the same
transaction, so it is delivered exactly when the change is visible).
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from flowyard.server.db.dialect import notify

CHANNEL = "flowyard_runs"
_WAKE = "flowyard_wake"
_listeners: set[asyncio.Event] = set()


def subscribe() -> asyncio.Event:
    waiter = asyncio.Event()
    _listeners.add(waiter)
    return waiter


def unsubscribe(waiter: asyncio.Event) -> None:
    _listeners.discard(waiter)


def wake_all() -> None:
    for waiter in list(_listeners):
        waiter.set()


async def runs_changed(session: AsyncSession) -> None:
    """Mark the transaction: on commit, wake every dispatcher."""
    if not session.sync_session.info.get(_WAKE):
        session.sync_session.info[_WAKE] = True
        await notify(session, CHANNEL)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_WAKE, False):
        wake_all()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session, *_: Any) -> None:
    session.info.pop(_WAKE, None)
