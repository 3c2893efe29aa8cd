"""A run's logs: pages of lines, then a live stream (SSE) once the reader is at the end.

A run may have 100,000 lines, so the panel never reads them whole: it shows
one page at a time (cursor reads in ``ops.logs``) and offers the next, and
only when a page reaches the end does it open the live stream from that
cursor. Level filter and search apply to pages and stream alike.

The stream sends HTML fragments for htmx's SSE extension (``event: log``
appends lines, ``event: state`` replaces the state badge, ``event: end``
closes). It never holds a database session between polls: on SQLite every
transaction takes the writer lock, so each poll opens and closes its own.
Lines written in this process wake the stream at once (``ops.logs.follow``);
lines from other server processes arrive by the poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.exc import SQLAlchemyError

from flowyard.schemas.states import StateType
from flowyard.server.db import Database
from flowyard.server.db import models as m
from flowyard.server.ops import flow_runs, logs
from flowyard.ui import _pages as pages
from flowyard.ui._formatting import LEVELS

router = APIRouter(route_class=pages.UiRoute, include_in_schema=False)
logger = logging.getLogger("flowyard.ui")

PAGE = 500
STREAM_BATCH = 500
POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 15.0
# A run's last lines may commit just after its final state: wait this long past it.
END_GRACE_SECONDS = 1.0


@dataclass(frozen=True)
class LogFilters:
    level: int | None = None
    search: str = ""

    @classmethod
    def parse(cls, level: str, search: str) -> LogFilters:
        value = int(level) if level.isdigit() and int(level) <= 100 else None
        return cls(value or None, search.strip()[:200])

    def params(self, **more: Any) -> dict[str, Any]:
        return {"level": self.level or "", "q": self.search, **more}


@dataclass(frozen=True)
class LogPage:
    run_id: uuid.UUID
    lines: Sequence[m.Log]
    cursor: int | None
    has_more: bool
    live: bool
    filters: LogFilters
    task_run_names: Mapping[uuid.UUID, str]

    def template_context(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "lines": self.lines,
            "task_run_names": self.task_run_names,
            "cursor": self.cursor,
            "has_more": self.has_more,
            "live": self.live,
            "filters": self.filters,
            "levels": LEVELS,
            "page_size": PAGE,
        }


async def read_page(
    scope: pages.Scope, run_id: uuid.UUID, filters: LogFilters, after: int | None, active: bool
) -> LogPage:
    rows, more = await logs.read_logs(
        scope.session,
        scope.principal,
        run_id,
        after=after,
        limit=PAGE,
        level=filters.level,
        search=filters.search or None,
    )
    cursor = rows[-1].id if rows else after
    names = await logs.task_run_names(scope.session, run_id, rows)
    return LogPage(run_id, rows, cursor, more, active and not more, filters, names)


async def first_page(
    scope: pages.Scope, run_id: uuid.UUID, filters: LogFilters, active: bool
) -> LogPage:
    return await read_page(scope, run_id, filters, None, active)


@router.get("/runs/{run_id}/logs")
async def log_lines(
    view: pages.View, run_id: uuid.UUID, level: str = "", q: str = "", after: str = ""
) -> Response:
    """The first page (a filter changed) or the page after ``after`` ("show more")."""
    filters = LogFilters.parse(level, q)
    cursor = int(after) if after.isdigit() and int(after) < 2**63 else None
    async with view.scope() as scope:
        run = await flow_runs.read_flow_run(scope.session, scope.principal, run_id)
        active = not StateType(run.state_type).is_terminal
        page = await read_page(scope, run_id, filters, cursor, active)
    template = "log_more.html" if cursor is not None else "log_body.html"
    return view.render(template, scope, **page.template_context())


def sse_event(name: str, html: str, ident: int | None = None) -> bytes:
    """One event; every line of the fragment is its own ``data:`` field."""
    head = f"id: {ident}\n" if ident is not None else ""
    text = html.replace("\r\n", "\n").replace("\r", "\n")
    data = "".join(f"data: {line}\n" for line in text.split("\n"))
    return f"{head}event: {name}\n{data}\n".encode()


def _render(template: str, **context: Any) -> str:
    return pages.templates.get_template(template).render(**context)


@router.get("/runs/{run_id}/logs/stream")
async def log_stream(
    view: pages.View,
    run_id: uuid.UUID,
    level: str = "",
    q: str = "",
    after: str = "",
    last_event_id: Annotated[str | None, Header(max_length=30)] = None,
) -> Response:
    filters = LogFilters.parse(level, q)
    cursor = int(after) if after.isdigit() and int(after) < 2**63 else None
    if last_event_id and last_event_id.isdigit() and int(last_event_id) < 2**63:
        cursor = int(last_event_id)  # a reconnect resumes where the browser got to
    async with view.scope() as scope:
        await flow_runs.read_flow_run(scope.session, scope.principal, run_id)
    return StreamingResponse(
        _stream(view.ctx.db, run_id, cursor, filters),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(
    db: Database, run_id: uuid.UUID, cursor: int | None, filters: LogFilters
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
                async with db.read_session() as session:
                    state = await logs.run_state(session, run_id)
                    rows: list[m.Log] = []
                    more = False
                    names: Mapping[uuid.UUID, str] = {}
                    if state is not None:
                        rows, more = await logs.logs_after(
                            session, run_id, after=cursor, limit=STREAM_BATCH,
                            level=filters.level, search=filters.search or None,
                        )  # fmt: skip
                        names = await logs.task_run_names(session, run_id, rows)
            except SQLAlchemyError:
                logger.exception("log stream of flow run %s stopped by a database error", run_id)
                yield sse_event("end", "The log stream stopped: the database is unavailable.")
                return
            if state is None:
                yield sse_event("end", "This run was deleted.")
                return
            out = []
            if state != sent:
                out.append(
                    sse_event(
                        "state", _render("state_badge.html", type=state.type, name=state.name)
                    )
                )
                sent = state
            if rows:
                cursor = rows[-1].id
                out.append(
                    sse_event(
                        "log", _render("log_lines.html", lines=rows, task_run_names=names), cursor
                    )
                )
            if out:
                yield b"".join(out)
                last_output = time.monotonic()
            if more:
                continue
            if not state.type.is_terminal:
                terminal_since = None
            else:
                terminal_since = terminal_since or time.monotonic()
                age = (datetime.now(UTC) - state.timestamp).total_seconds()
                if max(time.monotonic() - terminal_since, age) >= END_GRACE_SECONDS:
                    text = f"The run is {state.name}; no more lines will arrive."
                    yield sse_event("end", text)
                    return
            with contextlib.suppress(TimeoutError):  # a timeout is the poll
                await asyncio.wait_for(waiter.wait(), POLL_SECONDS)
            if logs.drained(waiter):
                return  # the server is stopping: the browser reconnects with Last-Event-ID
            if time.monotonic() - last_output >= HEARTBEAT_SECONDS:
                yield b": keep-alive\n\n"
                last_output = time.monotonic()
    finally:
        logs.unfollow(run_id, waiter)
