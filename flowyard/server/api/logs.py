"""Logs: bulk ingestion, cursor reads, and a live follow stream (Server-Sent Events).

The follow stream never holds a database session between polls. Request
dependencies live until the response ends, and on SQLite every transaction
takes the writer lock (``BEGIN IMMEDIATE``), so a session held for a stream's
lifetime would stall every writer. The endpoint therefore authenticates in
a short session of its own, and each poll opens and closes another.

Wire format: each line is ``id: <log id>`` / ``event: log`` / ``data: <Log
JSON>``; ``event: state`` carries the run's state when it changes (and once
at the start); ``event: end`` closes the stream once the run is terminal and
every line has been sent. A stream that closes without ``end`` (the server is
stopping, see ``ops.logs.drain``) is resumed with ``Last-Event-ID`` (or
``after``). Comment lines (``: keep-alive``) are sent while idle so proxies
keep the connection open. Content is JSON-encoded as stored, never interpreted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator
from sqlalchemy.exc import SQLAlchemyError

from flowyard.schemas import logs as s
from flowyard.schemas.variables import plain_text
from flowyard.server.api.deps import Caller, Ctx, Session
from flowyard.server.db import Database
from flowyard.server.db import models as m
from flowyard.server.ops import auth, flow_runs, logs
from flowyard.server.ops.errors import InvalidInput

router = APIRouter(tags=["logs"])
logger = logging.getLogger("flowyard.server.api.logs")

MAX_ID = 2**63 - 1
# Polling covers writers in other server processes; this process's writers wake
# followers at once. Short enough for a live feel, cheap enough per follower.
POLL_SECONDS = 0.25
HEARTBEAT_SECONDS = 15.0
# A run's last lines may commit just after its final state; wait this long past it.
END_GRACE_SECONDS = 0.5
FOLLOW_BATCH = 1000
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

Cursor = Annotated[int | None, Query(ge=0, le=MAX_ID, description="Lines after this log id.")]
Level = Annotated[int | None, Query(ge=0, le=100, description="Minimum level.")]


def _searchable(value: str | None) -> str | None:
    if value is not None:
        plain_text(value)
    return value


@router.post("/logs", status_code=201)
async def write_logs(data: s.LogBatch, session: Session, caller: Caller) -> s.LogsWritten:
    """Store a batch of lines (thousands per request), all or nothing."""
    return s.LogsWritten(count=await logs.write_logs(session, caller, data))


@router.get("/flow-runs/{run_id}/logs")
async def read_logs(
    run_id: uuid.UUID,
    session: Session,
    caller: Caller,
    after: Cursor = None,
    limit: int = Query(default=1000, ge=1, le=logs.MAX_PAGE),
    level: Level = None,
    search: Annotated[
        str | None, Query(min_length=1, max_length=200), AfterValidator(_searchable)
    ] = None,
) -> s.LogPage:
    """A run's lines in order; pass ``next_cursor`` back as ``after`` to read on.

    ``level`` is a minimum; ``search`` a case-insensitive substring of the message
    (case folding is ASCII-only on SQLite).
    """
    rows, more = await logs.read_logs(
        session, caller, run_id, after=after, limit=limit, level=level, search=search
    )
    names = await logs.task_run_names(session, run_id, rows)
    return s.LogPage(
        items=[_line(row, names) for row in rows],
        next_cursor=rows[-1].id if rows else after,
        has_more=more,
    )


@router.get(
    "/flow-runs/{run_id}/logs/follow",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "An SSE stream."}},
)
async def follow_logs(
    run_id: uuid.UUID,
    ctx: Ctx,
    after: Cursor = None,
    level: Level = None,
    authorization: Annotated[str | None, Header()] = None,
    last_event_id: Annotated[str | None, Header(max_length=30)] = None,
) -> StreamingResponse:
    """Stream the run's lines as they arrive, its state changes, and an end event."""
    cursor = after
    if last_event_id:
        if not (last_event_id.isascii() and last_event_id.isdigit()) or int(last_event_id) > MAX_ID:
            raise InvalidInput("Last-Event-ID", "expected a log id sent by this stream")
        cursor = int(last_event_id)
    async with ctx.db.session() as session:
        principal = await auth.authenticate(session, ctx.keys, authorization)
        await flow_runs.read_flow_run(session, principal, run_id)
    return StreamingResponse(
        _stream(ctx.db, run_id, cursor, level),
        media_type="text/event-stream",
        headers=_SSE_HEADERS,
    )


def _line(row: m.Log, task_run_names: Mapping[uuid.UUID, str]) -> s.Log:
    line = s.Log.model_validate(row)
    if row.task_run_id is not None:
        line.task_run_name = task_run_names.get(row.task_run_id)
    return line


def _event(name: str, data: str, ident: int | None = None) -> bytes:
    head = f"id: {ident}\n" if ident is not None else ""
    return f"{head}event: {name}\ndata: {data}\n\n".encode()


def _state_data(state: logs.RunState) -> str:
    return json.dumps(
        {
            "id": str(state.state_id) if state.state_id else None,
            "type": state.type.value,
            "name": state.name,
            "message": state.message,
            "timestamp": state.timestamp.isoformat(),
        }
    )


async def _poll(
    db: Database,
    run_id: uuid.UUID,
    cursor: int | None,
    level: int | None,
    sent: logs.RunState | None,
) -> tuple[logs.RunState | None, list[logs.RunState], list[s.Log], bool]:
    """The run's state, the states it went through since ``sent``, then its lines past
    the cursor, in one short transaction."""
    async with db.read_session() as session:
        state = await logs.run_state(session, run_id)
        if state is None:
            return None, [], [], False
        changes: list[logs.RunState] = []
        if sent is None:
            changes = [state]
        elif state.state_id != sent.state_id:
            # Every state since the last one sent, not just the latest: a run can go
            # RUNNING and COMPLETED between two polls, and a watcher shows both.
            changes = await logs.states_since(session, run_id, sent.timestamp) or [state]
        rows, more = await logs.logs_after(
            session, run_id, after=cursor, limit=FOLLOW_BATCH, level=level
        )
        names = await logs.task_run_names(session, run_id, rows)
        return state, changes, [_line(row, names) for row in rows], more


async def _stream(
    db: Database, run_id: uuid.UUID, cursor: int | None, level: int | None
) -> AsyncIterator[bytes]:
    waiter = asyncio.Event()
    logs.follow(run_id, waiter)
    try:
        yield b"retry: 2000\n\n"
        sent: logs.RunState | None = None
        terminal_since: float | None = None
        last_output = time.monotonic()
        while True:
            waiter.clear()  # before reading: a commit during the read wakes the next wait
            try:
                state, changes, rows, more = await _poll(db, run_id, cursor, level, sent)
            except SQLAlchemyError:
                logger.exception("log follow of flow run %s stopped by a database error", run_id)
                yield _event("error", json.dumps({"detail": "the database is unavailable"}))
                return
            if state is None:
                yield _event("end", json.dumps({"state": None, "reason": "flow run deleted"}))
                return
            out = []
            # States and lines in the order they happened; a state later than this
            # page's last line waits for the lines before it (when more are to come).
            for row in rows:
                while changes and changes[0].timestamp <= row.timestamp:
                    sent = changes.pop(0)
                    out.append(_event("state", _state_data(sent)))
                out.append(_event("log", row.model_dump_json(), row.id))
                cursor = row.id
            if not more:
                for sent in changes:
                    out.append(_event("state", _state_data(sent)))
            if out:
                yield b"".join(out)
                last_output = time.monotonic()
            if more:
                continue
            if not state.type.is_terminal:
                terminal_since = None
            else:
                terminal_since = terminal_since or time.monotonic()
                if _settled(state, terminal_since):
                    yield _event("end", f'{{"state": {_state_data(state)}}}')
                    return
            with contextlib.suppress(TimeoutError):  # a timeout is the poll
                await asyncio.wait_for(waiter.wait(), POLL_SECONDS)
            if logs.drained(waiter):
                return  # the server is stopping: the client reconnects with Last-Event-ID
            if time.monotonic() - last_output >= HEARTBEAT_SECONDS:
                yield b": keep-alive\n\n"
                last_output = time.monotonic()
    finally:
        logs.unfollow(run_id, waiter)


def _settled(state: logs.RunState, terminal_since: float) -> bool:
    """Terminal long enough that no late line of the run is still on its way."""
    waited = time.monotonic() - terminal_since
    age = (datetime.now(UTC) - state.timestamp).total_seconds()
    return max(waited, age) >= END_GRACE_SECONDS
