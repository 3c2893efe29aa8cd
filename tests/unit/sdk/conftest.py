"""Every SDK test runs with a private FLOWYARD_HOME, no server and no leftover seams."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flowyard import sdk
from flowyard.sdk import _backends


@pytest.fixture(autouse=True)
def isolated_sdk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("FLOWYARD_HOME", str(tmp_path / "flowyard-home"))
    monkeypatch.delenv("FLOWYARD_API_URL", raising=False)
    monkeypatch.delenv("FLOWYARD_TASK_RUNNER_THREAD_POOL_MAX_WORKERS", raising=False)
    _backends.reset_server_integration()
    previous = (
        sdk.set_reporter(None),
        sdk.set_result_store(sdk.InMemoryResultStore()),
        sdk.set_variable_backend(None),
        sdk.set_secret_backend(None),
        sdk.set_deployment_backend(None),
        sdk.set_artifact_backend(None),
        sdk.set_concurrency_backend(None),
    )
    yield
    sdk.set_reporter(previous[0])
    sdk.set_result_store(previous[1])
    sdk.set_variable_backend(previous[2])
    sdk.set_secret_backend(previous[3])
    sdk.set_deployment_backend(previous[4])
    sdk.set_artifact_backend(previous[5])
    sdk.set_concurrency_backend(previous[6])
    _backends.reset_server_integration()


@pytest.fixture
def reporter() -> Iterator[sdk.RecordingReporter]:
    recording = sdk.RecordingReporter()
    with sdk.use_reporter(recording):
        yield recording


@pytest.fixture
def store() -> sdk.InMemoryResultStore:
    fresh = sdk.InMemoryResultStore()
    sdk.set_result_store(fresh)
    return fresh
