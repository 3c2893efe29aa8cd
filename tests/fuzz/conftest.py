"""The real API served over HTTP on SQLite, with a few rows to aim requests at.

Each fuzzed operation gets its own database (a copy of the migrated
template), its own app and its own seeded rows, so an operation's result
does not depend on which others ran before it and ``-k`` reproduces a CI
failure exactly.

One uvicorn server per module, on a loopback port in a thread of its own,
serves whichever test's app is mounted: the fuzzer is synchronous (Hypothesis
drives it), and a real server over HTTP is what a client talks to.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from flowyard.schemas import deployments as dep
from flowyard.schemas import flow_runs as fr
from flowyard.schemas import logs as lg
from flowyard.schemas import task_runs as tr
from flowyard.schemas import variables as var
from flowyard.schemas import work_pools as wp
from flowyard.schemas.states import StateType
from flowyard.server.app import create_app
from flowyard.server.context import ServerContext
from flowyard.server.ops import (
    auth,
    deployments,
    flow_runs,
    logs,
    results,
    secrets,
    task_runs,
    variables,
    work_pools,
    workspaces,
)
from flowyard.settings import Settings
from tests.conftest import _truncate_all, run_blocking

# The API tests' fixtures: settings, a server context on the `db` fixture, an admin key.
from tests.integration.api.conftest import admin_key, ctx, settings  # noqa: F401


@pytest.fixture
def database_url(request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path) -> str:
    """SQLite: the suite's budget is spent on requests, not on a second dialect.

    FLOWYARD_FUZZ_POSTGRES=1 fuzzes on PostgreSQL instead (a deeper local hunt).
    """
    if os.environ.get("FLOWYARD_FUZZ_POSTGRES"):
        url: str = request.getfixturevalue("postgres_url")
        run_blocking(_truncate_all(url))
        return url
    target = tmp_path / "fuzz.db"
    shutil.copyfile(sqlite_template, target)
    return f"sqlite+aiosqlite:///{target}"


@dataclass(frozen=True)
class Seeded:
    """Rows that exist before fuzzing starts, and a token for the run."""

    pool: str
    flow_name: str
    deployment_name: str
    deployment_id: str
    run_id: str
    task_run_id: str
    variable: str
    secret: str
    result_key: str
    spare_key_id: str
    run_token: str


@pytest.fixture
async def seeded(ctx: ServerContext, admin_key: str) -> Seeded:  # noqa: F811
    """A pool, a deployment, a scheduled run with a task run and a log line, a
    variable, a secret, a result and a spare API key.

    Written by the ops layer in one transaction: through the API it would be a
    dozen requests for every fuzzed operation.
    """
    now = datetime.now(UTC)
    async with ctx.db.session() as session:
        admin = await auth.authenticate(session, ctx.keys, f"Bearer {admin_key}")
        await work_pools.create_work_pool(session, admin, wp.WorkPoolCreate(name="pool"))
        deployment = await deployments.upsert_deployment(
            session,
            admin,
            dep.DeploymentCreate(
                flow_name="etl",
                name="daily",
                entrypoint="flows/etl.py:etl",
                source=dep.GitSourceSpec(url="https://example.com/org/repo.git"),
                work_pool_name="pool",
                parameter_schema={"type": "object", "properties": {"n": {"type": "integer"}}},
            ),
        )
        run, _ = await flow_runs.create_flow_run(
            session, admin, deployment.id, fr.FlowRunCreate(parameters={"n": 1})
        )
        task_run_id = uuid.uuid4()
        await task_runs.upsert_task_runs(
            session,
            admin,
            tr.TaskRunBatch(
                task_runs=[
                    tr.TaskRunUpsert(
                        id=task_run_id,
                        flow_run_id=run.id,
                        name="extract",
                        state_type=StateType.RUNNING,
                        timestamp=now,
                    )
                ]
            ),
        )
        line = lg.LogCreate(flow_run_id=run.id, level=20, message="started", timestamp=now)
        await logs.write_logs(session, admin, lg.LogBatch(logs=[line]))
        await variables.set_variable(session, admin, "threshold", var.VariableSet(value=3))
        await secrets.set_secret(session, admin, ctx.keys, "token", var.SecretSet(value="x"))
        await results.put_result(
            session,
            admin,
            "etl/extract/1",
            b"\x80\x04K\x01.",
            max_bytes=ctx.settings.result_max_bytes,
            quota_bytes=ctx.settings.results_quota_bytes,
        )
        spare, _ = await workspaces.create_api_key(session, admin.workspace_id, "spare")
    return Seeded(
        pool="pool",
        flow_name="etl",
        deployment_name="daily",
        deployment_id=str(deployment.id),
        run_id=str(run.id),
        task_run_id=str(task_run_id),
        variable="threshold",
        secret="token",
        result_key="etl/extract/1",
        spare_key_id=str(spare.id),
        run_token=auth.issue_run_token(ctx.keys, run.id),
    )


class _Mount:
    """What the shared server serves: the app of the test that is running."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            raise RuntimeError("a request reached the fuzz server between tests")
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class _Server:
    url: str
    mount: _Mount
    loop: asyncio.AbstractEventLoop


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    """uvicorn on a free loopback port, on its own loop in its own thread, for the module.

    Starting and stopping a server per operation would cost more than
    fuzzing some of them; each test mounts its own app instead.
    """
    mount = _Mount()
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY on accepted connections
    # only then; without it every keep-alive answer waits ~40 ms on Nagle.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(mount, lifespan="off", log_level="warning", ws="none", http="h11")
    uv = uvicorn.Server(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(uv.serve(sockets=[sock]),), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("the fuzz server did not start")
        time.sleep(0.01)
    try:
        yield _Server(f"http://127.0.0.1:{port}", mount, loop)
    finally:
        uv.should_exit = True
        thread.join(30)
        loop.close()
        sock.close()


@pytest.fixture
async def live_url(
    server: _Server,
    ctx: ServerContext,  # noqa: F811
    settings: Settings,  # noqa: F811
    seeded: Seeded,
) -> AsyncIterator[str]:
    """The real app on this test's database and settings, with the seeded rows,
    served over HTTP.

    A database connection belongs to the loop that opened it, so the pool is
    emptied here (the fixtures' loop) before the server's loop takes over,
    and emptied there before the fixtures close the database.
    """
    await ctx.db.dispose()
    app = create_app(settings, context=ctx)
    app.state.ctx = ctx
    server.mount.app = app
    try:
        yield server.url
    finally:
        server.mount.app = None
        done = asyncio.run_coroutine_threadsafe(ctx.db.dispose(), server.loop)
        await asyncio.wrap_future(done)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each fuzzed operation its own node id.

    schemathesis names an operation's test ``test_x[GET /api/...]``, but
    pytest 9.2 builds a test's node id from its original name and its
    parametrize ids, so all of a schema's tests share one id: ``-ra``, ``--lf``
    and JUnit reports could not tell them apart. Remove once schemathesis
    passes the operation as a parameter id.
    """
    for item in items:
        label = getattr(item, "operation_label", None)
        node_id = getattr(item, "_id", None)
        if label is None or node_id is None or getattr(node_id, "params", "") is not None:
            continue
        item._id = node_id.with_params(label)
