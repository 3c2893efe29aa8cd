"""Task runs: batched upserts from the process that runs the flow, and reads."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence

from flowyard.client._base import ResourceMethods, walk_pages
from flowyard.client._http import query, segment
from flowyard.schemas import states as st
from flowyard.schemas import task_runs as tr
from flowyard.schemas.pagination import Page


class TaskRunMethods(ResourceMethods):
    async def upsert_task_runs(
        self, task_runs: Sequence[tr.TaskRunUpsert]
    ) -> tr.TaskRunBatchResult:
        """Create task runs and move them through states, many per request.

        The server skips entries it already recorded, so a batch whose answer
        was lost may be sent again (and is retried automatically).
        """
        batch = tr.TaskRunBatch(task_runs=list(task_runs))
        return await self._one(
            tr.TaskRunBatchResult, "POST", "/task-runs/batch", batch, idempotent=True
        )

    async def list_task_runs(
        self,
        flow_run_id: uuid.UUID | str,
        *,
        states: Sequence[st.StateType] = (),
        limit: int = 200,
        cursor: str | None = None,
    ) -> Page[tr.TaskRun]:
        """One page of a flow run's task runs in creation order (optionally by state)."""
        params = query(state=list(states), limit=limit, cursor=cursor)
        path = f"/flow-runs/{segment(flow_run_id)}/task-runs"
        return await self._one(Page[tr.TaskRun], "GET", path, params=params)

    async def iter_task_runs(
        self,
        flow_run_id: uuid.UUID | str,
        *,
        states: Sequence[st.StateType] = (),
        page_size: int = 200,
    ) -> AsyncIterator[tr.TaskRun]:
        """Every task run of a flow run, page by page as the caller iterates."""

        def fetch(cursor: str | None, size: int) -> Awaitable[Page[tr.TaskRun]]:
            return self.list_task_runs(flow_run_id, states=states, limit=size, cursor=cursor)

        async for task_run in walk_pages(fetch, page_size):
            yield task_run

    async def read_task_run(self, task_run_id: uuid.UUID | str) -> tr.TaskRun:
        """A task run by id."""
        return await self._one(tr.TaskRun, "GET", f"/task-runs/{segment(task_run_id)}")

    async def read_task_run_states(self, task_run_id: uuid.UUID | str) -> list[tr.TaskRunStateOut]:
        """A task run's state history, oldest first."""
        return await self._many(tr.TaskRunStateOut, f"/task-runs/{segment(task_run_id)}/states")
