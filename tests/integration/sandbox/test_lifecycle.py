"""Set-up failures, teardown, restarts and the unconfined mode."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from flowyard.execution.host import HostCapabilities
from flowyard.execution.sandbox import (
    Ending,
    FakeSandbox,
    Limits,
    LocalSandbox,
    MiB,
    Placeholder,
    SandboxError,
    SandboxSpec,
)
from tests.integration.sandbox.conftest import RUNTIME, SMALL, python_spec, run_python


def cgroup_dirs(sandbox: LocalSandbox, run_id: str) -> list[Path]:
    assert sandbox.budget is not None  # strict: runs live under the runs' parent cgroup
    layout = sandbox.budget.layout
    return [d / f"flowyard-run-{run_id}" for d in set(layout.dirs.values())]


def is_mounted(path: Path) -> bool:
    mounts = Path("/proc/self/mountinfo").read_text().split("\n")
    return any(line.split()[4] == str(path) for line in mounts if line)


@pytest.mark.sandbox
async def test_a_finished_run_leaves_no_cgroup_mount_or_directory(sandbox: LocalSandbox) -> None:
    spec = python_spec("open('/work/left-behind', 'w').write('x'); print('hi')")
    handle = await sandbox.start(spec)
    run_dir = sandbox.state_dir / "runs" / spec.run_id
    mount_point = (run_dir / "fs").resolve()
    assert is_mounted(mount_point)
    assert all(d.is_dir() for d in cgroup_dirs(sandbox, spec.run_id))
    result = await handle.wait()
    assert result.succeeded
    assert result.output_tail == "hi\n"
    assert not run_dir.exists()
    assert not any(d.exists() for d in cgroup_dirs(sandbox, spec.run_id))
    # the disk is thrown away (unmounted) or recycled for a later run (emptied)
    for _ in range(100):
        if disk_is_gone_or_empty(mount_point):
            break
        await asyncio.sleep(0.02)
    assert disk_is_gone_or_empty(mount_point)


def disk_is_gone_or_empty(mount_point: Path) -> bool:
    if not is_mounted(mount_point):
        return True
    try:
        return not any((mount_point / "work").iterdir()) and not any(
            (mount_point / "tmp").iterdir()
        )
    except FileNotFoundError:  # unmounted by the pool between the two checks
        return True


@pytest.mark.sandbox
async def test_a_broken_runtime_fails_the_start_and_leaves_nothing(
    sandbox: LocalSandbox, tmp_path: Path
) -> None:
    (tmp_path / "bin").mkdir()
    spec = SandboxSpec(
        run_id="broken-runtime", argv=["{python}"], runtime_dir=tmp_path, limits=SMALL
    )
    with pytest.raises(SandboxError, match="no bin/python3"):
        await sandbox.start(spec)
    assert not (sandbox.state_dir / "runs" / "broken-runtime").exists()
    assert not any(d.exists() for d in cgroup_dirs(sandbox, "broken-runtime"))


@pytest.mark.sandbox
async def test_a_run_id_cannot_be_started_twice_at_once(sandbox: LocalSandbox) -> None:
    spec = python_spec("import time; time.sleep(30)")
    handle = await sandbox.start(spec)
    try:
        with pytest.raises(SandboxError, match="already has a sandbox"):
            await sandbox.start(spec)
    finally:
        handle.kill()
        await handle.wait()


@pytest.mark.sandbox
async def test_a_command_that_does_not_exist_says_so(sandbox: LocalSandbox) -> None:
    spec = SandboxSpec(
        run_id="no-such-command",
        argv=["/usr/bin/no-such-command"],
        runtime_dir=RUNTIME,
        limits=SMALL,
    )
    handle = await sandbox.start(spec)
    result = await handle.wait()
    assert result.crash_reason == "exited with code 127"
    assert "no-such-command: not found" in result.output_tail


@pytest.mark.sandbox
async def test_a_restarted_server_stops_the_runs_it_does_not_adopt(
    capabilities: HostCapabilities, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = LocalSandbox(state, capabilities=capabilities, images_per_size=1)
    spec = python_spec("import time; time.sleep(60)")
    handle = await first.start(spec)
    first.close()  # the server goes away; its run does not
    assert all(d.is_dir() for d in cgroup_dirs(first, spec.run_id))
    second = LocalSandbox(state, capabilities=capabilities, images_per_size=1)
    try:
        assert second.reclaimed == ()
        assert second.adoptable == (spec.run_id,)
        assert second.release_unadopted() == [spec.run_id]
        assert not any(d.exists() for d in cgroup_dirs(second, spec.run_id))
        result = await handle.wait()
        assert result.signal == 9
        assert not (state / "runs" / spec.run_id).exists()
    finally:
        second.close()


async def test_isolation_none_runs_a_plain_process_with_the_same_contract(tmp_path: Path) -> None:
    sandbox = LocalSandbox(tmp_path / "state", isolation="none")
    try:
        spec = SandboxSpec(
            run_id="plain",
            argv=[Placeholder.PYTHON, "-c", "import os, sys; print(os.getcwd() == os.environ['HOME'], sorted(os.environ))"],
            runtime_dir=RUNTIME, env={"HOME": "{work}"}, limits=Limits(max_run_seconds=30),
        )  # fmt: skip
        result = await (await sandbox.start(spec)).wait()
        assert result.succeeded, result.output_tail
        assert "True ['HOME'" in result.output_tail
        slow = SandboxSpec(
            run_id="slow", argv=[Placeholder.PYTHON, "-c", "import time; time.sleep(30)"],
            runtime_dir=RUNTIME, limits=Limits(max_run_seconds=0.5, memory_bytes=256 * MiB),
        )  # fmt: skip
        late = await (await sandbox.start(slow)).wait()
        assert late.ending is Ending.TIMED_OUT
        assert late.crash_reason == "exceeded the maximum run time of 0.5s"
    finally:
        sandbox.close()


async def test_the_fake_sandbox_runs_a_real_process_unconfined(tmp_path: Path) -> None:
    fake = FakeSandbox(tmp_path)
    spec = SandboxSpec(
        run_id="fake", argv=[Placeholder.PYTHON, "-c", "import sys; print('out'); sys.exit(4)"],
        runtime_dir=Path(sys.base_prefix),
    )  # fmt: skip
    result = await (await fake.start(spec)).wait()
    assert (result.ending, result.exit_code, result.crash_reason) == (
        Ending.EXITED,
        4,
        "exited with code 4",
    )
    assert result.output_tail == "out\n"
    assert result.cpu_seconds > 0


@pytest.mark.sandbox
async def test_many_runs_at_once_each_get_their_own_sandbox(sandbox: LocalSandbox) -> None:
    import asyncio

    handles = [await sandbox.start(python_spec("import os; print(os.getpid())")) for _ in range(6)]
    results = await asyncio.gather(*(h.wait() for h in handles))
    assert all(r.succeeded for r in results)
    assert {r.output_tail for r in results} == {"2\n"}  # each is pid 2 of its own pid namespace


def test_python_spec_helper_uses_the_test_runtime() -> None:
    assert python_spec("pass").runtime_dir == RUNTIME
    assert run_python is not None


@pytest.mark.sandbox
async def test_a_recycled_disk_carries_nothing_of_the_previous_run(
    capabilities: HostCapabilities, tmp_path: Path
) -> None:
    sandbox = LocalSandbox(tmp_path / "state", capabilities=capabilities, images_per_size=2)
    try:
        limits = Limits(storage_bytes=160 * MiB, memory_bytes=256 * MiB, max_run_seconds=60)
        sandbox.warm(limits.storage_bytes)
        await asyncio.sleep(0.5)
        writer = python_spec(
            "import os\nopen('/work/secret', 'w').write('first run')\nos.mkdir('/tmp/d')\n"
            # More than TRIM_AFTER_BYTES: the recycled image is trimmed.
            "open('/tmp/d/secret', 'wb').write(b'x' * (80 << 20))\nprint('first run output')",
            limits=limits,
        )
        handle = await sandbox.start(writer)
        first_disk = (sandbox.state_dir / "runs" / writer.run_id / "fs").resolve()
        assert (await handle.wait()).succeeded
        reused = False
        for _ in range(3):
            await asyncio.sleep(0.3)  # let the pool empty and trim the used disk
            reader = python_spec(
                "import os\nprint(os.listdir('/work'), os.listdir('/tmp'))", limits=limits
            )
            handle = await sandbox.start(reader)
            reused |= (sandbox.state_dir / "runs" / reader.run_id / "fs").resolve() == first_disk
            result = await handle.wait()
            assert result.output_tail == "[] []\n"
        assert reused
        assert first_disk.with_suffix(".img").stat().st_blocks * 512 < 4 * MiB  # trimmed
    finally:
        sandbox.close()
