"""Compat tests run real flow files with a private FLOWYARD_HOME and no server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flowyard import sdk
from flowyard.sdk import _backends

FLOWS = Path(__file__).parent / "flows"


@pytest.fixture(autouse=True)
def isolated_sdk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "flowyard-home"
    monkeypatch.setenv("FLOWYARD_HOME", str(home))
    monkeypatch.delenv("FLOWYARD_API_URL", raising=False)
    _backends.reset_server_integration()
    previous = sdk.set_reporter(None), sdk.set_result_store(None)
    yield home
    sdk.set_reporter(previous[0])
    sdk.set_result_store(previous[1])
    _backends.reset_server_integration()


@pytest.fixture
def reporter() -> Iterator[sdk.RecordingReporter]:
    recording = sdk.RecordingReporter()
    with sdk.use_reporter(recording):
        yield recording
