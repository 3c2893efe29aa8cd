"""Limits and endings: each proven by a run that goes past one."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from flowyard.execution.sandbox import Ending, Limits, LocalSandbox, MiB, SandboxHandle
from tests.integration.sandbox.conftest import SMALL, python_spec, run_python

pytestmark = pytest.mark.sandbox


async def test_allocating_past_the_memory_limit_ends_out_of_memory(sandbox: LocalSandbox) -> None:
    limits = Limits(memory_bytes=64 * MiB, storage_bytes=SMALL.storage_bytes, max_run_seconds=60)
    result = await run_python(
        sandbox, "chunks = []\nwhile True:\n    chunks.append(bytearray(1 << 20))", limits=limits
    )
    assert result.ending is Ending.OUT_OF_MEMORY
    assert result.crash_reason is not None
    assert result.crash_reason.startswith("out of memory: limit 64 MiB reached (peak ")
    assert 48 * MiB <= result.peak_memory_bytes <= 64 * MiB
    # the host (this test process) is fine and can still run things
    assert subprocess.run([sys.executable, "-c", "pass"], check=False).returncode == 0


async def test_a_fork_bomb_is_contained_by_the_process_limit(sandbox: LocalSandbox) -> None:
    limits = Limits(
        pids=32, memory_bytes=256 * MiB, storage_bytes=SMALL.storage_bytes, max_run_seconds=20
    )
    bomb = (
        "import os, time\n"
        "children = 0\n"
        "try:\n"
        "    while True:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60)\n"
        "            os._exit(0)\n"
        "        children += 1\n"
        "except OSError as exc:\n"
        "    print('fork refused after', children, exc.errno)\n"
        "    raise SystemExit(1)\n"
    )
    result = await run_python(sandbox, bomb, limits=limits)
    assert result.ending is Ending.PROCESS_LIMIT
    assert result.crash_reason == "process limit reached (32)"
    assert "fork refused after 31 11" in result.output_tail
    assert subprocess.run([sys.executable, "-c", "pass"], check=False).returncode == 0


async def test_writing_past_the_storage_limit_is_enospc_inside(sandbox: LocalSandbox) -> None:
    limits = Limits(storage_bytes=32 * MiB, memory_bytes=256 * MiB, max_run_seconds=60)
    writer = (
        "import errno\n"
        "written = 0\n"
        "try:\n"
        "    with open('/work/fill', 'wb') as fh:\n"
        "        while True:\n"
        "            fh.write(b'x' * (1 << 20)); fh.flush(); written += 1\n"
        "except OSError as exc:\n"
        "    print('stopped after', written, 'MiB:', errno.errorcode[exc.errno])\n"
        "    raise SystemExit(1)\n"
    )
    result = await run_python(sandbox, writer, limits=limits)
    assert "MiB: ENOSPC" in result.output_tail
    assert result.ending is Ending.STORAGE_FULL
    assert result.crash_reason == "out of disk space: storage limit 32 MiB reached"
    assert 28 * MiB <= result.peak_storage_bytes <= 32 * MiB


async def test_tmp_counts_against_the_storage_limit_too(sandbox: LocalSandbox) -> None:
    limits = Limits(storage_bytes=32 * MiB, memory_bytes=256 * MiB, max_run_seconds=60)
    result = await run_python(
        sandbox,
        "f = open('/tmp/fill', 'wb')\nwhile True:\n    f.write(b'x' * (1 << 20)); f.flush()",
        limits=limits,
    )
    assert "No space left on device" in result.output_tail
    assert result.ending is Ending.STORAGE_FULL


async def test_a_run_past_its_maximum_run_time_is_killed_with_that_reason(
    sandbox: LocalSandbox,
) -> None:
    limits = Limits(max_run_seconds=1, memory_bytes=256 * MiB, storage_bytes=SMALL.storage_bytes)
    result = await run_python(sandbox, "import time\ntime.sleep(60)", limits=limits)
    assert result.ending is Ending.TIMED_OUT
    assert result.crash_reason == "exceeded the maximum run time of 1s"
    assert 1 <= result.wall_seconds < 10


async def test_a_process_killed_by_a_signal_is_named(sandbox: LocalSandbox) -> None:
    result = await run_python(sandbox, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert result.ending is Ending.SIGNALED
    assert (result.exit_code, result.signal) == (None, 9)
    assert result.crash_reason == "killed by signal 9 (SIGKILL)"


async def test_an_exit_code_is_reported_as_is(sandbox: LocalSandbox) -> None:
    result = await run_python(sandbox, "raise SystemExit(3)")
    assert (result.ending, result.exit_code, result.crash_reason) == (
        Ending.EXITED,
        3,
        "exited with code 3",
    )


async def test_cpu_seconds_and_peak_memory_are_plausible(sandbox: LocalSandbox) -> None:
    busy = (
        "import time\n"
        "block = bytearray(96 * 1024 * 1024)\n"
        "for i in range(0, len(block), 4096): block[i] = 1\n"
        "end = time.process_time() + 0.6\n"
        "while time.process_time() < end: pass\n"
    )
    result = await run_python(sandbox, busy)
    assert result.succeeded, result.output_tail
    assert 0.5 <= result.cpu_seconds <= 5
    assert 96 * MiB <= result.peak_memory_bytes <= SMALL.memory_bytes
    assert result.wall_seconds >= 0.5


async def test_the_cpu_quota_holds_a_busy_run_to_its_share(sandbox: LocalSandbox) -> None:
    limits = Limits(
        cpus=0.25, memory_bytes=256 * MiB, storage_bytes=SMALL.storage_bytes, max_run_seconds=60
    )
    code = "import time\nend = time.monotonic() + 1.2\nwhile time.monotonic() < end: pass"
    result = await run_python(sandbox, code, limits=limits)
    assert result.succeeded, result.output_tail
    assert result.cpu_seconds < 0.6


async def test_terminate_lets_the_run_shut_down_then_it_ends_stopped(sandbox: LocalSandbox) -> None:
    graceful = (
        "import signal, sys, time\n"
        "def bye(*_):\n"
        "    print('shutting down', flush=True)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    handle = await sandbox.start(python_spec(graceful))
    await until_output(handle, b"ready")
    handle.terminate(grace_seconds=10)
    result = await handle.wait()
    assert result.ending is Ending.STOPPED
    assert "shutting down" in result.output_tail
    assert result.wall_seconds < 10


async def test_kill_stops_every_process_of_the_run_at_once(sandbox: LocalSandbox) -> None:
    spawner = "import os, time\nfor _ in range(5):\n    os.fork() or time.sleep(60)\nprint('ready', flush=True)\ntime.sleep(60)"
    handle = await sandbox.start(python_spec(spawner))
    await until_output(handle, b"ready")
    assert handle.stats().processes >= 6
    handle.kill()
    result = await handle.wait()
    assert result.ending is Ending.STOPPED
    assert result.signal == 9


async def test_stats_report_a_running_run(sandbox: LocalSandbox) -> None:
    code = "import time\nblock = bytearray(32 * 1024 * 1024)\nopen('/work/f', 'wb').write(b'x' * (4 << 20))\nprint('ready', flush=True)\ntime.sleep(60)"
    handle = await sandbox.start(python_spec(code))
    await until_output(handle, b"ready")
    stats = handle.stats()
    handle.kill()
    await handle.wait()
    assert stats.memory_bytes >= 32 * MiB
    assert stats.storage_bytes >= 4 * MiB
    assert stats.processes == 1
    assert stats.wall_seconds > 0


async def until_output(handle: SandboxHandle, marker: bytes, timeout: float = 20) -> None:
    read = handle.read_output
    for _ in range(int(timeout / 0.02)):
        if marker in read():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{marker!r} never appeared: {read()!r}")


async def test_stats_after_the_end_read_zeros_instead_of_failing(sandbox: LocalSandbox) -> None:
    handle = await sandbox.start(python_spec("pass"))
    result = await handle.wait()
    after = handle.stats()
    assert result.succeeded
    assert (after.memory_bytes, after.storage_bytes, after.processes) == (0, 0, 0)
