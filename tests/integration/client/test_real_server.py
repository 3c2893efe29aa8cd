"""The client against a real ``flowyard server start`` process: TCP, the unix socket,
the credentials file it writes, and what happens when no server is there."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flowyard.client import (
    FlowyardClient,
    LogReceived,
    NotConfigured,
    ServerUnavailable,
    StateChanged,
    SyncClient,
    get_client,
    get_sync_client,
    resolve_config,
)
from flowyard.schemas import deployments as dep
from flowyard.schemas import flow_runs as fr
from flowyard.schemas import logs as lg
from flowyard.schemas import work_pools as wp
from flowyard.schemas.states import StateCreate, StateType
from flowyard.settings import Settings
from tests.acceptance.server_process import ServerProcess, free_port, running_server


@pytest.fixture(scope="module")
def server_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server") / "home"


@pytest.fixture(scope="module")
def server(server_home: Path) -> Iterator[ServerProcess]:
    with running_server(server_home, "--no-dispatcher") as process:
        yield process


def test_a_sync_client_finds_the_local_server_through_its_credentials_file(
    server: ServerProcess, server_home: Path
) -> None:
    config = resolve_config(home=server_home, env={})
    assert config is not None
    assert config.api_url == f"{server.url}/api"
    assert "credentials file" in config.source
    with get_sync_client(home=server_home, required=True) as client:
        me = client.read_me()
    assert me.is_admin
    assert me.workspace.name == "default"


async def test_a_sync_client_works_from_inside_a_running_event_loop(
    server: ServerProcess, server_home: Path
) -> None:
    with get_sync_client(home=server_home, required=True) as client:
        pool = client.create_work_pool(wp.WorkPoolCreate(name="sync-pool"))
        deployment = client.upsert_deployment(
            dep.DeploymentCreate(
                flow_name="etl",
                name="sync",
                entrypoint="flows/etl.py:etl",
                work_pool_name=pool.name,
                source=dep.GitSourceSpec(url="https://example.com/org/repo.git"),
            )
        )
        runs = [client.create_flow_run(deployment.id, fr.FlowRunCreate()) for _ in range(3)]
        listed = list(client.iter_flow_runs(page_size=2))
        assert client.read_deployment_by_name("etl/sync").id == deployment.id
    assert {r.id for r in runs} <= {r.id for r in listed}


async def test_the_async_client_and_a_sync_client_share_one_server_at_once(
    server: ServerProcess, server_home: Path
) -> None:
    async with get_client(home=server_home, required=True) as async_client:
        with get_sync_client(home=server_home, required=True) as sync_client:
            assert (await async_client.read_me()).workspace.id == sync_client.read_me().workspace.id


def test_a_sync_client_follows_a_live_run_until_it_finishes(
    server: ServerProcess, server_home: Path
) -> None:
    def line(run: fr.FlowRun, message: str) -> lg.LogCreate:
        return lg.LogCreate(
            flow_run_id=run.id, level=20, message=message, timestamp=datetime.now(UTC)
        )

    first_seen = threading.Event()
    with get_sync_client(home=server_home, required=True) as client:
        run = client.create_ad_hoc_flow_run(fr.AdHocFlowRunCreate(flow_name="live"))
        client.write_logs([line(run, "started")])

        def finish_the_run() -> None:
            # Another client, another thread, like a runner reporting from elsewhere.
            with get_sync_client(home=server_home, required=True) as runner:
                first_seen.wait(20)
                runner.write_logs([line(run, "working"), line(run, "done")])
                runner.set_flow_run_state(run.id, StateCreate(type=StateType.COMPLETED))

        writer = threading.Thread(target=finish_the_run)
        writer.start()
        events = []
        for event in client.follow_logs(run.id):
            events.append(event)
            if isinstance(event, LogReceived):
                first_seen.set()
        writer.join(20)
    assert [e.log.message for e in events if isinstance(e, LogReceived)] == [
        "started",
        "working",
        "done",
    ]
    assert [e.type for e in events if isinstance(e, StateChanged)][-1] is StateType.COMPLETED


def test_the_api_is_reached_through_its_unix_socket(
    server: ServerProcess, server_home: Path
) -> None:
    config = resolve_config(home=server_home, env={})
    assert config is not None
    socket_path = Settings(home=server_home).effective_api_socket
    with SyncClient(f"unix://{socket_path}", config.api_key) as client:
        assert client.check_health()
        assert client.read_me().is_admin
    with SyncClient(config.api_url, config.api_key, uds=str(socket_path)) as client:
        assert client.read_version()["database"] == "sqlite"


def test_nothing_configured_means_no_client_or_a_message_on_how_to_configure_one(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty"
    assert get_sync_client(home=empty) is None
    assert get_client(home=empty) is None
    with pytest.raises(NotConfigured, match="`flowyard server start`"):
        get_sync_client(home=empty, required=True)


def test_a_sync_client_with_no_server_listening_names_the_url_and_how_to_start_one() -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    with SyncClient(url, "fy_k") as client, pytest.raises(ServerUnavailable) as raised:
        client.read_me()
    message = str(raised.value)
    assert url in message
    assert "connection refused" in message
    assert "start a server with `flowyard server start`" in message


async def test_an_async_client_with_a_missing_socket_names_the_socket() -> None:
    async with FlowyardClient("unix:///nonexistent/flowyard/api.sock") as client:
        with pytest.raises(ServerUnavailable, match=r"unix:///nonexistent/flowyard/api\.sock"):
            await client.check_health()
