"""Flow runs through the client: ad hoc runs, pages, states, execution reports, tokens."""

from __future__ import annotations

import uuid

import pytest

from flowyard.client import AuthError, ConflictError, FlowRunFilter, FlowyardClient, NotFoundError
from flowyard.schemas import flow_runs as fr
from flowyard.schemas.states import StateCreate, StateType, Verdict
from tests.integration.client.conftest import ClientFactory, make_deployment, make_pool


async def ad_hoc(client: FlowyardClient, flow_name: str = "adhoc", **fields: object) -> fr.FlowRun:
    return await client.create_ad_hoc_flow_run(
        fr.AdHocFlowRunCreate.model_validate({"flow_name": flow_name, **fields})
    )


async def test_an_ad_hoc_run_starts_running_and_repeating_it_with_its_id_is_harmless(
    client: FlowyardClient,
) -> None:
    run_id = uuid.uuid4()
    run = await ad_hoc(client, id=run_id, parameters={"x": 1})
    assert (run.id, run.state_type, run.parameters) == (run_id, StateType.RUNNING, {"x": 1})
    again = await ad_hoc(client, id=run_id)
    assert again.id == run_id
    assert len((await client.list_flow_runs()).items) == 1


async def test_iterating_runs_walks_every_cursor_page_once_in_order(
    client: FlowyardClient,
) -> None:
    created = [(await ad_hoc(client, name=f"run-{i}")).id for i in range(7)]
    first = await client.list_flow_runs(limit=3, sort="created_asc")
    assert [r.id for r in first.items] == created[:3]
    assert first.next_cursor is not None
    walked = [r.id async for r in client.iter_flow_runs(sort="created_asc", page_size=3)]
    assert walked == created
    newest_first = [r.id async for r in client.iter_flow_runs(page_size=2, limit=5)]
    assert newest_first == created[::-1][:5]


async def test_runs_are_filtered_by_state_flow_and_deployment(client: FlowyardClient) -> None:
    await make_pool(client)
    deployment = await make_deployment(client, parameters={"n": 1})
    scheduled = await client.create_flow_run(deployment.id, fr.FlowRunCreate(tags=["nightly"]))
    running = await ad_hoc(client, "other-flow")
    by_state = await client.list_flow_runs(FlowRunFilter(states=[StateType.SCHEDULED]))
    assert [r.id for r in by_state.items] == [scheduled.id]
    by_flow = await client.list_flow_runs(FlowRunFilter(flow_name="other-flow"))
    assert [r.id for r in by_flow.items] == [running.id]
    by_deployment = FlowRunFilter(deployment_id=deployment.id, tags=["nightly"])
    assert [r.id async for r in client.iter_flow_runs(by_deployment)] == [scheduled.id]
    none = FlowRunFilter(states=[StateType.COMPLETED, StateType.FAILED])
    assert (await client.list_flow_runs(none)).items == []


async def test_a_state_is_proposed_accepted_and_recorded_in_the_history(
    client: FlowyardClient,
) -> None:
    run = await ad_hoc(client)
    result = await client.set_flow_run_state(
        run.id, StateCreate(type=StateType.COMPLETED, expected_state_id=run.state_id)
    )
    assert result.status is Verdict.ACCEPT
    assert result.state is not None
    history = await client.read_flow_run_states(run.id)
    assert [s.type for s in history][-2:] == [StateType.RUNNING, StateType.COMPLETED]
    assert (await client.read_flow_run(run.id)).state_type is StateType.COMPLETED


async def test_a_stale_state_write_is_a_conflict(client: FlowyardClient) -> None:
    run = await ad_hoc(client)
    await client.set_flow_run_state(run.id, StateCreate(type=StateType.COMPLETED))
    with pytest.raises(ConflictError, match="re-read it"):
        await client.set_flow_run_state(
            run.id, StateCreate(type=StateType.FAILED, expected_state_id=run.state_id)
        )


async def test_a_scheduled_run_is_cancelled_then_retried(client: FlowyardClient) -> None:
    await make_pool(client)
    deployment = await make_deployment(client, parameters={"n": 1})
    run = await client.create_flow_run(deployment.id)
    cancelled = await client.cancel_flow_run(run.id)
    assert cancelled.state is not None
    assert cancelled.state.type is StateType.CANCELLED
    retried = await client.retry_flow_run(run.id)
    assert retried.status is Verdict.ACCEPT
    assert (await client.read_flow_run(run.id)).state_type is StateType.SCHEDULED


async def test_retrying_an_unfinished_run_is_refused(client: FlowyardClient) -> None:
    run = await ad_hoc(client)
    with pytest.raises(AuthError, match="only a finished run can be retried"):
        await client.retry_flow_run(run.id)


async def test_execution_measurements_are_recorded_on_the_run(client: FlowyardClient) -> None:
    run = await ad_hoc(client)
    report = fr.ExecutionReport(backend="local", exit_code=0, peak_memory_bytes=1024)
    updated = await client.record_execution(run.id, report)
    assert (updated.backend, updated.exit_code, updated.peak_memory_bytes) == ("local", 0, 1024)


async def test_a_run_token_acts_on_its_own_run_only(
    client: FlowyardClient, client_for: ClientFactory
) -> None:
    mine, other = await ad_hoc(client), await ad_hoc(client)
    token = await client.issue_run_token(mine.id)
    async with client_for(token) as runner:
        me = await runner.read_me()
        assert (me.kind, me.flow_run_id) == ("run_token", mine.id)
        assert (await runner.read_flow_run(mine.id)).id == mine.id
        with pytest.raises((AuthError, NotFoundError)):
            await runner.read_flow_run(other.id)
        with pytest.raises(AuthError):
            await runner.list_work_pools()


async def test_a_finished_run_is_deleted(client: FlowyardClient) -> None:
    run = await ad_hoc(client)
    with pytest.raises(AuthError, match="cancel it before deleting"):
        await client.delete_flow_run(run.id)
    await client.set_flow_run_state(run.id, StateCreate(type=StateType.COMPLETED))
    await client.delete_flow_run(run.id)
    with pytest.raises(NotFoundError):
        await client.read_flow_run(run.id)
