"""Logs: bulk writes, cursor reads, and a live follow that survives reconnects.

``follow_logs`` reads the Server-Sent Events endpoint. When the connection
drops (a proxy timeout, a server restart) it reconnects after the delay the
server asked for (``retry:``) and sends ``Last-Event-ID`` with the id of the
last event it saw, so the server resumes after it: no line is lost and none
is repeated. It gives up with ``ServerUnavailable`` only after several
reconnects in a row deliver nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx
from pydantic import BaseModel

from flowyard.client._base import ResourceMethods
from flowyard.client._errors import ServerUnavailable
from flowyard.client._http import query, reason, segment
from flowyard.client._sse import ServerSentEvent, SseParser, parse_events
from flowyard.schemas import logs as lg
from flowyard.schemas import states as st

logger = logging.getLogger("flowyard.client")

# Longest silence before a follow connection is presumed dead and reopened;
# the server's keep-alive comments arrive well within it.
FOLLOW_READ_TIMEOUT = 60.0


@dataclass(frozen=True)
class LogReceived:
    """A log line of the followed run."""

    log: lg.Log


@dataclass(frozen=True)
class StateChanged:
    """The followed run is in a new state (also sent once when the stream opens)."""

    type: st.StateType
    name: str
    message: str
    timestamp: datetime
    state_id: uuid.UUID | None = None


class _StreamState(BaseModel):
    # The stream's ``state`` payload. It is not ``schemas.states.State``: the
    # id may be null (a run with no state row yet) and there is no ``data``.
    id: uuid.UUID | None = None
    type: st.StateType
    name: str
    message: str = ""
    timestamp: datetime


LogEvent = LogReceived | StateChanged


def log_event(event: ServerSentEvent) -> LogEvent | None:
    """The typed event for an SSE event; ``None`` for kinds this client does not know."""
    if event.event == "log":
        return LogReceived(lg.Log.model_validate_json(event.data))
    if event.event == "state":
        state = _StreamState.model_validate_json(event.data)
        return StateChanged(state.type, state.name, state.message, state.timestamp, state.id)
    if event.event == "error":
        # The server ends the stream after this; the follow loop reconnects.
        logger.warning("log stream error from the server: %s", event.data)
    return None


class LogMethods(ResourceMethods):
    async def write_logs(self, logs: Sequence[lg.LogCreate]) -> lg.LogsWritten:
        """Store log lines (up to 50,000 per call) of runs the caller may write to."""
        batch = lg.LogBatch(logs=list(logs))
        return await self._one(lg.LogsWritten, "POST", "/logs", batch)

    async def read_logs(
        self,
        flow_run_id: uuid.UUID | str,
        *,
        after: int | None = None,
        limit: int | None = None,
        level: int | None = None,
        search: str | None = None,
    ) -> lg.LogPage:
        """One page of a run's logs in order; pass ``page.next_cursor`` back as ``after``."""
        params = query(after=after, limit=limit, level=level, search=search)
        path = f"/flow-runs/{segment(flow_run_id)}/logs"
        return await self._one(lg.LogPage, "GET", path, params=params)

    async def iter_logs(
        self,
        flow_run_id: uuid.UUID | str,
        *,
        after: int | None = None,
        level: int | None = None,
        search: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[lg.Log]:
        """Every log line stored so far (no waiting for more; see ``follow_logs``)."""
        while True:
            page = await self.read_logs(
                flow_run_id, after=after, limit=page_size, level=level, search=search
            )
            for log in page.items:
                yield log
            if not page.has_more or page.next_cursor is None or page.next_cursor == after:
                return
            after = page.next_cursor

    async def follow_logs(
        self,
        flow_run_id: uuid.UUID | str,
        *,
        after: int | None = None,
        level: int | None = None,
        max_reconnects: int = 10,
    ) -> AsyncIterator[LogEvent]:
        """Log lines and state changes as they happen, until the run is finished.

        Starts after log id ``after`` (default: from the first line). Gives up
        after ``max_reconnects`` reconnects in a row that deliver nothing.
        """
        path = f"/flow-runs/{segment(flow_run_id)}/logs/follow"
        parser = SseParser()
        if after is not None:
            parser.last_event_id = str(after)
        params = query(level=level)
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if parser.last_event_id is not None:
                headers["Last-Event-ID"] = parser.last_event_id
            try:
                async with self._http.stream(
                    path, params=params, headers=headers, read_timeout=FOLLOW_READ_TIMEOUT
                ) as response:
                    async for event in parse_events(response.aiter_lines(), parser):
                        failures = 0
                        if event.event == "end":
                            return
                        typed = log_event(event)
                        if typed is not None:
                            yield typed
                why = "the stream ended before the run did"
            except httpx.TransportError as exc:
                why = reason(exc, FOLLOW_READ_TIMEOUT)
            failures += 1
            if failures > max_reconnects:
                raise ServerUnavailable(self._http.url, why)
            delay = (
                parser.retry_ms / 1000
                if parser.retry_ms is not None
                else self._http.retry.delay(failures - 1)
            )
            logger.info("following logs of %s: %s; reconnecting in %.2f s", path, why, delay)
            await asyncio.sleep(delay)
