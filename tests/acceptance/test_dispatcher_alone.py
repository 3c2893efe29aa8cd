"""`flowyard dispatcher` alone runs the managed runs of a server started without one."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from flowyard.client import get_sync_client
from flowyard.execution.host import probe_host
from flowyard.schemas import deployments as dep
from flowyard.schemas import flow_runs as fr
from flowyard.schemas import work_pools as wp
from tests.acceptance.git_server import GitRemote, serve_directory
from tests.acceptance.server_process import FLOWYARD, running_server
from tests.conftest import missing_feature

FLOW = "from flowyard import flow\n\n@flow(name='hello')\ndef hello(n: int = 1) -> int:\n    return n\n"


def test_a_separate_dispatcher_process_runs_the_servers_managed_runs(tmp_path: Path) -> None:
    found = probe_host()
    if found.missing():
        missing_feature("strict sandbox unavailable: " + "; ".join(found.missing()))
    (tmp_path / "git").mkdir()
    remote = GitRemote(tmp_path / "git", "flows")
    commit = remote.commit({"flows/hello.py": FLOW})
    home = tmp_path / "server-home"
    with (
        serve_directory(tmp_path / "git") as base,
        running_server(home, "--no-dispatcher") as server,
        get_sync_client(home=home, required=True) as api,
    ):
        del server
        api.create_work_pool(wp.WorkPoolCreate(name="pool", type=wp.WorkPoolType.MANAGED))
        deployment = api.upsert_deployment(
            dep.DeploymentCreate(
                flow_name="hello",
                name="alone",
                work_pool_name="pool",
                source=dep.GitSourceSpec(url=f"{base}/flows.git", branch="main"),
                entrypoint="flows/hello.py:hello",
            )
        )
        run = api.create_flow_run(deployment.id, fr.FlowRunCreate(parameters={"n": 7}))
        time.sleep(1)
        assert api.read_flow_run(run.id).state_type.value == "SCHEDULED"  # nobody dispatches

        log = (tmp_path / "dispatcher.log").open("wb")
        dispatcher = subprocess.Popen(
            [FLOWYARD, "dispatcher", "--database-url", f"sqlite+aiosqlite:///{home}/flowyard.db"],
            env={**os.environ, "FLOWYARD_HOME": str(tmp_path / "dispatcher-home")},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                current = api.read_flow_run(run.id)
                if current.state_type.value in ("COMPLETED", "FAILED", "CRASHED"):
                    break
                time.sleep(0.2)
            assert current.state_type.value == "COMPLETED", (
                current.state_message + (tmp_path / "dispatcher.log").read_text()
            )
            assert current.resolved_commit == commit
            assert (home / "api.sock").exists()  # the server's own socket is untouched
        finally:
            dispatcher.send_signal(signal.SIGTERM)
            assert dispatcher.wait(30) == 0
            log.close()
