"""Warm standbys: a run like the last one starts in a sandbox whose process is already up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowyard.execution.host import HostCapabilities
from flowyard.execution.sandbox import Ending, LocalSandbox, SandboxSpec
from tests.integration.sandbox.conftest import python_spec

pytestmark = pytest.mark.sandbox

# What the runner does in standby, in a few lines: wait on the FIFO, apply the environment.
WAITS = """
import json, os, time
started = time.time()
fifo = os.environ.pop("FLOWYARD_STANDBY", None)
if fifo:
    os.mkfifo(fifo, 0o600)
    with open(fifo, "rb") as fh:
        data = fh.read()
    if not data:
        raise SystemExit(0)
    os.environ.update(json.loads(data)["env"])
print(f"pid={os.getpid()} started={started} run={os.environ['RUN']} cwd={sorted(os.listdir('.'))}")
"""


@pytest.fixture
def warm(capabilities: HostCapabilities, tmp_path: Path) -> Iterator[LocalSandbox]:
    made = LocalSandbox(tmp_path / "state", capabilities=capabilities, images_per_size=1)
    yield made
    made.close()


def spec_for(run: str, checkout: Path, **fields: Any) -> SandboxSpec:
    return python_spec(
        WAITS, env={"RUN": run, "PYTHONUNBUFFERED": "1"}, workdir_source=checkout, standby=True,
        **fields,
    )  # fmt: skip


async def _wait_for_standby(sandbox: LocalSandbox) -> None:
    for _ in range(400):
        if sandbox.standbys_ready:
            return
        await asyncio.sleep(0.025)
    raise AssertionError("no standby was prepared")


def _fields(output: str) -> dict[str, str]:
    line = next(x for x in output.splitlines() if x.startswith("pid="))
    head, _, cwd = line.partition(" cwd=")
    found = dict(part.split("=", 1) for part in head.split())
    found["cwd"] = cwd
    return found


async def test_the_next_run_starts_in_the_standby_with_its_own_environment_and_checkout(
    warm: LocalSandbox, tmp_path: Path
) -> None:
    checkout = tmp_path / "code"
    checkout.mkdir()
    (checkout / "flow.py").write_text("pass\n")
    first = await (await warm.start(spec_for("first", checkout))).wait()
    assert first.ending is Ending.EXITED, first.output_tail
    await _wait_for_standby(warm)
    await asyncio.sleep(0.5)  # let it reach the FIFO

    before = time.time()
    handle = await warm.start(spec_for("second", checkout))
    second = await handle.wait()
    assert second.ending is Ending.EXITED, second.output_tail
    seen = _fields(second.output_tail)
    assert seen["run"] == "second"
    assert float(seen["started"]) < before  # its interpreter was up before the run existed
    assert seen["cwd"] == "['flow.py']"
    assert not (warm.state_dir / "runs" / handle.run_id).exists()


async def test_a_run_that_changes_start_up_variables_or_network_starts_cold(
    warm: LocalSandbox, tmp_path: Path
) -> None:
    checkout = tmp_path / "code"
    checkout.mkdir()
    await (await warm.start(spec_for("first", checkout))).wait()
    await _wait_for_standby(warm)
    await asyncio.sleep(0.5)
    before = time.time()
    other = python_spec(
        WAITS,
        env={"RUN": "other", "PYTHONUNBUFFERED": "1", "PYTHONHASHSEED": "7"},
        workdir_source=checkout,
        standby=True,
    )
    result = await (await warm.start(other)).wait()
    assert result.ending is Ending.EXITED, result.output_tail
    assert float(_fields(result.output_tail)["started"]) >= before - 0.05  # a fresh interpreter


async def test_closing_the_sandbox_stops_its_standbys(
    capabilities: HostCapabilities, tmp_path: Path
) -> None:
    sandbox = LocalSandbox(tmp_path / "state", capabilities=capabilities, images_per_size=1)
    checkout = tmp_path / "code"
    checkout.mkdir()
    await (await sandbox.start(spec_for("first", checkout))).wait()
    await _wait_for_standby(sandbox)
    standby_dirs = list((sandbox.state_dir / "runs").glob("standby-*"))
    assert len(standby_dirs) == 1
    sandbox.close()
    assert not standby_dirs[0].exists()
