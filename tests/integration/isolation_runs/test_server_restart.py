"""A server killed during a run loses nothing: the next one adopts the run and sees it end."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from flowyard.client import SyncClient, get_sync_client
from flowyard.execution.host import probe_host
from flowyard.execution.sandbox import LocalSandbox
from flowyard.schemas import deployments as dep
from flowyard.schemas import flow_runs as fr
from flowyard.schemas import work_pools as wp
from tests.acceptance.server_process import running_server
from tests.conftest import missing_feature
from tests.integration.isolation_runs.conftest import ENDED, LAST_LINE, PROJECT

pytestmark = pytest.mark.sandbox

ENV = {"FLOWYARD_ALLOW_LOCAL_SOURCES": "true"}
TICKS = 12  # half a second each


def _logs(api: SyncClient, run_id: uuid.UUID) -> str:
    return "\n".join(line.message for line in api.iter_logs(run_id))


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "stopped"])
def test_a_run_outlives_its_server_and_the_next_server_sees_it_complete(
    tmp_path: Path, how: signal.Signals
) -> None:
    if probe_host().missing():
        missing_feature("strict sandbox unavailable")
    home = tmp_path / "home"
    try:
        _kill_and_restart(home, how)
    finally:
        _stop_leftover_runs(home)


def _stop_leftover_runs(home: Path) -> None:
    """A stopped server leaves its runs going, by design: a failed test must not."""
    state = home / "cache" / "sandbox-strict"
    if (state / "runs").is_dir():
        sandbox = LocalSandbox(state)
        sandbox.release_unadopted()
        sandbox.close()


def _kill_and_restart(home: Path, how: signal.Signals) -> None:
    with running_server(home, env=ENV) as first, get_sync_client(home=home, required=True) as api:
        api.create_work_pool(wp.WorkPoolCreate(name="p", type=wp.WorkPoolType.MANAGED))
        deployment = api.upsert_deployment(
            dep.DeploymentCreate(
                flow_name="ticks",
                name="restart",
                work_pool_name="p",
                source=dep.LocalSourceSpec(path=str(PROJECT)),
                entrypoint="flows/tries.py:ticks",
            )
        )
        run = api.create_flow_run(
            deployment.id,
            fr.FlowRunCreate(
                parameters={"count": TICKS},
                job_variables={"memory_gib": 0.5, "storage_gib": 0.0625, "max_run_seconds": 120},
            ),
        )
        deadline = time.monotonic() + 60
        while "tick 1" not in _logs(api, run.id):
            assert time.monotonic() < deadline, first.log()
            time.sleep(0.1)
        first.stop(how)
    time.sleep(1.5)  # the run goes on printing with no server to hear it

    port = urlsplit(first.url).port  # where its clients know to find it
    with (
        running_server(home, env=ENV, port=port) as second,
        get_sync_client(home=home, required=True) as api,
    ):
        deadline = time.monotonic() + 90
        while True:
            ended = api.read_flow_run(run.id)
            # Teardown (compute closed) follows the runner's final state by a moment.
            done = ended.state_type.value in ENDED and ended.compute_seconds is not None
            if done and LAST_LINE in _logs(api, run.id):
                break
            assert time.monotonic() < deadline, second.log()
            time.sleep(0.2)
        log = _logs(api, run.id)
        assert ended.state_type.value == "COMPLETED", log
        assert ended.crash_reason is None
        for i in range(TICKS):  # nothing printed while no server listened is lost
            assert f"tick {i}" in log, log
        assert "the server restarted; supervising the run again" in log
        assert ended.compute_seconds is not None
        assert ended.compute_seconds >= TICKS * 0.5
        assert "adopted from a previous server" in second.log()
