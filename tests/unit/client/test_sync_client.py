"""SyncClient: generated from FlowyardClient, and usable from sync code and running loops."""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import signal
import threading
import uuid
from collections.abc import Generator
from datetime import UTC, datetime

import httpx
import pytest

from flowyard.client import ClientError, FlowyardClient, NotFoundError, SyncClient, _codegen
from flowyard.client._loop import SyncClientBase
from flowyard.schemas.states import StateType
from tests.unit.client.fakes import QUICK, ScriptedApi, answer


def normalised(source: str) -> str:
    """The module's AST with imports as a sorted set: formatting and import order ignored."""
    tree = ast.parse(source)
    imports = sorted(
        (getattr(node, "module", "") or "", alias.name, alias.asname or "")
        for node in tree.body
        if isinstance(node, ast.ImportFrom | ast.Import)
        for alias in node.names
    )
    tree.body = [n for n in tree.body if not isinstance(n, ast.ImportFrom | ast.Import)]
    return repr(imports) + ast.dump(tree)


def test_the_generated_sync_client_is_up_to_date_with_the_async_client() -> None:
    current = inspect.getsource(inspect.getmodule(SyncClient))  # type: ignore[arg-type]
    assert normalised(current) == normalised(_codegen.render()), (
        "flowyard/client/_sync.py is stale: run `python -m flowyard.client._codegen`"
    )


def test_every_public_async_method_has_a_blocking_twin_with_the_same_parameters() -> None:
    names = [name for name, _ in _codegen.async_methods()]
    assert len(names) > 40
    for name in names:
        sync_params = inspect.signature(getattr(SyncClient, name)).parameters
        async_params = inspect.signature(getattr(FlowyardClient, name)).parameters
        assert list(sync_params) == list(async_params), name
    assert not [n for n in vars(SyncClient) if n.startswith("a") and n.endswith("close")]


def sync_client(api: ScriptedApi) -> SyncClient:
    return SyncClient(
        "http://api.test/api", "fy_k", transport=httpx.MockTransport(api), retry=QUICK
    )


def run_page(run_ids: list[uuid.UUID], next_cursor: str | None) -> dict[str, object]:
    now = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
    items: list[dict[str, object]] = [
        {
            "id": str(run_id),
            "name": "run",
            "flow_name": "etl",
            "deployment_id": None,
            "work_pool_id": None,
            "parent_task_run_id": None,
            "parameters": {},
            "job_variables": {},
            "tags": [],
            "idempotency_key": None,
            "state_id": None,
            "state_type": "SCHEDULED",
            "state_name": "Scheduled",
            "state_message": "",
            "state_timestamp": now,
            "expected_start_time": None,
            "next_scheduled_start_time": None,
            "start_time": None,
            "end_time": None,
            "run_count": 0,
            "resolved_commit": None,
            "backend": None,
            "sandbox_id": None,
            "exit_code": None,
            "peak_memory_bytes": None,
            "peak_storage_bytes": None,
            "cpu_seconds": None,
            "compute_seconds": None,
            "crash_reason": None,
            "created": now,
            "updated": now,
        }
        for run_id in run_ids
    ]
    return {"items": items, "next_cursor": next_cursor}


def test_a_sync_call_from_plain_code_returns_the_model_and_raises_typed_errors() -> None:
    api = ScriptedApi([answer(200, {"status": "ok"}), answer(404, {"detail": "nope"})])
    with sync_client(api) as client:
        assert client.check_health() is True
        with pytest.raises(NotFoundError, match="nope"):
            client.read_work_pool("missing")


async def test_a_sync_call_from_inside_a_running_event_loop_does_not_deadlock() -> None:
    api = ScriptedApi([answer(200, {"status": "ok"})])
    with sync_client(api) as client:
        assert asyncio.get_running_loop().is_running()
        assert client.check_health() is True


def test_sync_iteration_fetches_pages_lazily_as_the_caller_iterates() -> None:
    first, second = [uuid.uuid4(), uuid.uuid4()], [uuid.uuid4()]
    api = ScriptedApi([answer(200, run_page(first, "c1")), answer(200, run_page(second, None))])
    with sync_client(api) as client:
        runs = client.iter_flow_runs(page_size=2)
        head = next(iter(runs))
        assert len(api.requests) == 1
        rest = list(runs)
    assert [head.id, *(r.id for r in rest)] == [*first, *second]
    assert all(r.state_type is StateType.SCHEDULED for r in rest)
    assert api.requests[1].url.params["cursor"] == "c1"


def test_abandoning_a_sync_iterator_early_closes_it_on_the_clients_loop() -> None:
    api = ScriptedApi([answer(200, run_page([uuid.uuid4(), uuid.uuid4()], "more"))])
    with sync_client(api) as client:
        runs = client.iter_flow_runs(page_size=2)
        next(runs)
        assert isinstance(runs, Generator)
        runs.close()
        assert len(api.requests) == 1


def test_the_client_refuses_calls_from_its_own_loop_instead_of_deadlocking() -> None:
    api = ScriptedApi([answer(200, {"status": "ok"})])
    with sync_client(api) as client:
        client.check_health()
        loop = client._loop.loop  # the private loop, reached only to prove the guard

        async def call_from_inside() -> bool:
            return client.check_health()

        future = asyncio.run_coroutine_threadsafe(call_from_inside(), loop)
        with pytest.raises(ClientError, match="cannot be called from its own event loop"):
            future.result(timeout=10)


def test_a_closed_client_says_so_and_its_thread_is_gone() -> None:
    client = sync_client(ScriptedApi([answer(200, {"status": "ok"})]))
    client.check_health()
    threads_before = {t.name for t in threading.enumerate()}
    assert "flowyard-client" in threads_before
    client.close()
    client.close()  # idempotent
    with pytest.raises(ClientError, match="closed"):
        client.check_health()
    assert client._loop.loop.is_closed()


def test_sync_client_is_the_generated_class_over_the_shared_machinery() -> None:
    assert issubclass(SyncClient, SyncClientBase)
    assert "fy_k" not in repr(sync_client(ScriptedApi([])))


class Interrupted(Exception):
    """Stands in for KeyboardInterrupt, which would also stop the test session."""


def test_an_interrupt_before_the_wait_begins_still_cancels_the_abandoned_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flowyard.client import _loop

    entered = threading.Event()
    cancelled = threading.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if entered.is_set():
            return httpx.Response(200, json={"status": "ok"})
        entered.set()
        try:
            await asyncio.Event().wait()  # a server that never answers
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    schedule = asyncio.run_coroutine_threadsafe
    interrupt_next_step = [True]

    def scheduled_then_interrupted(coro: object, loop: asyncio.AbstractEventLoop) -> object:
        future = schedule(coro, loop)  # type: ignore[arg-type]
        if interrupt_next_step[0] and getattr(coro, "__name__", "") == "_next":
            interrupt_next_step[0] = False
            assert entered.wait(10)
            raise Interrupted  # Ctrl-C lands before the caller holds the future
        return future

    monkeypatch.setattr(_loop.asyncio, "run_coroutine_threadsafe", scheduled_then_interrupted)
    with SyncClient("http://api.test/api", transport=httpx.MockTransport(handler)) as client:
        runs = client.iter_flow_runs()
        with pytest.raises(Interrupted):
            next(runs)
        assert cancelled.wait(10)  # the step still in flight was cancelled, not left running
        assert client.check_health() is True


def test_an_interrupt_while_waiting_cancels_the_request_and_leaves_the_client_usable() -> None:
    entered = threading.Event()
    cancelled = threading.Event()
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls > 1:
            return httpx.Response(200, json={"status": "ok"})
        entered.set()
        try:
            await asyncio.Event().wait()  # a server that never answers
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    def send_interrupt_once_waiting() -> None:
        if entered.wait(10):
            os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        with SyncClient("http://api.test/api", transport=httpx.MockTransport(handler)) as client:
            threading.Thread(target=send_interrupt_once_waiting).start()
            runs = client.iter_flow_runs()
            with pytest.raises(Interrupted):
                next(runs)
            assert cancelled.wait(10)
            assert client.check_health() is True
    finally:
        signal.signal(signal.SIGINT, previous)
