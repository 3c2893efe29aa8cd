"""Flow runs: create, list page by page, read, change state, and execution reports."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from flowyard.client._base import ResourceMethods, walk_pages
from flowyard.client._http import Query, query, segment
from flowyard.schemas import flow_runs as fr
from flowyard.schemas import states as st
from flowyard.schemas.pagination import Page

FlowRunSort = Literal["created_desc", "created_asc", "expected_start_asc", "expected_start_desc"]


@dataclass(frozen=True)
class FlowRunFilter:
    """Which flow runs to list; every field set narrows the result (tags: all must match)."""

    states: Sequence[st.StateType] = ()
    state_names: Sequence[str] = ()
    deployment_id: uuid.UUID | None = None
    work_pool_id: uuid.UUID | None = None
    flow_name: str | None = None
    tags: Sequence[str] = field(default=())
    created_after: datetime | None = None
    created_before: datetime | None = None
    parent_task_run_id: uuid.UUID | None = None

    def params(self) -> Query:
        """The filter as the API's query parameters."""
        return query(
            state=list(self.states),
            state_name=list(self.state_names),
            deployment_id=self.deployment_id,
            work_pool_id=self.work_pool_id,
            flow_name=self.flow_name,
            tag=list(self.tags),
            created_after=self.created_after,
            created_before=self.created_before,
            parent_task_run_id=self.parent_task_run_id,
        )


class FlowRunMethods(ResourceMethods):
    async def create_ad_hoc_flow_run(self, data: fr.AdHocFlowRunCreate) -> fr.FlowRun:
        """Record a run of a flow called directly, not from a deployment (the SDK does this)."""
        # With a client-chosen id, repeating the request cannot create a second run.
        return await self._one(
            fr.FlowRun, "POST", "/flow-runs", data, idempotent=data.id is not None
        )

    async def list_flow_runs(
        self,
        filter: FlowRunFilter | None = None,
        *,
        sort: FlowRunSort = "created_desc",
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[fr.FlowRun]:
        """One page of runs; pass ``page.next_cursor`` back as ``cursor`` for the next."""
        params = (filter or FlowRunFilter()).params() + query(sort=sort, limit=limit, cursor=cursor)
        return await self._one(Page[fr.FlowRun], "GET", "/flow-runs", params=params)

    async def iter_flow_runs(
        self,
        filter: FlowRunFilter | None = None,
        *,
        sort: FlowRunSort = "created_desc",
        page_size: int = 200,
        limit: int | None = None,
    ) -> AsyncIterator[fr.FlowRun]:
        """Every matching run, fetching pages as the caller iterates (at most ``limit``)."""

        def fetch(cursor: str | None, size: int) -> Awaitable[Page[fr.FlowRun]]:
            return self.list_flow_runs(filter, sort=sort, limit=size, cursor=cursor)

        async for run in walk_pages(fetch, page_size, limit):
            yield run

    async def read_flow_run(self, flow_run_id: uuid.UUID | str) -> fr.FlowRun:
        """A run by id."""
        return await self._one(fr.FlowRun, "GET", f"/flow-runs/{segment(flow_run_id)}")

    async def delete_flow_run(self, flow_run_id: uuid.UUID | str) -> None:
        """Delete a run and its history."""
        await self._send("DELETE", f"/flow-runs/{segment(flow_run_id)}")

    async def set_flow_run_state(
        self, flow_run_id: uuid.UUID | str, state: st.StateCreate
    ) -> st.SetStateResult:
        """Propose a state; the verdict says ACCEPT, REJECT, WAIT (with a reason) or ABORT.

        A stale ``expected_state_id`` is a ``ConflictError``.
        """
        path = f"/flow-runs/{segment(flow_run_id)}/state"
        return await self._one(st.SetStateResult, "POST", path, state)

    async def read_flow_run_states(self, flow_run_id: uuid.UUID | str) -> list[st.State]:
        """The run's state history, oldest first."""
        return await self._many(st.State, f"/flow-runs/{segment(flow_run_id)}/states")

    async def cancel_flow_run(self, flow_run_id: uuid.UUID | str) -> st.SetStateResult:
        """Cancel a run (a scheduled one at once, a running one through CANCELLING)."""
        path = f"/flow-runs/{segment(flow_run_id)}/cancel"
        return await self._one(st.SetStateResult, "POST", path)

    async def retry_flow_run(self, flow_run_id: uuid.UUID | str) -> st.SetStateResult:
        """Schedule a finished run again."""
        path = f"/flow-runs/{segment(flow_run_id)}/retry"
        return await self._one(st.SetStateResult, "POST", path)

    async def record_execution(
        self, flow_run_id: uuid.UUID | str, report: fr.ExecutionReport, *, teardown: bool = False
    ) -> fr.FlowRun:
        """Record what execution measured; ``teardown=True`` also closes the usage record."""
        path = f"/flow-runs/{segment(flow_run_id)}/execution"
        return await self._one(fr.FlowRun, "POST", path, report, params=query(teardown=teardown))

    async def issue_run_token(self, flow_run_id: uuid.UUID | str) -> str:
        """A token that may act on this run only (for the process that runs it)."""
        response = await self._send("POST", f"/flow-runs/{segment(flow_run_id)}/token")
        token: str = response.json()["token"]
        return token
