"""A run outlives the server process that started it, and the next one takes it back.

The first "server" is a real separate process: it starts a run in a strict
sandbox and dies without closing anything (``os._exit``). The test process
then opens the same state dir, as a restarted server does.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from flowyard.execution.host import HostCapabilities
from flowyard.execution.sandbox import Ending, Limits, LocalSandbox, MiB
from tests.integration.sandbox.conftest import SMALL

pytestmark = pytest.mark.sandbox

ROOT = Path(__file__).resolve().parents[3]
FIRST_SERVER = """
import asyncio, json, os, sys
from pathlib import Path
from flowyard.execution.sandbox import Limits, LocalSandbox
from tests.integration.sandbox.conftest import python_spec

async def main() -> None:
    state, code, run_id, limits = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    sandbox = LocalSandbox(state, images_per_size=1)
    handle = await sandbox.start(python_spec(code, run_id=run_id, limits=Limits(**json.loads(limits))))
    print(handle.pid, flush=True)
    os._exit(0)  # killed: nothing closed, nothing torn down

asyncio.run(main())
"""


def start_in_a_dying_server(state: Path, code: str, limits: Limits = SMALL) -> tuple[str, int]:
    """Start ``code`` from a separate server process that dies at once; (run id, pid)."""
    import dataclasses
    import json

    run_id = f"t-{uuid.uuid4().hex[:12]}"
    ran = subprocess.run(
        [sys.executable, "-c", FIRST_SERVER, str(state), code, run_id, json.dumps(dataclasses.asdict(limits))],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    return run_id, int(ran.stdout.split()[-1])


def reopen(state: Path, capabilities: HostCapabilities) -> LocalSandbox:
    return LocalSandbox(state, capabilities=capabilities, images_per_size=1)


async def test_a_run_left_by_a_dead_server_is_adopted_and_ends_normally(
    capabilities: HostCapabilities, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    code = "import time\nprint('before', flush=True)\ntime.sleep(3)\nprint('after')\nraise SystemExit(4)"
    run_id, pid = start_in_a_dying_server(state, code)
    second = reopen(state, capabilities)
    try:
        assert second.adoptable == (run_id,)
        assert second.reclaimed == ()
        handle = await second.adopt(run_id)
        assert handle is not None
        assert handle.pid == pid
        result = await handle.wait()
    finally:
        second.close()
    assert result.ending is Ending.EXITED
    assert result.exit_code == 4
    assert result.crash_reason == "exited with code 4"
    assert "before" in result.output_tail
    assert "after" in result.output_tail
    assert result.wall_seconds >= 2.5  # counted from the first start, not the adoption
    assert not (state / "runs" / run_id).exists()


async def test_the_deadline_holds_across_the_restart(
    capabilities: HostCapabilities, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    limits = Limits(memory_bytes=256 * MiB, storage_bytes=SMALL.storage_bytes, max_run_seconds=3)
    run_id, _ = start_in_a_dying_server(state, "import time; time.sleep(120)", limits)
    await asyncio.sleep(1)
    second = reopen(state, capabilities)
    try:
        handle = await second.adopt(run_id)
        assert handle is not None
        started = time.monotonic()
        result = await handle.wait()
    finally:
        second.close()
    assert result.ending is Ending.TIMED_OUT
    assert result.crash_reason == "exceeded the maximum run time of 3s"
    assert time.monotonic() - started < 10


async def test_a_run_that_ended_while_no_server_watched_reports_how_it_ended(
    capabilities: HostCapabilities, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    run_id, pid = start_in_a_dying_server(state, "raise SystemExit(3)")
    for _ in range(200):
        if not Path(f"/proc/{pid}").exists() or "Z" in _state_of(pid):
            break
        await asyncio.sleep(0.05)
    second = reopen(state, capabilities)
    try:
        handle = await second.adopt(run_id)
        assert handle is not None
        result = await handle.wait()
    finally:
        second.close()
    assert result.exit_code == 3
    assert result.crash_reason == "exited with code 3"


async def test_runs_nobody_adopts_are_stopped_and_removed(
    capabilities: HostCapabilities, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    run_id, pid = start_in_a_dying_server(state, "import time; time.sleep(120)")
    second = reopen(state, capabilities)
    try:
        assert second.release_unadopted() == [run_id]
        assert second.adoptable == ()
        assert await second.adopt(run_id) is None
    finally:
        second.close()
    assert not (state / "runs" / run_id).exists()
    for _ in range(100):
        if not Path(f"/proc/{pid}").exists() or "Z" in _state_of(pid):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"the run's process {pid} survived")
    images = list((state / "images").iterdir())
    assert all(not p.name.endswith(".mnt") or not os.path.ismount(p) for p in images)


def _state_of(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return stat[stat.rfind(")") + 2 :].split()[0]
