"""The dispatcher's recorder: the execution plane writes back through ops.

Its log lines (a run's stages: "cloned …", "environment ready …") and its
execution reports short of teardown (the commit a run resolved, its sandbox
and process) are held for at most :data:`LOG_FLUSH_SECONDS` and written
together: with a state change or the teardown of the same run, in that same
transaction, or on their own for every run at once. A burst of runs then
costs a few transactions per run, not one per line or report. Each line
keeps the time it was logged, so the order of a run's log is unchanged; a
run's reports apply in the order they were made.

Reads (a run's state, which runs were asked to cancel) use the database's
lookup session: on SQLite they neither wait for nor block writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.schemas.flow_runs import ExecutionReport
from flowyard.schemas.logs import LogCreate
from flowyard.schemas.states import SetStateResult, StateCreate, StateType
from flowyard.server.context import ServerContext
from flowyard.server.db import models as m
from flowyard.server.ops import flow_runs, logs, secrets
from flowyard.server.ops.auth import Principal, issue_run_token
from flowyard.server.ops.errors import NotFound

LOG_FLUSH_SECONDS = 0.05
# Built once: building and keying a statement cost more than SQLite takes to run it.
_WORKSPACE = select(m.FlowRun.workspace_id).where(m.FlowRun.id == bindparam("run_id"))
_STATES = select(m.FlowRun.id, m.FlowRun.state_type).where(
    m.FlowRun.id.in_(bindparam("run_ids", expanding=True))
)
logger = logging.getLogger(__name__)


class DbRecorder:
    """Acts as the platform (an operator principal scoped to the run's workspace)."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self._workspaces: dict[uuid.UUID, uuid.UUID] = {}
        self._lines: dict[uuid.UUID, list[LogCreate]] = {}
        # Per run, its held reports as one (a later report's fields win).
        self._reports: dict[uuid.UUID, ExecutionReport] = {}
        self._flusher: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()
        # Held lines are written in the order they were taken: log ids are the read cursor.
        self._writing = asyncio.Lock()

    async def _principal(self, run_id: uuid.UUID) -> Principal:
        workspace_id = self._workspaces.get(run_id)
        if workspace_id is None:
            async with self.ctx.db.lookup_session() as session:
                workspace_id = await session.scalar(_WORKSPACE, {"run_id": run_id})
            if workspace_id is None:
                raise NotFound("flow run", run_id)
            self._workspaces[run_id] = workspace_id
        return Principal(workspace_id=workspace_id, kind="api_key", is_admin=True)

    def knows(self, run_id: uuid.UUID, workspace_id: uuid.UUID) -> None:
        """The run's workspace, as its claim read it: its first write reads nothing for it."""
        self._workspaces[run_id] = workspace_id

    async def log(self, run_id: uuid.UUID, message: str, *, level: int = 20) -> None:
        await self._principal(run_id)  # an unknown run fails here, not at the flush
        line = LogCreate(
            flow_run_id=run_id,
            level=level,
            name="flowyard.execution",
            message=message,
            timestamp=datetime.now(UTC),
        )
        self._lines.setdefault(run_id, []).append(line)
        self._flush_later()

    async def set_state(self, run_id: uuid.UUID, state: StateCreate) -> SetStateResult:
        principal = await self._principal(run_id)
        async with self._writing, self.ctx.db.session() as session:
            await self._write_held(session, principal, run_id)
            return await flow_runs.set_state(session, principal, run_id, state)

    async def report(
        self, run_id: uuid.UUID, report: ExecutionReport, *, teardown: bool = False
    ) -> None:
        """Held as lines are, but for the teardown: written at once, with what is held."""
        principal = await self._principal(run_id)
        if not teardown:
            held = self._reports.get(run_id)
            self._reports[run_id] = report if held is None else _merged(held, report)
            self._flush_later()
            return
        async with self._writing, self.ctx.db.session() as session:
            await self._write_held(session, principal, run_id)
            await flow_runs.record_execution(session, principal, run_id, report, teardown=True)
        if run_id not in self._lines and run_id not in self._reports:
            self._workspaces.pop(run_id, None)

    async def current_state(self, run_id: uuid.UUID) -> StateType:
        states = await self._states([run_id])
        if run_id not in states:
            raise NotFound("flow run", run_id)
        return states[run_id]

    async def cancel_requested(self, run_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        states = await self._states(run_ids)
        return {run_id for run_id, state in states.items() if state is StateType.CANCELLING}

    async def flush(self) -> None:
        """Write every held line and report now (one transaction per workspace)."""
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        async with self._writing:
            held, self._lines = self._lines, {}
            reports, self._reports = self._reports, {}
            by_workspace: dict[uuid.UUID, _Held] = {}
            for run_id in dict.fromkeys([*held, *reports]):
                with contextlib.suppress(NotFound):  # a run deleted meanwhile: what it held goes
                    principal = await self._principal(run_id)
                    into = by_workspace.setdefault(principal.workspace_id, _Held())
                    into.lines.extend(held.get(run_id, ()))
                    if run_id in reports:
                        into.reports[run_id] = reports[run_id]
            for workspace_id, into in by_workspace.items():
                principal = Principal(workspace_id=workspace_id, kind="api_key", is_admin=True)
                with contextlib.suppress(NotFound):
                    async with self.ctx.db.session() as session:
                        await logs.write_lines(session, principal, into.lines)
                        for run_id in sorted(into.reports):  # rows locked in id order
                            await flow_runs.write_report(
                                session, principal, run_id, into.reports[run_id]
                            )

    async def secret(self, workspace_id: uuid.UUID, name: str) -> str:
        principal = Principal(workspace_id=workspace_id, kind="api_key", is_admin=True)
        try:
            async with self.ctx.db.session() as session:
                return await secrets.read_secret_value(session, principal, self.ctx.keys, name)
        except NotFound:
            raise LookupError(name) from None

    async def run_token(self, run_id: uuid.UUID) -> str:
        return issue_run_token(self.ctx.keys, run_id)

    # -- internals -------------------------------------------------------------------------

    async def _write_held(
        self, session: AsyncSession, principal: Principal, run_id: uuid.UUID
    ) -> None:
        lines = self._lines.pop(run_id, None)
        if lines:
            await logs.write_lines(session, principal, lines)
        report = self._reports.pop(run_id, None)
        if report is not None:
            await flow_runs.write_report(session, principal, run_id, report)

    async def _states(self, run_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, StateType]:
        if not run_ids:
            return {}
        async with self.ctx.db.lookup_session() as session:
            rows = (await session.execute(_STATES, {"run_ids": list(run_ids)})).all()
        return {run_id: StateType(state) for run_id, state in rows}

    def _flush_later(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().call_later(
                LOG_FLUSH_SECONDS, self._flush_soon
            )

    def _flush_soon(self) -> None:
        self._flusher = None
        task = asyncio.get_running_loop().create_task(self._flush_logged())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush_logged(self) -> None:
        try:
            await self.flush()
        except Exception:  # the database is down: what was held is lost, the runs go on
            logger.exception("could not write the execution plane's log lines and reports")


@dataclass
class _Held:
    """A workspace's share of a flush."""

    lines: list[LogCreate] = field(default_factory=list)
    reports: dict[uuid.UUID, ExecutionReport] = field(default_factory=dict)


def _merged(held: ExecutionReport, later: ExecutionReport) -> ExecutionReport:
    """Two reports of a run as one: the fields the later one sets win."""
    return held.model_copy(
        update={name: value for name, value in later if value is not None and value is not False}
    )
