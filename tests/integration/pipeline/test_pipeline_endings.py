"""Each ending of a managed run, through the real pipeline with a scripted sandbox.

Sources (a local directory), pull steps and environments (real uv) are real;
the sandbox is scripted so each infrastructure ending can be produced on demand.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from flowyard.execution.environments import EnvironmentBuilder, RuntimeRegistry
from flowyard.execution.jobs import RunJob
from flowyard.execution.pipeline import ExecutionConfig, RunPipeline
from flowyard.execution.sandbox import Ending, SandboxResult
from flowyard.schemas.states import StateType
from flowyard.testing import FakeRecorder, FakeSandbox


@pytest.fixture(scope="module")
def builder(tmp_path_factory: pytest.TempPathFactory) -> EnvironmentBuilder:
    return EnvironmentBuilder(tmp_path_factory.mktemp("envs"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "flows").mkdir(parents=True)
    (root / "flows" / "etl.py").write_text(
        "from flowyard import flow\n\n@flow\ndef etl(n: int = 1) -> int:\n    return n\n"
    )
    return root


def _job(project: Path, **overrides: Any) -> RunJob:
    fields: dict[str, Any] = {
        "run_id": uuid.uuid4(),
        "workspace_id": uuid.uuid4(),
        "flow_name": "etl",
        "deployment_name": "daily",
        "entrypoint": "flows/etl.py:etl",
        "source": {"kind": "local", "path": str(project)},
        "job_variables": {"max_run_seconds": 60, "memory_gib": 1.0, "storage_gib": 1.0},
        "isolation": "none",
    }
    fields.update(overrides)
    return RunJob(**fields)


def _pipeline(
    tmp_path: Path, builder: EnvironmentBuilder, sandbox: FakeSandbox, recorder: FakeRecorder
) -> RunPipeline:
    config = ExecutionConfig(
        cache_dir=tmp_path / "cache",
        api_socket=tmp_path / "api.sock",
        allow_local_sources=True,
        cancel_poll_seconds=0.05,
    )
    return RunPipeline(
        config, recorder, lambda _isolation: sandbox, builder, RuntimeRegistry.from_settings({})
    )


def _result(ending: Ending, reason: str | None, **extra: Any) -> SandboxResult:
    fields: Mapping[str, Any] = {
        "run_id": "x",
        "ending": ending,
        "exit_code": None,
        "signal": None,
        "peak_memory_bytes": 10 * 1024**2,
        "cpu_seconds": 0.1,
        "peak_storage_bytes": 4096,
        "wall_seconds": 0.1,
        "crash_reason": reason,
        **extra,
    }
    return SandboxResult(**fields)


@pytest.mark.parametrize(
    ("ending", "reason", "extra"),
    [
        (Ending.SIGNALED, "killed by signal 9 (SIGKILL)", {"signal": 9}),
        (Ending.OUT_OF_MEMORY, "out of memory: limit 1 GiB reached (peak 1 GiB)", {}),
        (Ending.TIMED_OUT, "exceeded the maximum run time of 1m", {}),
        (Ending.EXITED, "exited with code 3", {"exit_code": 3}),
    ],
)
async def test_a_process_that_dies_without_a_final_state_is_crashed_with_the_reason(
    tmp_path: Path,
    builder: EnvironmentBuilder,
    project: Path,
    ending: Ending,
    reason: str,
    extra: dict[str, Any],
) -> None:
    sandbox, recorder = FakeSandbox(tmp_path / "sb"), FakeRecorder()
    job = _job(project)
    sandbox.script(job.run_id.hex, _result(ending, reason, output_tail="Traceback: boom", **extra))
    await _pipeline(tmp_path, builder, sandbox, recorder).execute(job)
    final = recorder.final(job.run_id)
    assert (final.type, final.message) == (StateType.CRASHED, reason)
    _, report, teardown = recorder.reports[-1]
    assert teardown, "teardown closes the usage record"
    assert report.crash_reason == reason
    assert report.peak_memory_bytes == 10 * 1024**2
    assert any("Traceback: boom" in m for m in recorder.messages(job.run_id))


async def test_pending_stages_are_logged_with_durations(
    tmp_path: Path, builder: EnvironmentBuilder, project: Path
) -> None:
    sandbox, recorder = FakeSandbox(tmp_path / "sb"), FakeRecorder()
    job = _job(project)
    sandbox.script(job.run_id.hex, _result(Ending.EXITED, None, exit_code=0))
    recorder.current[job.run_id] = StateType.COMPLETED  # the runner reported its end
    await _pipeline(tmp_path, builder, sandbox, recorder).execute(job)
    messages = recorder.messages(job.run_id)
    assert messages[0] == "preparing compute for etl/daily"
    assert any(m.startswith(("environment ready", "installed")) for m in messages)
    assert any(m.startswith("sandbox started in") for m in messages)
    assert messages[-1].startswith("compute released after")
    assert job.run_id not in recorder.states  # a finished run is not touched


async def test_a_cancel_request_stops_the_sandbox_and_ends_cancelled(
    tmp_path: Path, builder: EnvironmentBuilder, project: Path
) -> None:
    sandbox, recorder = FakeSandbox(tmp_path / "sb"), FakeRecorder()
    job = _job(project)
    sandbox.script(job.run_id.hex, _result(Ending.EXITED, None, exit_code=0), duration=30)
    recorder.current[job.run_id] = StateType.RUNNING
    pipeline = _pipeline(tmp_path, builder, sandbox, recorder)
    task = asyncio.create_task(pipeline.execute(job))
    await asyncio.sleep(0.3)
    recorder.current[job.run_id] = StateType.CANCELLING
    await asyncio.wait_for(task, 10)
    assert recorder.final(job.run_id).type is StateType.CANCELLED
    assert "cancel requested: stopping the run's processes" in recorder.messages(job.run_id)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"entrypoint": "flows/missing.py:etl"}, "entrypoint 'flows/missing.py:etl'"),
        (
            {"job_variables": {"pip_packages": ["surely-no-such-package-flowyard-xyz"]}},
            "environment build failed",
        ),
        ({"job_variables": {"runtime": "cobol-85"}}, "cobol-85"),
        ({"job_variables": {"requirements_file": "../../etc/passwd"}}, "requirements file"),
        (
            {
                "pull_steps": [
                    {"flowyard.deployments.steps.run_shell_script": {"script": "rm -rf /"}}
                ]
            },
            "run_shell_script",
        ),
        ({"source": {"kind": "git", "url": "ext::sh -c id"}}, "source:"),
        (
            {
                "source": {
                    "kind": "git",
                    "url": "https://git.example.invalid/org/private.git",
                    "credentials_secret": "github-token",
                }
            },
            "secret 'github-token' does not exist in this workspace",
        ),
        (
            {
                "source": {
                    "kind": "storage",
                    "url": "s3://bucket/flows",
                    "credentials_secret": "not-json",
                }
            },
            "must hold a JSON object of storage options",
        ),
    ],
)
async def test_bad_input_fails_the_run_with_a_clear_message_before_any_sandbox(
    tmp_path: Path,
    builder: EnvironmentBuilder,
    project: Path,
    overrides: dict[str, Any],
    words: str,
) -> None:
    sandbox, recorder = FakeSandbox(tmp_path / "sb"), FakeRecorder()
    recorder.secrets["not-json"] = "hunter2"
    job = _job(project, **overrides)
    await _pipeline(tmp_path, builder, sandbox, recorder).execute(job)
    final = recorder.final(job.run_id)
    assert final.type is StateType.FAILED
    assert "hunter2" not in final.message
    assert words in final.message
    assert sandbox.started == []
    assert recorder.reports[-1][2] is True  # compute closed even when nothing started


async def test_isolation_unavailable_crashes_the_run_saying_what_is_missing(
    tmp_path: Path, builder: EnvironmentBuilder, project: Path
) -> None:
    from flowyard.execution.sandbox import IsolationUnavailable

    recorder = FakeRecorder()
    job = _job(project, isolation="strict")

    def unavailable(_isolation: str) -> FakeSandbox:
        raise IsolationUnavailable(["bubblewrap (bwrap) not found: apt-get install bubblewrap"])

    config = ExecutionConfig(
        cache_dir=tmp_path / "cache", api_socket=tmp_path / "api.sock", allow_local_sources=True
    )
    pipeline = RunPipeline(
        config, recorder, unavailable, builder, RuntimeRegistry.from_settings({})
    )
    await pipeline.execute(job)
    final = recorder.final(job.run_id)
    assert final.type is StateType.CRASHED
    assert "bubblewrap (bwrap) not found" in final.message
