"""Each flow file runs unchanged as a script, and cached results survive the process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import FLOWS

SCRIPTS = sorted(p.name for p in FLOWS.glob("*.py"))
# These flows fail a task or a flow on purpose; their logs carry the traceback.
LOG_TRACEBACKS = {"hooks_notifications.py", "data_quality.py", "retries_flaky_api.py"}


def run_script(name: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(FLOWS / name)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FLOWYARD_HOME": str(home), **env},
        check=False,
    )


def test_there_are_at_least_fifteen_flow_files() -> None:
    assert len(SCRIPTS) >= 15


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_flow_file_runs_as_a_script(name: str, isolated_sdk: Path) -> None:
    result = run_script(name, isolated_sdk)
    assert result.returncode == 0, result.stderr
    assert "Finished in state Completed()" in result.stderr
    if name not in LOG_TRACEBACKS:
        assert "Traceback" not in result.stderr


def test_cached_results_are_reused_by_a_second_process(tmp_path: Path, isolated_sdk: Path) -> None:
    counter = tmp_path / "calls.txt"
    first = run_script("caching_expensive.py", isolated_sdk, COMPAT_CALL_COUNTER=str(counter))
    second = run_script("caching_expensive.py", isolated_sdk, COMPAT_CALL_COUNTER=str(counter))
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout == "iris: 0.6\n"
    assert counter.read_text().splitlines() == ["train iris 10", "summarize"]
    assert "Cached(type=COMPLETED)" in second.stderr
