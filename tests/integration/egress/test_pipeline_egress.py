"""How the pipeline wires a run's ``network`` job variable to the egress proxy.

Sources and environments (real uv) are real; the sandbox is scripted, so what
is checked here is the spec the pipeline asks for and what the run is told.
Runs that really go out are in ``test_runs_through_the_proxy`` and
``tests/integration/isolation_runs``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from flowyard.execution.egress import AllowList, EgressProxy
from flowyard.execution.environments import EnvironmentBuilder, RuntimeRegistry
from flowyard.execution.jobs import RunJob
from flowyard.execution.pipeline import ExecutionConfig, RunPipeline
from flowyard.execution.sandbox import Ending, NetworkMode, SandboxResult
from flowyard.schemas.states import StateType
from flowyard.testing import FakeRecorder, FakeSandbox


@pytest.fixture(scope="module")
def builder(tmp_path_factory: pytest.TempPathFactory) -> EnvironmentBuilder:
    return EnvironmentBuilder(tmp_path_factory.mktemp("envs"))


def _job(tmp_path: Path, **job_variables: Any) -> RunJob:
    project = tmp_path / "project"
    (project / "flows").mkdir(parents=True, exist_ok=True)
    (project / "flows" / "etl.py").write_text(
        "from flowyard import flow\n\n@flow\ndef etl(): pass\n"
    )
    return RunJob(
        run_id=uuid.uuid4(),
        workspace_id=uuid.uuid4(),
        flow_name="etl",
        deployment_name="daily",
        entrypoint="flows/etl.py:etl",
        source={"kind": "local", "path": str(project)},
        job_variables={
            "max_run_seconds": 60,
            "memory_gib": 1.0,
            "storage_gib": 1.0,
            **job_variables,
        },
        isolation="none",
    )


def _pipeline(
    tmp_path: Path, builder: EnvironmentBuilder, sandbox: FakeSandbox, recorder: FakeRecorder,
    egress: EgressProxy | None,
) -> RunPipeline:  # fmt: skip
    config = ExecutionConfig(
        cache_dir=tmp_path / "cache", api_socket=tmp_path / "api.sock", allow_local_sources=True
    )
    return RunPipeline(
        config, recorder, lambda _isolation: sandbox, builder, RuntimeRegistry.from_settings({}),
        egress=egress,
    )  # fmt: skip


def _exited(code: int) -> SandboxResult:
    return SandboxResult(
        run_id="x", ending=Ending.EXITED, exit_code=code, signal=None, peak_memory_bytes=0,
        cpu_seconds=0.0, peak_storage_bytes=0, wall_seconds=0.1, crash_reason=None,
    )  # fmt: skip


async def test_an_egress_run_is_bound_to_the_proxy_and_its_http_clients_pointed_at_it(
    tmp_path: Path, builder: EnvironmentBuilder
) -> None:
    proxy = EgressProxy(tmp_path / "egress.sock", AllowList.parse(["api.example.com"]))
    await proxy.start()
    sandbox, recorder = FakeSandbox(tmp_path / "sb"), FakeRecorder()
    job = _job(tmp_path, network="egress", env={"https_proxy": "http://mine:8080"})
    sandbox.script(job.run_id.hex, _exited(0))
    recorder.current[job.run_id] = StateType.COMPLETED
    try:
        await _pipeline(tmp_path, builder, sandbox, recorder, proxy).execute(job)
    finally:
        await proxy.close()
    (spec,) = sandbox.started
    assert spec.network is NetworkMode.EGRESS
    assert spec.egress_proxy_socket == proxy.socket_path
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy"):
        assert spec.env[name] == "{egress_proxy}"
    assert spec.env["https_proxy"] == "http://mine:8080"  # the run's own setting wins
    assert spec.env["NO_PROXY"] == spec.env["no_proxy"] == "localhost,127.0.0.1,::1"
    messages = recorder.messages(job.run_id)
    assert "network: egress through the server's proxy; allowed: api.example.com; " in "\n".join(messages)  # fmt: skip
    assert "egress: 0 connections, 0 B sent, 0 B received" in messages


async def test_a_run_without_egress_gets_no_proxy(
    tmp_path: Path, builder: EnvironmentBuilder
) -> None:
    sandbox, recorder = FakeSandbox(tmp_path / "sb"), FakeRecorder()
    job = _job(tmp_path)
    sandbox.script(job.run_id.hex, _exited(0))
    recorder.current[job.run_id] = StateType.COMPLETED
    proxy = EgressProxy(tmp_path / "egress.sock", AllowList.parse([]))
    await _pipeline(tmp_path, builder, sandbox, recorder, proxy).execute(job)
    (spec,) = sandbox.started
    assert (spec.network, spec.egress_proxy_socket) == (NetworkMode.NONE, None)
    assert not {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"} & set(spec.env)
    assert not any(m.startswith(("network:", "egress:")) for m in recorder.messages(job.run_id))


async def test_an_egress_run_on_a_server_without_the_proxy_crashes_saying_so(
    tmp_path: Path, builder: EnvironmentBuilder
) -> None:
    sandbox, recorder = FakeSandbox(tmp_path / "sb"), FakeRecorder()
    job = _job(tmp_path, network="egress")
    await _pipeline(tmp_path, builder, sandbox, recorder, None).execute(job)
    final = recorder.final(job.run_id)
    assert final.type is StateType.CRASHED
    assert final.message == (
        "network 'egress' is unavailable: this server's egress proxy is not running "
        "(its log says why)"
    )
    assert sandbox.started == []
