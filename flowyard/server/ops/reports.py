"""What a running flow reports in one request: log lines and task-run states, stored together.

The SDK's recorder sends both in one ``POST /task-runs/batch``. Their flow
runs are read once for both, and locked (PostgreSQL) before any task-run row:
the order every writer of both follows (the lost-run sweep locks a flow run,
then ends its task runs), and what keeps log ids of a run committing in
order. Lines go first, so a missing run is named as ``logs.N`` before
``task_runs.N``.

A batch may end with a state of a flow run (the flow's RUNNING, or its final
state after its last lines): it is proposed once the rest is stored, in the
same transaction, as ``POST /flow-runs/{id}/state`` would propose it. Its
verdict is part of the answer; only an error (the run missing, say) refuses
the whole batch.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.schemas import task_runs as s
from flowyard.schemas.states import SetStateResult, StateCreate
from flowyard.server.ops import flow_runs, logs, task_runs
from flowyard.server.ops.auth import Principal


async def record_batch(
    session: AsyncSession,
    principal: Principal,
    batch: s.TaskRunBatch,
    *,
    then: tuple[uuid.UUID, StateCreate] | None = None,
) -> tuple[s.TaskRunBatchResult, SetStateResult | None]:
    """Store the batch's lines and task-run states, then propose ``then``; all or nothing."""
    # Keyed by the ids' integers: hashing a UUID runs Python code, once per line.
    run_ids = {line.flow_run_id.int: line.flow_run_id for line in batch.logs}
    run_ids.update((entry.flow_run_id.int, entry.flow_run_id) for entry in batch.task_runs)
    if then is not None:
        run_ids[then[0].int] = then[0]  # locked with the others, in the same order
    runs = await logs.lock_runs(session, run_ids.values()) if run_ids else {}
    await logs.write_lines(session, principal, batch.logs, runs=runs)
    result = await task_runs.upsert_task_runs(session, principal, batch, runs=runs)
    if then is None:
        return result, None
    run_id, state = then
    return result, await flow_runs.set_state(
        session, principal, run_id, state, locked=runs.get(run_id)
    )
