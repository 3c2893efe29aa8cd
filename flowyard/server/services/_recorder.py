"""The dispatcher's recorder: the execution plane writes back through ops."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flowyard.schemas.flow_runs import ExecutionReport
from flowyard.schemas.logs import LogBatch, LogCreate
from flowyard.schemas.states import SetStateResult, StateCreate, StateType
from flowyard.server.context import ServerContext
from flowyard.server.ops import flow_runs, logs, secrets
from flowyard.server.ops.auth import Principal, issue_run_token
from flowyard.server.ops.errors import NotFound


class DbRecorder:
    """Acts as the platform (an operator principal scoped to the run's workspace)."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self._workspaces: dict[uuid.UUID, uuid.UUID] = {}

    async def _principal(self, run_id: uuid.UUID) -> Principal:
        workspace_id = self._workspaces.get(run_id)
        if workspace_id is None:
            from flowyard.server.db import models as m

            async with self.ctx.db.session() as session:
                run = await session.get(m.FlowRun, run_id)
                if run is None:
                    raise NotFound("flow run", run_id)
                workspace_id = self._workspaces[run_id] = run.workspace_id
        return Principal(workspace_id=workspace_id, kind="api_key", is_admin=True)

    async def log(self, run_id: uuid.UUID, message: str, *, level: int = 20) -> None:
        principal = await self._principal(run_id)
        line = LogCreate(
            flow_run_id=run_id,
            level=level,
            name="flowyard.execution",
            message=message,
            timestamp=datetime.now(UTC),
        )
        async with self.ctx.db.session() as session:
            await logs.write_logs(session, principal, LogBatch(logs=[line]))

    async def set_state(self, run_id: uuid.UUID, state: StateCreate) -> SetStateResult:
        principal = await self._principal(run_id)
        async with self.ctx.db.session() as session:
            return await flow_runs.set_state(session, principal, run_id, state)

    async def report(
        self, run_id: uuid.UUID, report: ExecutionReport, *, teardown: bool = False
    ) -> None:
        principal = await self._principal(run_id)
        async with self.ctx.db.session() as session:
            await flow_runs.record_execution(session, principal, run_id, report, teardown=teardown)
        if teardown:
            self._workspaces.pop(run_id, None)

    async def current_state(self, run_id: uuid.UUID) -> StateType:
        principal = await self._principal(run_id)
        async with self.ctx.db.session() as session:
            run = await flow_runs.read_flow_run(session, principal, run_id)
            return StateType(run.state_type)

    async def secret(self, workspace_id: uuid.UUID, name: str) -> str:
        principal = Principal(workspace_id=workspace_id, kind="api_key", is_admin=True)
        try:
            async with self.ctx.db.session() as session:
                return await secrets.read_secret_value(session, principal, self.ctx.keys, name)
        except NotFound:
            raise LookupError(name) from None

    async def run_token(self, run_id: uuid.UUID) -> str:
        return issue_run_token(self.ctx.keys, run_id)
