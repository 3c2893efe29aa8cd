"""A real server and flow runs that try to get out of their sandbox.

One ``flowyard server start`` for the session: SQLite, the managed dispatcher,
strict isolation, and its egress proxy allowing one "remote" service (an HTTP
server on the host's loopback, named by IP as an operator would). Each test
runs a flow of ``project/flows/tries.py`` from a local source with its own job
variables, and reads how the run ended and what it printed.

Without bubblewrap, cgroups, loop devices or root these tests skip with the
reason (and fail when ``CI`` is set).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from flowyard.client import SyncClient, get_sync_client
from flowyard.execution.host import probe_host
from flowyard.schemas import deployments as dep
from flowyard.schemas import flow_runs as fr
from flowyard.schemas import work_pools as wp
from tests.acceptance.server_process import ServerProcess, running_server
from tests.conftest import missing_feature

PROJECT = Path(__file__).parent / "project"
POOL = "isolated"
ENDED = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
# The pipeline's last line on every run: after it, the run's logs are complete.
LAST_LINE = "compute released after"


@dataclass
class RemoteService:
    """Stands in for a host on the internet that the operator allowed."""

    port: int
    paths: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def remote() -> Iterator[RemoteService]:
    service = RemoteService(0)

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            service.paths.append(self.path)
            body = b"hello from the allowed host"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    service.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield service
    httpd.shutdown()
    httpd.server_close()


@dataclass(frozen=True)
class Ended:
    """A finished run and every line it logged."""

    run: fr.FlowRun
    log: str

    @property
    def state(self) -> str:
        return self.run.state_type.value


@dataclass
class Server:
    process: ServerProcess
    home: Path
    api: SyncClient

    @property
    def port(self) -> int:
        port = urlsplit(self.process.url).port
        assert port is not None
        return port

    def start(self, flow: str, parameters: dict[str, Any], **job_variables: Any) -> fr.FlowRun:
        """A run of ``flows/tries.py:<flow>`` with these job variables."""
        deployment = self.api.upsert_deployment(
            dep.DeploymentCreate(
                flow_name=flow.replace("_", "-"),
                name="tries",
                work_pool_name=POOL,
                source=dep.LocalSourceSpec(path=str(PROJECT)),
                entrypoint=f"flows/tries.py:{flow}",
            )
        )
        return self.api.create_flow_run(
            deployment.id, fr.FlowRunCreate(parameters=parameters, job_variables=job_variables)
        )

    def wait(self, run: fr.FlowRun, timeout: float = 120) -> Ended:
        """The run once it ended and the pipeline wrote its last line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self.api.read_flow_run(run.id)
            if current.state_type.value in ENDED:
                log = "\n".join(line.message for line in self.api.iter_logs(run.id))
                if LAST_LINE in log:
                    return Ended(current, log)
            time.sleep(0.1)
        raise AssertionError(f"run {run.id} did not end in {timeout} s:\n{self.process.log()}")

    def run(self, flow: str, parameters: dict[str, Any], **job_variables: Any) -> Ended:
        return self.wait(self.start(flow, parameters, **job_variables))


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, remote: RemoteService) -> Iterator[Server]:
    found = probe_host()
    if found.missing():
        missing_feature("strict sandbox unavailable: " + "; ".join(found.missing()))
    home = tmp_path_factory.mktemp("isolation-runs") / "home"
    env = {
        "FLOWYARD_ALLOW_LOCAL_SOURCES": "true",
        "FLOWYARD_EGRESS_ALLOW": json.dumps([f"127.0.0.1:{remote.port}"]),
    }
    with (
        running_server(home, env=env) as process,
        get_sync_client(home=home, required=True) as api,
    ):
        api.create_work_pool(wp.WorkPoolCreate(name=POOL, type=wp.WorkPoolType.MANAGED))
        yield Server(process, home, api)
        assert process.process.poll() is None, "the server stayed up through every run"
